"""``report.json`` and ``report.md``: what a run did, measured, from its state and trace."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from darkfactory import gitrepo
from darkfactory.spec.trace import requirement_matrix
from darkfactory.trace import read_trace


def build_report(env: Any, state: Any) -> dict[str, Any]:
    records = read_trace(env.run_dir / "trace.jsonl")
    last = state.verify_rounds[-1] if state.verify_rounds else None
    acc = (last or {}).get("acceptance", {})
    unit = (last or {}).get("unit", {})
    outcomes = {**acc.get("outcomes", {})}
    spec = env.spec_with_frozen_tests() if env.acceptance_dir.is_dir() else env.spec
    llm_calls = [r for r in records if r["kind"] == "llm_call"]
    by_role: Counter[str] = Counter()
    tokens_by_role: dict[str, dict[str, int]] = {}
    for r in llm_calls:
        role = r.get("role") or "?"
        by_role[role] += 1
        t = tokens_by_role.setdefault(
            role, {"calls": 0, "prompt_tokens": 0, "completion_tokens": 0}
        )
        t["calls"] += 1
        t["prompt_tokens"] += r.get("prompt_tokens") or 0
        t["completion_tokens"] += r.get("completion_tokens") or 0
    run_start = next((r for r in records if r["kind"] == "run_start"), {})
    models: dict[str, str] = run_start.get("models") or {}
    scripted = any(str(m).startswith("scripted:") for m in models.values())
    workspace = env.workspace
    return {
        "run_id": env.run_id,
        "status": state.status,
        "reason": state.reason,
        "spec": {"format": env.spec.format, "title": env.spec.title, "source": env.spec.source},
        "requirements": requirement_matrix(spec, outcomes),
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
        "fix_rounds": state.fix_round,
        "verify_rounds": [
            {k: v for k, v in r.items() if k in ("round", "passed")}
            | (
                {}
                if r.get("passed")
                else {"classes": r.get("classes", []), "route": r.get("route")}
            )
            | {
                "acceptance": {
                    k: r["acceptance"].get(k) for k in ("total", "passed", "failed", "errors")
                },
                "unit": {k: r["unit"].get(k) for k in ("total", "passed", "failed", "errors")},
            }
            for r in state.verify_rounds
        ],
        "budget": env.budget.state(),
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
            "calls": len(llm_calls),
            "prompt_tokens": sum(r.get("prompt_tokens") or 0 for r in llm_calls),
            "completion_tokens": sum(r.get("completion_tokens") or 0 for r in llm_calls),
            "tokens_are_estimates": scripted,
            "by_role": tokens_by_role,
            "models": models,
        },
        "scripted_model": scripted,
        "sandbox": env.sandbox.backend,
        "workspace": str(workspace),
        "commits": gitrepo.log(workspace) if (workspace / ".git").exists() else [],
        "files": gitrepo.changed_files(workspace) if (workspace / ".git").exists() else [],
        "duration_s": round(max(0.0, state.finished_at - state.started_at), 2),
    }


def render_markdown(report: dict[str, Any]) -> str:
    lines = [
        f"# Run {report['run_id']}: {report['status']}",
        "",
        f"- Spec: {report['spec']['title']} ({report['spec']['format']}, `{report['spec']['source']}`)",
        f"- Why: {report['reason'] or '-'}",
        f"- Acceptance tests: {report['acceptance']['passed']}/{report['acceptance']['total']} passed",
        f"- Unit tests: {report['unit_tests']['passed']}/{report['unit_tests']['total']} passed",
        f"- Fix rounds: {report['fix_rounds']}",
        f"- LLM calls: {report['llm']['calls']}, tokens {report['llm']['prompt_tokens']} prompt "
        f"+ {report['llm']['completion_tokens']} completion"
        + (
            " (estimates: a scripted model played the roles, no AI was called)"
            if report["scripted_model"]
            else ""
        ),
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
        tests = ", ".join(f"`{t}`" for t in r["tests"]) or "-"
        lines.append(f"| {r['id']} | {r['text']} | {tests} | {result} |")
    lines += ["", "## Delegations", ""]
    lines += [
        f"- [{d['phase']}] {d['mode']} -> {d['coworker']}: {d['task'][:120]}"
        for d in report["delegations"]
    ]
    return "\n".join(lines) + "\n"


def write_report(env: Any, state: Any) -> dict[str, Any]:
    report = build_report(env, state)
    run_dir: Path = env.run_dir
    (run_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (run_dir / "report.md").write_text(render_markdown(report), encoding="utf-8")
    return report
