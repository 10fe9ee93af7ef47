"""The run report: ``report.json``, ``report.md`` and ``report.html``.

Rendered from the run directory alone: the flow state, the trace (``trace.jsonl``), the
parsed spec (``spec/spec.json``), the frozen acceptance tests and the workspace's git log.
So ``darkfactory report RUN_ID`` can render any run again, finished or not.

Tokens and costs are our own accounting from the trace's ``llm_call`` records; a model
whose price is unknown (``darkfactory.models.prices``) has an unknown cost (``null``), never zero.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

from darkfactory.engine.state import DocsRound, RunState, SuiteResult, VerifyRound
from darkfactory.models.prices import cost
from darkfactory.reporting.trace import read_trace
from darkfactory.spec.trace import FAILED, NO_TEST, requirement_matrix
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


def llm_usage(trace: Path) -> dict[str, Any]:
    """Calls, tokens and cost so far, from a run's trace (a running run has no report)."""
    records = read_trace(trace) if trace.is_file() else []
    usage = _accounting(records)
    return {k: usage[k] for k in ("calls", "prompt_tokens", "completion_tokens", "cost_usd")}


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


def _docs(state: RunState) -> dict[str, Any]:
    """The last docs check (strict build and examples) and how many checks ran."""
    last = state.docs_checks[-1] if state.docs_checks else DocsRound()
    return {
        "built": last.built,
        "pages": len(last.pages),
        "examples_run": last.examples_run,
        "examples_passed": last.examples_passed,
        "warnings": list(last.warnings),
        "rounds": len(state.docs_checks),
        "passed": last.passed,
        "problems": list(last.problems),
    }


def _repository(run_dir: Path, records: list[dict[str, Any]]) -> dict[str, Any] | None:
    """A repository run's clone, baseline and final suite results (None: a new project)."""
    path = run_dir / "repo.json"
    if not path.is_file():
        return None
    record = json.loads(path.read_text(encoding="utf-8"))

    def counts(name: str) -> dict[str, Any] | None:
        found = run_dir / name
        if not found.is_file():
            return None
        outcomes: dict[str, str] = json.loads(found.read_text(encoding="utf-8"))["outcomes"]
        totals = {k: 0 for k in ("passed", "failed", "error", "skipped")}
        for outcome in outcomes.values():
            totals[outcome] = totals.get(outcome, 0) + 1
        return {"counts": totals, "outcomes": outcomes}

    base, final = counts("baseline.json"), counts("final_tests.json")
    regressions = sorted(
        t
        for t, o in (base or {}).get("outcomes", {}).items()
        if o == "passed" and (final or {}).get("outcomes", {}).get(t) != "passed"
    )
    verdict_path = run_dir / "verdict.json"
    verdict = json.loads(verdict_path.read_text(encoding="utf-8")) if verdict_path.is_file() else {}
    return {
        "location": record["location"],
        "kind": record["kind"],
        "checks": verdict.get("checks", []),
        "coverage": verdict.get("coverage"),
        "base": record["base"],
        "base_sha": record["base_sha"],
        "branch": record["branch"],
        "warnings": record.get("warnings", []),
        "baseline": base["counts"] if base else None,
        "final": final["counts"] if final else None,
        "regressions": regressions if final else None,
        "change_patch": (run_dir / "change.patch").is_file(),
        "pull_request_md": (run_dir / "pull_request.md").is_file(),
        "diff": _diff(run_dir / "workspace", record["base_sha"], _delivered_head(records)),
    }


def _delivered_head(records: list[dict[str, Any]]) -> str:
    """The commit change.patch ends with (an escalated run's last work is off the branch);
    ``HEAD`` before the run delivered."""
    heads = [r.get("head") for r in records if r["kind"] == "deliver" and r.get("what") == "patch"]
    last = heads[-1] if heads else None
    return (
        last
        if isinstance(last, str) and re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", last)
        else "HEAD"
    )


#: Most characters of a repository run's diff a report shows (change.patch has it all).
MAX_REPORT_DIFF = 20_000


def _diff(workspace: Path, base_sha: str, head: str) -> str:
    if not (workspace / ".git").is_dir():
        return ""
    diff = gitrepo.run(workspace, "diff", "--no-ext-diff", "--no-textconv", base_sha, head)
    if len(diff) > MAX_REPORT_DIFF:
        return diff[:MAX_REPORT_DIFF] + "\n[... the rest is in change.patch]"
    return diff


def _counts(suite: SuiteResult) -> dict[str, int]:
    return {k: getattr(suite, k) for k in ("total", "passed", "failed", "errors")}


def _rate(suite: SuiteResult) -> dict[str, Any]:
    return {
        "total": suite.total,
        "passed": suite.passed,
        "rate": round(suite.passed / suite.total, 3) if suite.total else None,
    }


def _shadow_score(visible: SuiteResult, sealed: SuiteResult | None) -> dict[str, Any] | None:
    """The visible and the sealed pass rates side by side (None: the run sealed no test)."""
    if sealed is None:
        return None
    return {
        "visible": _rate(visible),
        "sealed": _rate(sealed),
        "sealed_tests": sorted(sealed.outcomes),
    }


def shadow_line(report: dict[str, Any]) -> str | None:
    """``visible 6/6 (100%), sealed 1/2 (50%)``, or None when nothing was sealed."""
    held = report.get("holdout")
    if not held:
        return None

    def part(name: str) -> str:
        r = held[name]
        rate = "-" if r["rate"] is None else f"{r['rate']:.0%}"
        return f"{name} {r['passed']}/{r['total']} ({rate})"

    return f"{part('visible')}, {part('sealed')}"


def build_report(run_dir: Path, saved: dict[str, Any] | RunState) -> dict[str, Any]:
    """report.json's content, from the run directory alone (its state, trace and spec)."""
    state = saved if isinstance(saved, RunState) else RunState.model_validate(saved)
    records = read_trace(run_dir / "trace.jsonl") if (run_dir / "trace.jsonl").exists() else []
    last = state.verify_rounds[-1] if state.verify_rounds else VerifyRound()
    acc, unit = last.acceptance, last.unit
    sealed = last.sealed or SuiteResult()
    spec = rundir.load_spec(run_dir)
    run_start = next((r for r in records if r["kind"] == "run_start"), {})
    models: dict[str, str] = run_start.get("models") or {}
    scripted = any(str(m).startswith("scripted:") for m in models.values())
    accounting = _accounting(records)
    workspace = run_dir / "workspace"
    has_git = (workspace / ".git").exists()
    started, finished = state.started_at, state.finished_at
    status, reason = state.status, state.reason
    if status == "running" and not rundir.run_busy(run_dir):
        done = [e.step for e in state.journal]
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
        "requirements": requirement_matrix(spec, {**acc.outcomes, **sealed.outcomes}),
        "holdout": _shadow_score(acc, last.sealed),
        "acceptance": {
            "total": acc.total,
            "passed": acc.passed,
            "failed": acc.failed + acc.errors,
        },
        "unit_tests": {
            "total": unit.total,
            "passed": unit.passed,
            "failed": unit.failed + unit.errors,
        },
        "fix_rounds": state.fix_round,
        "verify_rounds": [
            {
                "round": r.round,
                "passed": r.passed,
                "acceptance": _counts(r.acceptance),
                "unit": _counts(r.unit),
                **({"sealed": _counts(r.sealed)} if r.sealed is not None else {}),
                **({} if r.passed else {"classes": r.classes, "route": r.route}),
            }
            for r in state.verify_rounds
        ],
        "docs": _docs(state),
        "budget": state.budget_used,
        "checkpoints": [d.model_dump() for d in state.checkpoints],
        "pending_checkpoint": state.pending_checkpoint.model_dump()
        if state.pending_checkpoint
        else None,
        "deploy": state.deploy.model_dump() if state.deploy else None,
        "repository": _repository(run_dir, records),
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


def _suite_line(report: dict[str, Any], suite: str) -> str:
    """``8/8 passed``, or ``not run`` when the run stopped before any verify round."""
    if not report["verify_rounds"]:
        return "not run (the run ended before its tests ran)"
    return f"{report[suite]['passed']}/{report[suite]['total']} passed"


def render_markdown(report: dict[str, Any]) -> str:
    llm = report["llm"]
    estimate = " (estimates: a scripted model played the roles, no AI was called)"
    lines = [
        f"# Run {report['run_id']}: {report['status']}",
        "",
        f"- Spec: {report['spec']['title']} ({report['spec']['format']}, `{report['spec']['source']}`)",
        f"- Why: {report['reason'] or '-'}",
        f"- Acceptance tests: {_suite_line(report, 'acceptance')}",
        *(
            [f"- Shadow score (sealed holdout): {shadow_line(report)}"]
            if shadow_line(report)
            else []
        ),
        f"- Unit tests: {_suite_line(report, 'unit_tests')}",
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
        result = "FAILED" if r["status"] == FAILED else r["status"]
        if r["status"] == NO_TEST and r.get("untested_reason"):
            result += f": {r['untested_reason']}"
        tests = ", ".join(f"`{t}`" for t in r["tests"]) or "-"
        lines.append(f"| {r['id']} | {r['text']} | {tests} | {result} |")
    lines += ["", "## Verify rounds", ""]
    for v in report["verify_rounds"]:
        a, u = v["acceptance"], v["unit"]
        what = "passed" if v["passed"] else f"failed: {', '.join(v['classes'])} -> {v['route']}"
        held = v.get("sealed")
        sealed = f", sealed {held['passed']}/{held['total']}" if held else ""
        lines.append(
            f"- round {v['round']}: acceptance {a['passed']}/{a['total']}{sealed}, unit {u['passed']}/{u['total']}, {what}"
        )
    repo = report.get("repository")
    if repo:
        base, final = repo["baseline"] or {}, repo["final"] or {}
        fence = "`" * max(3, 1 + max((len(m) for m in re.findall(r"`+", repo["diff"])), default=0))
        lines += [
            "",
            f"## The change on `{repo['branch']}`",
            "",
            f"- Repository: `{repo['location']}` at {repo['base']} (`{repo['base_sha'][:12]}`), "
            f"a {repo['kind']} ticket",
            *(f"- **Warning:** {w}" for w in repo.get("warnings") or []),
            f"- Its tests at base: {base.get('passed', 0)} passed, {base.get('failed', 0)} failed, "
            f"{base.get('error', 0)} errors; at the end: {final.get('passed', 0)} passed, "
            f"{final.get('failed', 0)} failed, {final.get('error', 0)} errors",
            f"- Regressions: {', '.join(f'`{t}`' for t in repo['regressions'] or []) or 'none'}",
            *(
                f"- Check `{c['name']}`: {'holds' if c['ok'] else 'DOES NOT HOLD'}: "
                f"{c['detail'].splitlines()[0] if c['detail'] else ''}"
                for c in repo.get("checks") or []
            ),
            "- Files: `change.patch`, `pull_request.md`",
            "",
            f"{fence}diff",
            repo["diff"].rstrip("\n"),
            fence,
        ]
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
        r=report,
        total_s=total,
        usd=_usd,
        docs_line=_docs_line(report["docs"]),
        acceptance_line=_suite_line(report, "acceptance"),
        unit_line=_suite_line(report, "unit_tests"),
        shadow_line=shadow_line(report),
    )


def write_report(run_dir: Path, state: dict[str, Any] | RunState) -> dict[str, Any]:
    report = build_report(run_dir, state)
    (run_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (run_dir / "report.md").write_text(render_markdown(report), encoding="utf-8")
    (run_dir / "report.html").write_text(render_html(report), encoding="utf-8")
    return report
