"""The trace, the report and the run list, from a real scripted run with a fix round."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
from runhelp import example_playbook, good_code, only_run, run_spec
from test_e2e import fix_loop_playbook

from darkfactory.cli import EXAMPLE_PLAYBOOK, main
from darkfactory.models.prices import cost, price
from darkfactory.reporting.trace import EVENT_FIELDS, check_record, read_trace
from darkfactory.sandbox import bwrap_problem

SECRET = "sk-dfTEST-0123456789abcdef"


@pytest.fixture(scope="module")
def fixed_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if bwrap_problem() is not None:
        pytest.skip(
            f"bubblewrap does not work here ({bwrap_problem()}): apt-get install bubblewrap"
        )
    tmp = tmp_path_factory.mktemp("report")
    book = fix_loop_playbook(fixes=[good_code(example_playbook())])
    # An agent puts a value of a secret-named environment variable into a tool call.
    book["roles"]["architect"].insert(
        0, {"tool": "write_file", "args": {"path": "notes.txt", "content": f"key {SECRET}"}}
    )
    os.environ["DARKFACTORY_TEST_API_KEY"] = SECRET
    try:
        out = tmp / "runs"
        assert run_spec(out, book) == 0
    finally:
        del os.environ["DARKFACTORY_TEST_API_KEY"]
    return only_run(out)


def test_every_trace_record_matches_the_schema(fixed_run: Path) -> None:
    records = read_trace(fixed_run / "trace.jsonl")
    problems = [(r["kind"], p) for r in records for p in check_record(r)]
    assert problems == []
    kinds = {r["kind"] for r in records}
    expected = {
        "run_start",
        "phase_start",
        "phase_end",
        "acceptance_frozen",
        "llm_call",
        "delegation",
        "tool_call",
        "file_op",
        "sandbox_exec",
        "test_run",
        "test_outcome",
        "verify",
        "failure_classification",
        "fix_round",
        "run_end",
    }
    assert expected <= kinds <= set(EVENT_FIELDS)


def test_secrets_never_reach_trace_or_report(fixed_run: Path) -> None:
    for name in ("trace.jsonl", "report.json", "report.md", "report.html"):
        assert SECRET not in (fixed_run / name).read_text(), name
    assert "[redacted]" in (fixed_run / "trace.jsonl").read_text()


def test_report_has_rounds_classes_costs_and_timeline(fixed_run: Path) -> None:
    report = json.loads((fixed_run / "report.json").read_text())
    assert report["status"] == "delivered"
    first = report["verify_rounds"][0]
    assert (
        first["passed"] is False
        and first["classes"] == ["assertion"]
        and first["route"] == "developer"
    )
    llm = report["llm"]
    assert llm["cost_usd"] == 0.0  # the scripted model is free; a real unknown model would be null
    assert sum(t["calls"] for t in llm["by_role"].values()) == llm["calls"]
    assert sum(t["calls"] for t in llm["by_phase"].values()) == llm["calls"]
    assert set(llm["by_phase"]) == {"design", "implement", "qa", "fix", "document"}
    phases = [s["phase"] for s in report["timeline"]]
    assert phases == [
        "intake",
        "design",
        "implement",
        "qa",
        "verify",
        "fix",
        "verify",
        "document",
        "docs_check",
        "deliver",
    ]
    assert all(s["duration_s"] >= 0 for s in report["timeline"])


def test_html_report_is_self_contained(fixed_run: Path) -> None:
    html = (fixed_run / "report.html").read_text()
    assert "<svg" in html and "R7" in html and "delivered" in html
    assert not re.search(r"""(src|href)=["']?https?://""", html)
    assert "<script src" not in html


def test_a_verified_run_shows_each_requirement_passed(fixed_run: Path) -> None:
    report = json.loads((fixed_run / "report.json").read_text())
    assert [(r["status"], r["passed"]) for r in report["requirements"]] == [("passed", True)] * 7
    md = (fixed_run / "report.md").read_text()
    assert "- Acceptance tests: 8/8 passed" in md and "- Unit tests: 4/4 passed" in md
    assert len(re.findall(r"\| passed \|$", md, re.M)) == 7 and "not run" not in md
    html = (fixed_run / "report.html").read_text()
    assert html.count('<td class="pass">passed</td>') == 7 and "not run" not in html


@pytest.mark.parametrize("stop", ["budget", "playbook"])
def test_a_run_that_ends_before_its_tests_ran_shows_them_not_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], stop: str
) -> None:
    """Over budget, or a playbook that runs out, in implement: no test ran, none failed."""
    out = tmp_path / "runs"
    if stop == "budget":
        assert run_spec(out, EXAMPLE_PLAYBOOK, "--max-llm-calls", "5") == 4
    else:
        book = example_playbook()
        book["roles"]["developer"] = book["roles"]["developer"][:1]
        assert run_spec(out, book) == 1
    run_dir = only_run(out)
    report = json.loads((run_dir / "report.json").read_text())
    assert report["status"] == ("budget_exhausted" if stop == "budget" else "failed")
    assert report["verify_rounds"] == []
    assert [(r["status"], r["passed"]) for r in report["requirements"]] == [("not run", None)] * 7
    md = (run_dir / "report.md").read_text()
    assert "- Acceptance tests: not run" in md and "- Unit tests: not run" in md
    assert "0/0" not in md and "FAILED" not in md
    assert len(re.findall(r"\| not run \|$", md, re.M)) == 7
    html = (run_dir / "report.html").read_text()
    assert "Acceptance tests: not run" in html and "0/0" not in html
    assert html.count('<td class="notrun">not run</td>') == 7 and 'class="fail"' not in html
    assert " - tests not run, fix rounds 0," in capsys.readouterr().out


def test_report_command_renders_again_in_each_format(
    fixed_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = fixed_run.parent
    assert main(["report", fixed_run.name, "--out", str(out), "--format", "json"]) == 0
    rendered: dict[str, Any] = json.loads(capsys.readouterr().out)
    saved = json.loads((fixed_run / "report.json").read_text())
    assert rendered["requirements"] == saved["requirements"]
    assert rendered["llm"]["calls"] == saved["llm"]["calls"]
    assert main(["report", fixed_run.name, "--out", str(out), "--format", "md"]) == 0
    assert "## Requirements" in capsys.readouterr().out
    assert main(["report", fixed_run.name, "--out", str(out), "--format", "html"]) == 0
    assert capsys.readouterr().out.startswith("<!doctype html>")


def test_runs_lists_the_run(fixed_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["runs", "--out", str(fixed_run.parent), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["run_id"], r["status"], r["spec"]) for r in rows] == [
        (fixed_run.name, "delivered", "Word count CLI")
    ]
    assert 0 <= rows[0]["age_s"] < 3600 and rows[0]["cost_usd"] == 0.0
    assert main(["runs", "--out", str(fixed_run.parent)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:4] == ["run", "id", "status", "age"]
    assert fixed_run.name in table[1] and "delivered" in table[1]


def test_prices_known_unknown_and_free() -> None:
    assert price("openai/gpt-4o-mini") == (0.15, 0.60)
    assert price("gpt-4o-mini") == (0.15, 0.60)  # without the provider prefix
    assert cost("openai/gpt-4o-mini", 1_000_000, 1_000_000) == pytest.approx(0.75)
    assert cost("someprovider/brand-new-model", 10, 10) is None  # unknown, never zero
    assert cost("scripted:book.yaml", 1000, 1000) == 0.0
    assert cost("ollama/llama3.1", 1000, 1000) == 0.0
    # A run's own prices (factory.yaml prices:) come first; keys may be patterns.
    own = {"openai/*": {"input": 1.0, "output": 2.0}, "house-model": {"input": 3, "output": 3}}
    assert price("openai/gpt-4o-mini", own) == (1.0, 2.0)
    assert price("house-model", own) == (3.0, 3.0)
    assert cost("someprovider/brand-new-model", 10, 10, own) is None


def _chromium() -> str | None:
    import shutil

    return shutil.which("chromium") or shutil.which("chromium-browser")


def _netlog_urls(netlog: Path) -> set[str]:
    """scheme://host/path of every request in a Chromium net log (queries dropped)."""
    urls = re.findall(r'"url":\s*"([^"]+)"', netlog.read_text(errors="replace"))
    return {u.split("?", 1)[0] for u in urls}


def test_html_report_renders_in_headless_chromium_offline(fixed_run: Path, tmp_path: Path) -> None:
    """The HTML report in a real browser: it renders, the matrix shows every requirement's
    result, and the page makes no request that could leave the machine."""
    import subprocess

    browser = _chromium()
    if browser is None:
        pytest.skip("Chromium is not installed: apt-get install chromium")
    page = (fixed_run / "report.html").as_uri()
    artifacts = Path(os.environ.get("DARKFACTORY_ARTIFACTS", Path(__file__).parent / "artifacts"))
    artifacts.mkdir(parents=True, exist_ok=True)
    shot = artifacts / "report.png"
    shot.unlink(missing_ok=True)
    # Nothing may leave the machine, the browser's own background chatter included: every
    # name resolves to nothing and every connection goes to a closed loopback port.
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-pings",
        "--disable-domain-reliability",
        "--disable-default-apps",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        "--proxy-server=http://127.0.0.1:9",
        "--window-size=1280,2200",
    ]

    def browse(url: str, name: str, *extra: str) -> tuple[str, set[str]]:
        netlog = tmp_path / f"{name}.netlog.json"
        out = subprocess.run(
            [
                browser,
                *flags,
                f"--user-data-dir={tmp_path / name}",
                f"--log-net-log={netlog}",
                *extra,
                url,
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        return out.stdout, _netlog_urls(netlog)

    _, baseline = browse("about:blank", "blank", "--dump-dom")  # the browser's own requests
    dom, urls = browse(page, "dom", "--dump-dom")
    _, shot_urls = browse(page, "shot", f"--screenshot={shot}")
    assert shot.stat().st_size > 10_000 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for i in range(1, 8):
        assert re.search(rf"<td>R{i}</td>.*?<td class=\"pass\">passed</td>", dom, re.S), f"R{i}"
    from_page = {
        u for u in urls | shot_urls if not u.startswith(("file:", "data:", "about:", "chrome:"))
    }
    assert from_page - baseline == set()
