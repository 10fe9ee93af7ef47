"""The ``darkfactory bench`` tables: totals over the entries, rendered as Markdown.

Pure functions over the summary ``darkfactory.bench.run`` writes to ``bench.json`` (each entry
a ``Result`` as a dict), so a table can be rendered again from that file. Spec entries and
repository tasks (``kind`` set) get a table each.
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
        "requirements_delivered": sum(r.get("requirements_delivered", 0) for r in results),
        "cost_usd": None
        if any(c is None for c in costs)
        else round(sum(c for c in costs if c is not None), 6),
        "run_wall_s": round(sum(r["wall_s"] for r in results), 2),
        "elapsed_s": round(elapsed_s, 2),
        "specs_per_min": round(n / elapsed_s * 60, 3) if elapsed_s > 0 else None,
        "median_to_first_llm_s": round(statistics.median(first_llm), 3) if first_llm else None,
        **repo_totals([r for r in results if r.get("kind")]),
    }


def repo_totals(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The repository tasks' totals (nothing when the suite has none)."""
    if not rows:
        return {}
    setups = [r["env_setup_s"] for r in rows if r["env_setup_s"] is not None]
    checks = [r["check_env_setup_s"] for r in rows if r.get("check_env_setup_s") is not None]
    return {
        "tasks": len(rows),
        "resolved": sum(r["passed"] for r in rows),
        "fail_to_pass_passed": sum(r["hidden_passed"] for r in rows),
        "fail_to_pass_total": sum(r["hidden_total"] for r in rows),
        "pass_to_pass_passed": sum(r["p2p_passed"] for r in rows),
        "pass_to_pass_total": sum(r["p2p_total"] for r in rows),
        "env_setup_s": round(sum(setups), 3) if setups else None,
        "median_env_setup_s": round(statistics.median(setups), 3) if setups else None,
        "env_cached": sum(bool(r["env_cached"]) for r in rows),
        "check_env_setup_s": round(sum(checks), 3) if checks else None,
        "check_env_cached": sum(bool(r.get("check_env_cached")) for r in rows),
    }


def _usd(value: float | None) -> str:
    return "unknown" if value is None else f"${value:.4f}"


def _seconds(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f} s"


def render_markdown(summary: dict[str, Any]) -> str:
    """The bench tables (Markdown): one row per entry, then the totals and the pass rate."""
    results = summary["results"]
    specs = [r for r in results if not r.get("kind")]
    tasks = [r for r in results if r.get("kind")]
    t = summary["totals"]
    model = summary["model"] or "the configured model"
    head = (
        f"Suite `{summary['suite']}`, model `{model}`, {summary['jobs']} job(s), "
        f"sandbox {summary['sandbox'] or 'as configured'}: "
    )
    parts = []
    if specs:
        parts.append(
            f"**{t['passed'] - t.get('resolved', 0)}/{len(specs)} passed** (delivered and "
            "every hidden test passing"
            + (f"; pass rate {t['pass_rate']:.0%})" if not tasks else ")")
        )
    if tasks:
        parts.append(
            f"**{t['resolved']}/{t['tasks']} resolved** (delivered, every FAIL_TO_PASS test "
            "passing and every PASS_TO_PASS test still passing"
            + (f"; resolve rate {t['resolved'] / t['tasks']:.0%})" if not specs else ")")
        )
    head += "; ".join(parts) + f", {t['elapsed_s']:.1f} s elapsed, {t['specs_per_min']} specs/min."
    if summary.get("base_check_s") is not None:
        head += (
            f" Before the runs, {summary['base_check_s']:.1f} s checking that every hidden "
            "test fails at its base commit."
        )
    machine = summary.get("machine") or {}
    if machine.get("loadavg_start") and machine.get("loadavg_end"):
        head += (
            f" {machine['cpus']} CPUs, load average {' '.join(machine['loadavg_start'])} "
            f"before and {' '.join(machine['loadavg_end'])} after."
        )
    tables = [_spec_table(specs, t)] if specs else []
    if tasks:
        tables.append(_repo_table(tasks, t))
    failing = [r for r in results if not r["passed"]]
    notes = []
    for r in failing:
        why = r["reason"][:200] or r["status"]
        if r["hidden_problem"]:
            why += f"; {r['hidden_problem'][:200]}"
        if r["hidden_failures"]:
            label = "FAIL_TO_PASS failures" if r.get("kind") else "hidden failures"
            why += f"; {label}: {', '.join(r['hidden_failures'][:5])}"
        if r.get("regressions"):
            why += f"; PASS_TO_PASS failures: {', '.join(r['regressions'][:5])}"
        notes.append(f"- {r['entry']}: {why} (log: `{r['log']}`)")
    body = "\n\n".join("\n".join(table) for table in tables)
    return "\n".join([head, "", body, *(["", *notes] if notes else [])]) + "\n"


def _spec_table(results: list[dict[str, Any]], t: dict[str, Any]) -> list[str]:
    rows = [
        "| entry | format | status | acceptance | hidden | fix rounds | LLM calls | tokens "
        "| tokens per delivered requirement | cost | wall |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        hidden = f"{r['hidden_passed']}/{r['hidden_total']}"
        if r["hidden_problem"]:
            hidden += f" ({r['hidden_problem'][:60]})"
        rows.append(
            f"| {r['entry']} | {r['format']} | {r['status']} | "
            f"{r['acceptance_passed']}/{r['acceptance_total']} | {hidden} | {r['fix_rounds']} "
            f"| {r['llm_calls']} | {r['tokens']} | {_per_requirement(r)} | {_usd(r['cost_usd'])} "
            f"| {r['wall_s']:.1f} s |"
        )
    if len(results) == t["entries"]:  # only spec entries: the totals are theirs
        rows.append(
            f"| **total** ({t['entries']}) | | {t['delivered']} delivered | "
            f"{t['acceptance_passed']}/{t['acceptance_total']} | "
            f"{t['hidden_passed']}/{t['hidden_total']} | {t['fix_rounds']} | {t['llm_calls']} | "
            f"{t['tokens']} | {_per_requirement(t)} | {_usd(t['cost_usd'])} | "
            f"{t['run_wall_s']:.1f} s |"
        )
    return rows


def _per_requirement(r: dict[str, Any]) -> str:
    """Tokens per requirement delivered (its tests passed in a delivered run). A
    ``bench.json`` from before the column has none: ``.get``."""
    delivered = r.get("requirements_delivered", 0)
    return f"{r['tokens'] / delivered:.0f}" if delivered else "n/a"


def _repo_table(results: list[dict[str, Any]], t: dict[str, Any]) -> list[str]:
    """One row per repository task: resolved, FAIL_TO_PASS, PASS_TO_PASS, tokens per
    requirement of the ticket delivered, the environment (the run's setup, and the check's
    at base, which builds what the run then reuses; a ``bench.json`` from before the check's
    columns has none: ``.get``)."""
    rows = [
        "| task | kind | status | resolved | FAIL_TO_PASS | PASS_TO_PASS | fix rounds "
        "| LLM calls | tokens | tokens per delivered requirement | wall | environment setup "
        "| at the check |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        env = _setup(r["env_setup_s"], r["env_cached"])
        check = _setup(r.get("check_env_setup_s"), r.get("check_env_cached"))
        rows.append(
            f"| {r['entry']} | {r['kind']} | {r['status']} | {'yes' if r['passed'] else 'no'} | "
            f"{r['hidden_passed']}/{r['hidden_total']} | {r['p2p_passed']}/{r['p2p_total']} | "
            f"{r['fix_rounds']} | {r['llm_calls']} | {r['tokens']} | {_per_requirement(r)} | "
            f"{r['wall_s']:.1f} s | {env} | {check} |"
        )
    calls = sum(r["llm_calls"] for r in results)
    tokens = sum(r["tokens"] for r in results)
    delivered = sum(r.get("requirements_delivered", 0) for r in results)
    per_requirement = _per_requirement({"tokens": tokens, "requirements_delivered": delivered})
    wall = sum(r["wall_s"] for r in results)
    rows.append(
        f"| **total** ({t['tasks']}) | | {sum(r['status'] == 'delivered' for r in results)} "
        f"delivered | {t['resolved']} | {t['fail_to_pass_passed']}/{t['fail_to_pass_total']} | "
        f"{t['pass_to_pass_passed']}/{t['pass_to_pass_total']} | "
        f"{sum(r['fix_rounds'] for r in results)} | {calls} | {tokens} | {per_requirement} | "
        f"{wall:.1f} s | "
        f"{_seconds(t['env_setup_s'])} ({t['env_cached']} cached) | "
        f"{_seconds(t.get('check_env_setup_s'))} ({t.get('check_env_cached', 0)} cached) |"
    )
    return rows


def _setup(seconds: float | None, cached: bool | None) -> str:
    if cached is None:
        return _seconds(seconds)
    return f"{_seconds(seconds)} ({'cached' if cached else 'built'})"


def write_summary(out: Path, summary: dict[str, Any]) -> str:
    text = render_markdown(summary)
    (out / JSON_FILE).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    (out / MARKDOWN_FILE).write_text(text, encoding="utf-8")
    return text
