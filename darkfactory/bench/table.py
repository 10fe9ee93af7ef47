"""The ``darkfactory bench`` table: totals over the entries, rendered as Markdown.

Pure functions over the summary ``darkfactory.bench.run`` writes to ``bench.json`` (each entry
a ``Result`` as a dict), so a table can be rendered again from that file.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

JSON_FILE = "bench.json"
MARKDOWN_FILE = "bench.md"


def totals(results: list[dict[str, Any]], elapsed_s: float) -> dict[str, Any]:
    """The suite's totals over its rows (``Result``s as dicts) and its elapsed time."""
    costs = [r["cost_usd"] for r in results]
    n = len(results)
    passed = sum(r["passed"] for r in results)
    first_llm = [r["to_first_llm_s"] for r in results if r["to_first_llm_s"] is not None]
    return {
        "entries": n,
        "delivered": sum(r["status"] == "delivered" for r in results),
        "passed": passed,
        "pass_rate": round(passed / n, 4) if n else 0.0,
        "acceptance_passed": sum(r["acceptance_passed"] for r in results),
        "acceptance_total": sum(r["acceptance_total"] for r in results),
        "hidden_passed": sum(r["hidden_passed"] for r in results),
        "hidden_total": sum(r["hidden_total"] for r in results),
        "fix_rounds": sum(r["fix_rounds"] for r in results),
        "llm_calls": sum(r["llm_calls"] for r in results),
        "tokens": sum(r["tokens"] for r in results),
        "cost_usd": None
        if any(c is None for c in costs)
        else round(sum(c for c in costs if c is not None), 6),
        "run_wall_s": round(sum(r["wall_s"] for r in results), 2),
        "elapsed_s": round(elapsed_s, 2),
        "specs_per_min": round(n / elapsed_s * 60, 3) if elapsed_s > 0 else None,
        "median_to_first_llm_s": round(statistics.median(first_llm), 3) if first_llm else None,
    }


def _usd(value: float | None) -> str:
    return "unknown" if value is None else f"${value:.4f}"


def render_markdown(summary: dict[str, Any]) -> str:
    """The bench table (Markdown): one row per entry, then the totals and the pass rate."""
    rows = [
        "| entry | format | status | acceptance | hidden | fix rounds | LLM calls | tokens "
        "| cost | wall |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in summary["results"]:
        hidden = f"{r['hidden_passed']}/{r['hidden_total']}"
        if r["hidden_problem"]:
            hidden += f" ({r['hidden_problem'][:60]})"
        rows.append(
            f"| {r['entry']} | {r['format']} | {r['status']} | "
            f"{r['acceptance_passed']}/{r['acceptance_total']} | {hidden} | {r['fix_rounds']} "
            f"| {r['llm_calls']} | {r['tokens']} | {_usd(r['cost_usd'])} | {r['wall_s']:.1f} s |"
        )
    t = summary["totals"]
    rows.append(
        f"| **total** ({t['entries']}) | | {t['delivered']} delivered | "
        f"{t['acceptance_passed']}/{t['acceptance_total']} | "
        f"{t['hidden_passed']}/{t['hidden_total']} | {t['fix_rounds']} | {t['llm_calls']} | "
        f"{t['tokens']} | {_usd(t['cost_usd'])} | {t['run_wall_s']:.1f} s |"
    )
    model = summary["model"] or "the configured model"
    head = (
        f"Suite `{summary['suite']}`, model `{model}`, {summary['jobs']} job(s), "
        f"sandbox {summary['sandbox'] or 'as configured'}: "
        f"**{t['passed']}/{t['entries']} passed** (delivered and every hidden test passing; "
        f"pass rate {t['pass_rate']:.0%}), {t['elapsed_s']:.1f} s elapsed, "
        f"{t['specs_per_min']} specs/min."
    )
    machine = summary.get("machine") or {}
    if machine.get("loadavg_start") and machine.get("loadavg_end"):
        head += (
            f" {machine['cpus']} CPUs, load average {' '.join(machine['loadavg_start'])} "
            f"before and {' '.join(machine['loadavg_end'])} after."
        )
    failing = [r for r in summary["results"] if not (r["status"] == "delivered" and r["hidden_ok"])]
    notes = []
    for r in failing:
        why = r["reason"][:200] or r["status"]
        if r["hidden_failures"]:
            why += f"; hidden failures: {', '.join(r['hidden_failures'][:5])}"
        notes.append(f"- {r['entry']}: {why} (log: `{r['log']}`)")
    return "\n".join([head, "", *rows, *(["", *notes] if notes else [])]) + "\n"


def write_summary(out: Path, summary: dict[str, Any]) -> str:
    text = render_markdown(summary)
    (out / JSON_FILE).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    (out / MARKDOWN_FILE).write_text(text, encoding="utf-8")
    return text
