"""The run report: ``report.json``, ``report.md`` and ``report.html``.

Rendered from the run directory alone: the flow state, the trace (``trace.jsonl``), the
parsed spec (``spec/spec.json``), the frozen acceptance tests and the workspace's git log.
So ``darkfactory report RUN_ID`` can render any run again, finished or not.

Tokens and costs are our own accounting from the trace's ``llm_call`` records; a model
whose price is not in ``prices.yaml`` has an unknown cost (``null``), never zero.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from darkfactory.models.prices import cost
from darkfactory.reporting.trace import read_trace
from darkfactory.spec.trace import requirement_matrix
from darkfactory.workspace import git as gitrepo
from darkfactory.workspace import rundir


def _add(total: dict[str, Any], prompt: int, completion: int, usd: float | None) -> None:
    total["calls"] += 1
    total["prompt_tokens"] += prompt
    total["completion_tokens"] += completion
    if total["cost_usd"] is not None:
        total["cost_usd"] = None if usd is None else round(total["cost_usd"] + usd, 6)


def _new_total() -> dict[str, Any]:
    return {"calls": 0, "prompt_tokens": 0, "completion_tokens": 0, "cost_usd": 0.0}


def _accounting(records: list[dict[str, Any]]) -> dict[str, Any]:
    calls = [r for r in records if r["kind"] == "llm_call"]
    start = next((r for r in records if r["kind"] == "run_start"), {})
    own_prices = start.get("prices") or None
    run = _new_total()
    by_role: dict[str, dict[str, Any]] = {}
    by_phase: dict[str, dict[str, Any]] = {}
    for r in calls:
        prompt = int(r.get("prompt_tokens") or 0)
        completion = int(r.get("completion_tokens") or 0)
        usd = cost(r.get("model"), prompt, completion, own_prices)
        for bucket, key in ((by_role, r.get("role") or "?"), (by_phase, r.get("phase") or "?")):
            _add(bucket.setdefault(key, _new_total()), prompt, completion, usd)
        _add(run, prompt, completion, usd)
    run["by_role"] = by_role
    run["by_phase"] = by_phase
    return run


def _timeline(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    spans: list[dict[str, Any]] = []
    for r in records:
        if r["kind"] == "phase_start":
            spans.append({"phase": r["phase"], "start": r["ts"], "end": r["ts"]})
        elif r["kind"] in ("phase_end", "run_end") and spans and spans[-1]["phase"] == r["phase"]:
            spans[-1]["end"] = r["ts"]
    t0 = datetime.fromisoformat(records[0]["ts"]) if records else None
    for s in spans:
        start = datetime.fromisoformat(s["start"])
        end = datetime.fromisoformat(s["end"])
        s["offset_s"] = round((start - t0).total_seconds(), 3) if t0 else 0.0
        s["duration_s"] = round((end - start).total_seconds(), 3)
    return spans


def _docs(state: dict[str, Any]) -> dict[str, Any]:
    """The last docs check (strict build and examples) and how many checks ran."""
    checks = state.get("docs_checks") or []
    last = checks[-1] if checks else {}
    return {
        "built": bool(last.get("built", False)),
        "pages": len(last.get("pages", [])),
        "examples_run": last.get("examples_run", 0),
        "examples_passed": last.get("examples_passed", 0),
        "warnings": list(last.get("warnings", [])),
        "rounds": len(checks),
        "passed": bool(last.get("passed", False)),
        "problems": list(last.get("problems", [])),
    }


def build_report(run_dir: Path, state: dict[str, Any]) -> dict[str, Any]:
    records = read_trace(run_dir / "trace.jsonl") if (run_dir / "trace.jsonl").exists() else []
    rounds = state.get("verify_rounds") or []
    last = rounds[-1] if rounds else {}
    acc = last.get("acceptance", {})
    unit = last.get("unit", {})
    spec = rundir.load_spec(run_dir)
    run_start = next((r for r in records if r["kind"] == "run_start"), {})
    models: dict[str, str] = run_start.get("models") or {}
    scripted = any(str(m).startswith("scripted:") for m in models.values())
    accounting = _accounting(records)
    workspace = run_dir / "workspace"
    has_git = (workspace / ".git").exists()
    started, finished = state.get("started_at") or 0.0, state.get("finished_at") or 0.0
    status, reason = state.get("status", "running"), state.get("reason", "")
    if status == "running" and not rundir.run_busy(run_dir):
        done = [e["step"] for e in state.get("journal") or []]
        status = "interrupted"
        reason = (
            f"stopped after step {done[-1] if done else '(none)'} and no process is working on "
            f"it (killed or crashed); continue with: darkfactory resume {run_dir.name}"
        )
    return {
        "run_id": run_dir.name,
        "status": status,
        "reason": reason,
        "spec": {"format": spec.format, "title": spec.title, "source": spec.source},
        "requirements": requirement_matrix(spec, acc.get("outcomes", {})),
        "acceptance": {
            "total": acc.get("total", 0),
            "passed": acc.get("passed", 0),
            "failed": acc.get("failed", 0) + acc.get("errors", 0),
        },
        "unit_tests": {
            "total": unit.get("total", 0),
            "passed": unit.get("passed", 0),
            "failed": unit.get("failed", 0) + unit.get("errors", 0),
        },
        "fix_rounds": state.get("fix_round", 0),
        "verify_rounds": [
            {
                "round": r["round"],
                "passed": r["passed"],
                "acceptance": {
                    k: r["acceptance"].get(k) for k in ("total", "passed", "failed", "errors")
                },
                "unit": {k: r["unit"].get(k) for k in ("total", "passed", "failed", "errors")},
                **(
                    {}
                    if r["passed"]
                    else {"classes": r.get("classes", []), "route": r.get("route")}
                ),
            }
            for r in rounds
        ],
        "docs": _docs(state),
        "budget": state.get("budget_used") or {},
        "checkpoints": state.get("checkpoints") or [],
        "pending_checkpoint": state.get("pending_checkpoint"),
        "deploy": state.get("deploy") or None,
        "delegations": [
            {
                "coworker": r["coworker"],
                "task": r["task"],
                "phase": r.get("phase"),
                "mode": r.get("mode"),
            }
            for r in records
            if r["kind"] == "delegation"
        ],
        "llm": {
            "calls": accounting["calls"],
            "prompt_tokens": accounting["prompt_tokens"],
            "completion_tokens": accounting["completion_tokens"],
            "cost_usd": accounting["cost_usd"],
            "retries": sum(1 for r in records if r["kind"] == "llm_retry"),
            "tokens_are_estimates": scripted,
            "by_role": accounting["by_role"],
            "by_phase": accounting["by_phase"],
            "models": models,
        },
        "timeline": _timeline(records),
        "scripted_model": scripted,
        "sandbox": run_start.get("sandbox"),
        "workspace": str(workspace),
        "commits": gitrepo.log(workspace) if has_git else [],
        "files": gitrepo.changed_files(workspace) if has_git else [],
        "started_at": started or None,
        "duration_s": round(max(0.0, finished - started), 2) if finished else None,
    }


def _usd(value: float | None) -> str:
    return "unknown" if value is None else f"${value:.4f}"


def _docs_line(docs: dict[str, Any]) -> str:
    if not docs["rounds"]:
        return "not checked"
    build = f"built strictly, {docs['pages']} pages" if docs["built"] else "build FAILED"
    text = (
        f"{build}; examples {docs['examples_passed']}/{docs['examples_run']} passed; "
        f"{docs['rounds']} check(s)"
    )
    if docs["problems"]:
        text += "; problems: " + "; ".join(docs["problems"][:5])
    return text


def render_markdown(report: dict[str, Any]) -> str:
    llm = report["llm"]
    estimate = " (estimates: a scripted model played the roles, no AI was called)"
    lines = [
        f"# Run {report['run_id']}: {report['status']}",
        "",
        f"- Spec: {report['spec']['title']} ({report['spec']['format']}, `{report['spec']['source']}`)",
        f"- Why: {report['reason'] or '-'}",
        f"- Acceptance tests: {report['acceptance']['passed']}/{report['acceptance']['total']} passed",
        f"- Unit tests: {report['unit_tests']['passed']}/{report['unit_tests']['total']} passed",
        f"- Fix rounds: {report['fix_rounds']}",
        f"- Docs: {_docs_line(report['docs'])}",
        f"- LLM calls: {llm['calls']}, tokens {llm['prompt_tokens']} prompt + "
        f"{llm['completion_tokens']} completion, cost {_usd(llm['cost_usd'])}"
        + (f", {llm['retries']} retried" if llm.get("retries") else "")
        + (estimate if report["scripted_model"] else ""),
        f"- Sandbox: {report['sandbox']}; duration {report['duration_s']} s",
        f"- Workspace: `{report['workspace']}`",
        "",
        "## Requirements",
        "",
        "| id | requirement | tests | result |",
        "|---|---|---|---|",
    ]
    for r in report["requirements"]:
        result = {True: "passed", False: "FAILED", None: "no test"}[r["passed"]]
        if r["passed"] is None and r.get("untested_reason"):
            result += f": {r['untested_reason']}"
        tests = ", ".join(f"`{t}`" for t in r["tests"]) or "-"
        lines.append(f"| {r['id']} | {r['text']} | {tests} | {result} |")
    lines += ["", "## Verify rounds", ""]
    for v in report["verify_rounds"]:
        a, u = v["acceptance"], v["unit"]
        what = "passed" if v["passed"] else f"failed: {', '.join(v['classes'])} -> {v['route']}"
        lines.append(
            f"- round {v['round']}: acceptance {a['passed']}/{a['total']}, unit {u['passed']}/{u['total']}, {what}"
        )
    if report["checkpoints"] or report["pending_checkpoint"]:
        lines += ["", "## Checkpoints", ""]
        lines += [
            f"- {c['checkpoint']}: {c['decision']} by {c['by']}"
            + (f": {c['reason']}" if c["reason"] else "")
            for c in report["checkpoints"]
        ]
        pending = report["pending_checkpoint"]
        if pending and not pending.get("decision"):
            lines.append(
                f"- {pending['checkpoint']}: WAITING; approve with `{pending['approve']}`, "
                f"or reject with `{pending['reject']}`"
            )
    if report["deploy"]:
        d = report["deploy"]
        lines += ["", f"Deploy: `{' '.join(d['argv'])}` exit {d['exit_code']}, {d['duration_s']} s"]
    lines += [
        "",
        "## Cost by role",
        "",
        "| role | calls | prompt tokens | completion tokens | cost |",
        "|---|---|---|---|---|",
    ]
    for role, t in llm["by_role"].items():
        lines.append(
            f"| {role} | {t['calls']} | {t['prompt_tokens']} | {t['completion_tokens']} | {_usd(t['cost_usd'])} |"
        )
    lines += ["", "## Timeline", ""]
    lines += [
        f"- {s['phase']}: +{s['offset_s']} s, {s['duration_s']} s" for s in report["timeline"]
    ]
    lines += ["", "## Delegations", ""]
    lines += [
        f"- [{d['phase']}] {d['mode']} -> {d['coworker']}: {d['task'][:120]}"
        for d in report["delegations"]
    ]
    return "\n".join(lines) + "\n"


def render_html(report: dict[str, Any]) -> str:
    """One self-contained page (no network needed): summary, timeline chart, matrix."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(
        loader=PackageLoader("darkfactory.reporting", "templates"),
        autoescape=select_autoescape(["html"]),
        keep_trailing_newline=True,
    )
    total = max((s["offset_s"] + s["duration_s"] for s in report["timeline"]), default=1.0) or 1.0
    return env.get_template("report.html").render(
        r=report, total_s=total, usd=_usd, docs_line=_docs_line(report["docs"])
    )


def write_report(run_dir: Path, state: dict[str, Any]) -> dict[str, Any]:
    report = build_report(run_dir, state)
    (run_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (run_dir / "report.md").write_text(render_markdown(report), encoding="utf-8")
    (run_dir / "report.html").write_text(render_html(report), encoding="utf-8")
    return report
