"""``darkfactory bench``: real runs in their own processes, real bwrap sandbox, scripted model.

Each run takes about ten seconds, so only three entries run here: two good ones at two
jobs, and one whose playbook writes a subtly wrong solution that the acceptance tests
miss and the hidden tests catch. The rest checks the suite and the command line.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from runhelp import NEEDS_BWRAP

from darkfactory.bench.run import BenchError, discover, model_for

REPO = Path(__file__).resolve().parent.parent
SUITE = REPO / "benchmarks" / "suite"
needs_bwrap = NEEDS_BWRAP


def bench(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "darkfactory", "bench", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=600,
    )


def copy_entry(name: str, suite: Path) -> Path:
    target = suite / name
    shutil.copytree(SUITE / name, target, ignore=shutil.ignore_patterns("solution"))
    return target


def hidden_markers(entry: Path) -> list[str]:
    """Names of the hidden test functions: text no agent may ever have seen."""
    names = []
    for test in entry.glob("hidden/test_*.py"):
        names += [
            line.split("(")[0].removeprefix("def ")
            for line in test.read_text(encoding="utf-8").splitlines()
            if line.startswith("def test_")
        ]
    return names


# -- the suite as shipped -----------------------------------------------------------------------
def test_the_suite_has_twelve_or_more_entries_in_every_format() -> None:
    entries = discover(SUITE, scripted=True)
    assert len(entries) >= 12
    assert {e.format for e in entries} >= {
        "ticket",
        "markdown",
        "contract",
        "jsonschema",
        "testsuite",
    }
    assert all(e.playbook is not None for e in entries)
    playbook = entries[0].playbook
    assert playbook is not None
    assert model_for(entries[0], "scripted") == f"scripted:{playbook.resolve()}"
    assert model_for(entries[0], "openai/gpt-4o-mini") == "openai/gpt-4o-mini"


def test_the_committed_playbooks_are_generated_from_the_solutions() -> None:
    out = subprocess.run(
        [sys.executable, str(SUITE / "make_playbooks.py"), "--check"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert out.returncode == 0, out.stderr


# -- real runs ----------------------------------------------------------------------------------
@pytest.mark.e2e
@needs_bwrap
def test_two_entries_at_two_jobs_are_delivered_and_scored(tmp_path: Path) -> None:
    out = tmp_path / "bench"
    names = ["semver", "url-shortener"]
    result = bench(
        SUITE,
        "--model",
        "scripted",
        "--jobs",
        "2",
        "--sandbox",
        "bwrap",
        "--out",
        out,
        *(a for n in names for a in ("--entry", n)),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads((out / "bench.json").read_text(encoding="utf-8"))
    assert summary["jobs"] == 2
    rows = {r["entry"]: r for r in summary["results"]}
    assert sorted(rows) == names
    for name, row in rows.items():
        assert row["status"] == "delivered", row
        assert row["acceptance_total"] > 0
        assert row["acceptance_passed"] == row["acceptance_total"]
        assert row["hidden_passed"] == row["hidden_total"] > 0
        assert row["llm_calls"] > 0 and row["tokens"] > 0
        assert row["to_first_llm_s"] is not None and row["to_first_llm_s"] < row["wall_s"]
        run_dir = Path(row["run_dir"])
        assert run_dir.parent == (out / "runs" / name).resolve()  # a runs dir per entry
        report = json.loads((run_dir / "report.json").read_text(encoding="utf-8"))
        assert report["llm"]["calls"] == row["llm_calls"]
        passed = [q["id"] for q in report["requirements"] if q["passed"]]
        assert row["requirements_delivered"] == len(passed) > 0
        # The hidden tests were never shown: not in the workspace, the spec, the acceptance
        # suite, the trace (which records every tool call) or anything else of the run.
        markers = hidden_markers(SUITE / name)
        assert markers
        for path in run_dir.rglob("*"):
            if path.is_file() and path.suffix in (".py", ".json", ".jsonl", ".md", ".yaml"):
                text = path.read_text(encoding="utf-8", errors="replace")
                leaked = [m for m in markers if m in text]
                assert not leaked, f"{path} holds hidden test names {leaked}"
    totals = summary["totals"]
    assert (totals["entries"], totals["passed"], totals["pass_rate"]) == (2, 2, 1.0)
    table = (out / "bench.md").read_text(encoding="utf-8")
    assert "| semver | markdown | delivered |" in table
    assert "**2/2 passed**" in table
    per_requirement = round(totals["tokens"] / totals["requirements_delivered"])
    assert "| tokens per delivered requirement |" in table
    assert f"| {totals['tokens']} | {per_requirement} |" in table
    assert table in result.stdout


@pytest.mark.e2e
@needs_bwrap
def test_a_subtly_wrong_solution_is_delivered_but_fails_its_hidden_tests(tmp_path: Path) -> None:
    suite = tmp_path / "suite"
    entry = copy_entry("roman-numerals", suite)
    playbook = entry / "playbook.yaml"
    text = playbook.read_text(encoding="utf-8")
    # Accept CCCC as 400: the spec's own acceptance tests do not try it, the hidden ones do.
    assert text.count("(CM|CD|D?C{0,3})") == 1
    playbook.write_text(text.replace("(CM|CD|D?C{0,3})", "(CM|CD|D?C{0,4})"), encoding="utf-8")
    out = tmp_path / "bench"
    result = bench(suite, "--model", "scripted", "--sandbox", "bwrap", "--out", out)
    assert result.returncode == 1, result.stdout + result.stderr
    (row,) = json.loads((out / "bench.json").read_text(encoding="utf-8"))["results"]
    assert row["status"] == "delivered"
    assert row["acceptance_passed"] == row["acceptance_total"] > 0
    assert 0 < row["hidden_passed"] < row["hidden_total"]
    assert row["hidden_failures"] == [
        "test_hidden_roman.py::test_non_standard_forms_are_refused[CCCC]"
    ]
    assert "**0/1 passed**" in result.stdout
    assert "CCCC" in (out / "bench.md").read_text(encoding="utf-8")


# -- bad input: exit 2, nothing run -------------------------------------------------------------
def test_a_missing_suite_directory_is_bad_input(tmp_path: Path) -> None:
    result = bench(tmp_path / "nope", "--model", "scripted", "--out", tmp_path / "out")
    assert result.returncode == 2
    assert "nope: suite directory not found" in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("remove", "message"),
    [
        ("hidden", "entry 'kv-cli' has no hidden tests: missing hidden/test_*.py"),
        ("playbook.yaml", "entry 'kv-cli' has no playbook: missing playbook.yaml"),
        ("spec.yaml", "entry 'kv-cli' has no spec"),
    ],
)
def test_an_incomplete_entry_is_bad_input(tmp_path: Path, remove: str, message: str) -> None:
    suite = tmp_path / "suite"
    copy_entry("semver", suite)
    entry = copy_entry("kv-cli", suite)
    target = entry / remove
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    result = bench(suite, "--model", "scripted", "--out", tmp_path / "out")
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_a_playbook_is_needed_only_for_the_scripted_model(tmp_path: Path) -> None:
    suite = tmp_path / "suite"
    (copy_entry("semver", suite) / "playbook.yaml").unlink()
    assert discover(suite, scripted=False)[0].playbook is None
    with pytest.raises(BenchError, match="no playbook"):
        discover(suite, scripted=True)


def test_a_hidden_test_in_the_spec_is_refused(tmp_path: Path) -> None:
    suite = tmp_path / "suite"
    entry = copy_entry("kv-cli", suite)
    hidden = (entry / "hidden" / "test_hidden_kvstore.py").read_text(encoding="utf-8")
    spec = (entry / "spec.yaml").read_text(encoding="utf-8")
    leaked = "\n".join("      " + line if line else "" for line in hidden.splitlines())
    spec = spec.replace(
        "acceptance_tests:\n",
        f"acceptance_tests:\n  - name: test_leak.py\n    code: |\n{leaked}\n",
        1,
    )
    (entry / "spec.yaml").write_text(spec, encoding="utf-8")
    with pytest.raises(
        BenchError, match=r"hidden test test_hidden_kvstore\.py is also an acceptance"
    ):
        discover(suite, scripted=True)


def test_two_specs_and_bad_jobs_are_bad_input(tmp_path: Path) -> None:
    suite = tmp_path / "suite"
    entry = copy_entry("semver", suite)
    result = bench(suite, "--model", "scripted", "--jobs", "0", "--out", tmp_path / "out")
    assert result.returncode == 2
    assert "--jobs must be at least 1, got 0" in result.stderr
    shutil.copy(entry / "spec.md", entry / "spec.txt")
    with pytest.raises(BenchError, match="has 2 specs"):
        discover(suite, scripted=True)
    with pytest.raises(BenchError, match="no entry named nope"):
        discover(SUITE, scripted=True, only=["nope"])
