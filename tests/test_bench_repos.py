"""``darkfactory bench`` on repository tasks (``benchmarks/repos``): real runs, real bwrap.

One bench runs three tasks at two jobs (about a minute): two shipped tasks, a bug and a
feature, which must be resolved, and a copy of the bug whose playbook writes a weaker
reproduction and a partial fix: delivered (its own reproduction passes), not resolved (the
hidden tests find what it missed). A second bench runs the shipped tests, docs and migrate
tasks: resolved, each with the pipeline's own checks of its kind passed. The rest needs no
run: the playbooks are current, the shipped tasks are well formed, a task whose hidden
tests pass at base is refused before anything runs, and PASS_TO_PASS matches tests whose
ids change between processes.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from runhelp import NEEDS_BWRAP, config_with

from darkfactory.bench.repo_task import TASK_FILE, load_task, pass_to_pass
from darkfactory.bench.run import BenchError, bench, discover
from darkfactory.reporting.trace import read_trace

REPO = Path(__file__).resolve().parent.parent
SUITE = REPO / "benchmarks" / "repos"
BUG, FEATURE = "parse-subsecond-digits", "isodate-duration-timedelta"
WRONG = "parse-partial-fix"
#: A shipped task of each kind the pipeline proves with checks of its own.
KIND_TASKS = {
    "tests": "isodate-duration-tests",
    "docs": "inflection-docs-site",
    "migrate": "toolz-compatibility-shim",
}


def copy_task(name: str, suite: Path, as_name: str | None = None) -> Path:
    target = suite / (as_name or name)
    shutil.copytree(SUITE / name, target)
    return target


# -- the tasks as shipped -----------------------------------------------------------------------
def test_the_playbooks_are_generated_from_the_solution_patches() -> None:
    out = subprocess.run(
        [sys.executable, str(SUITE / "make_playbooks.py"), "--check"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert out.returncode == 0, out.stderr


def test_eleven_or_more_tasks_of_every_kind_from_real_releases() -> None:
    entries = discover(SUITE, scripted=True)
    assert len(entries) >= 11
    assert {e.task.kind for e in entries if e.task} == {
        "bug",
        "feature",
        "tests",
        "docs",
        "migrate",
    }
    assert {e.dir.name: e.task.kind for e in entries if e.task}.items() >= {
        (name, kind) for kind, name in KIND_TASKS.items()
    }
    for entry in entries:
        assert entry.task is not None and entry.playbook is not None
        meta = yaml.safe_load((entry.dir / TASK_FILE).read_text(encoding="utf-8"))
        upstream = meta["upstream"]
        assert upstream["license"] in ("MIT", "BSD-3-Clause", "Apache-2.0")
        assert upstream["name"] and upstream["version"] and upstream["changed"]
        assert (entry.dir / "solution.patch").is_file()
    size = sum(p.stat().st_size for p in SUITE.rglob("*") if p.is_file())
    assert size < 5 * 1024 * 1024


def test_a_kind_the_engine_refuses_is_bad_input(tmp_path: Path) -> None:
    task = copy_task(BUG, tmp_path)
    text = (task / TASK_FILE).read_text(encoding="utf-8")
    (task / TASK_FILE).write_text(text.replace("kind: bug", "kind: refactor"), encoding="utf-8")
    with pytest.raises(BenchError, match="cannot be benched") as info:
        load_task(task)
    assert info.value.key == "kind"


def test_pass_to_pass_matches_parameters_numbered_in_another_order() -> None:
    base = {
        "t.py::test_a": "passed",
        "t.py::test_f[expected0]": "passed",
        "t.py::test_f[expected1]": "passed",
        "t.py::test_g[x]": "passed",
        "t.py::test_old": "failed",
    }
    # test_f's two instances were numbered the other way round: both pass, so it passes.
    now = {
        "t.py::test_a": "passed",
        "t.py::test_f[expected1]": "passed",
        "t.py::test_f[expected0]": "passed",
        "t.py::test_g[y]": "passed",
        "t.py::test_old": "failed",
    }
    assert pass_to_pass(base, now) == (4, 4, [])
    # An instance failing now fails its function's tests that are not matched by id.
    now["t.py::test_g[y]"] = "failed"
    assert pass_to_pass(base, now) == (4, 3, ["t.py::test_g[x]"])
    del now["t.py::test_a"]
    assert pass_to_pass(base, now)[2] == ["t.py::test_a", "t.py::test_g[x]"]


# -- a task whose hidden tests already pass at base: refused, nothing run ----------------------
@pytest.mark.e2e
@NEEDS_BWRAP
def test_a_task_whose_hidden_tests_pass_at_base_is_refused(tmp_path: Path) -> None:
    suite = tmp_path / "suite"
    task = copy_task(BUG, suite)
    hidden = task / "hidden" / "tests" / "test_subsecond_precision.py"
    hidden.write_text(
        "from datetime import datetime\n\nimport parse\n\n\n"
        "def test_six_digits_parse_already():\n"
        '    r = parse.parse("{:%H:%M:%S.%f}", "10:11:12.123456")\n'
        "    assert r[0].microsecond == 123456\n",
        encoding="utf-8",
    )
    out = tmp_path / "bench"
    config = config_with(tmp_path, repo={"cache_dir": str(tmp_path / "envs")})
    with pytest.raises(BenchError, match="already pass at the base commit") as info:
        bench(suite, model="scripted", sandbox="bwrap", config=config, out=out, quiet=True)
    assert "test_six_digits_parse_already" in str(info.value)
    assert not out.exists()  # nothing ran, nothing written


# -- real runs: two tasks resolved, a wrong delivery not ---------------------------------------
@pytest.fixture(scope="module")
def benched(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, dict[str, Any], Path]:
    tmp = tmp_path_factory.mktemp("bench-repos")
    suite = tmp / "suite"
    copy_task(BUG, suite)
    copy_task(FEATURE, suite)
    wrong = copy_task(BUG, suite, WRONG)
    book = yaml.safe_load((wrong / "playbook.yaml").read_text(encoding="utf-8"))
    # The QA engineer reproduces only the three-digit case; the developer's fix takes 3 to
    # 6 digits. The reproduction passes, so the run delivers; the hidden tests try 1 and 2.
    qa = book["roles"]["qa_engineer"]
    write = next(s for s in qa if s.get("tool") == "write_file")
    code = write["args"]["content"]
    start = code.index("def test_three_digits_of_a_second")
    end = code.index("def test_one_digit_of_a_second")
    write["args"]["content"] = code[: code.index("def test_five")] + code[start:end].rstrip() + "\n"
    edit = next(s for s in book["roles"]["developer"] if s.get("tool") == "edit_file")
    assert edit["args"]["new_text"].count("[0-9]{1,6}") == 1
    edit["args"]["new_text"] = edit["args"]["new_text"].replace("[0-9]{1,6}", "[0-9]{3,6}")
    (wrong / "playbook.yaml").write_text(yaml.safe_dump(book, sort_keys=False), encoding="utf-8")
    config = config_with(tmp, repo={"cache_dir": str(tmp / "envs")})
    out = tmp / "bench"
    code_, summary = bench(
        suite, model="scripted", jobs=2, sandbox="bwrap", config=config, out=out, quiet=True
    )
    return code_, summary, out


@pytest.mark.e2e
@NEEDS_BWRAP
def test_a_bug_and_a_feature_are_resolved(benched: tuple[int, dict[str, Any], Path]) -> None:
    code, summary, out = benched
    assert code == 1  # the wrong delivery below
    rows = {r["entry"]: r for r in summary["results"]}
    for name, kind in ((BUG, "bug"), (FEATURE, "feature")):
        row = rows[name]
        assert row["kind"] == kind
        assert row["status"] == "delivered" and row["resolved"] is True, row
        assert row["hidden_passed"] == row["hidden_total"] == 5  # FAIL_TO_PASS
        assert row["p2p_passed"] == row["p2p_total"] > 90  # the library's own suite
        assert row["regressions"] == []
        assert row["llm_calls"] > 0 and row["tokens"] > 0
        # Built once, by the check at base, in the run's cache: the run finds it there.
        assert row["check_env_setup_s"] is not None and row["check_env_cached"] is False
        assert row["env_setup_s"] is not None and row["env_cached"] is True
        run_dir = Path(row["run_dir"])
        report = json.loads((run_dir / "report.json").read_text(encoding="utf-8"))
        assert report["repository"]["kind"] == kind
        # The hidden tests scored the branch; the run never had them.
        hidden = "test_subsecond_precision.py" if kind == "bug" else "test_duration_return_type.py"
        assert not list((run_dir / "workspace").rglob(hidden))
    assert (out / "score" / BUG / "workspace" / "tests" / "test_subsecond_precision.py").is_file()
    totals = summary["totals"]
    assert (totals["tasks"], totals["resolved"]) == (3, 2)
    table = (out / "bench.md").read_text(encoding="utf-8")
    assert "| task | kind | status | resolved | FAIL_TO_PASS | PASS_TO_PASS |" in table
    assert f"| {BUG} | bug | delivered | yes | 5/5 |" in table
    assert "| environment setup | at the check |" in table and " (cached) | " in table
    assert "**2/3 resolved**" in table
    # Tokens per requirement delivered (every requirement of a resolved ticket: its hidden
    # tests prove them), per task and in all.
    assert "| tokens | tokens per delivered requirement | wall |" in table
    for name in (BUG, FEATURE):
        row = rows[name]
        assert row["requirements_delivered"] > 0
        per_requirement = round(row["tokens"] / row["requirements_delivered"])
        assert f"| {row['tokens']} | {per_requirement} |" in table
    tokens = sum(r["tokens"] for r in summary["results"])
    delivered = sum(r["requirements_delivered"] for r in summary["results"])
    assert f"| {tokens} | {round(tokens / delivered)} |" in table


@pytest.mark.e2e
@NEEDS_BWRAP
def test_a_wrong_delivery_is_not_resolved(benched: tuple[int, dict[str, Any], Path]) -> None:
    _, summary, out = benched
    (row,) = [r for r in summary["results"] if r["entry"] == WRONG]
    assert row["status"] == "delivered"  # its own reproduction passed
    assert row["resolved"] is False
    assert row["p2p_passed"] == row["p2p_total"]  # nothing regressed ...
    assert row["hidden_passed"] == 2 and row["hidden_total"] == 5  # ... but 1 and 2 digits fail
    assert sorted(t.rsplit("::", 1)[1] for t in row["hidden_failures"]) == [
        "test_a_time_with_milliseconds",
        "test_one_digit_of_a_second",
        "test_search_finds_a_short_fraction_in_text",
    ]
    table = (out / "bench.md").read_text(encoding="utf-8")
    assert f"| {WRONG} | bug | delivered | no | 2/5 |" in table
    # Not resolved: none of its ticket's requirements counts as delivered.
    assert row["requirements_delivered"] == 0
    assert f"| {row['llm_calls']} | {row['tokens']} | n/a |" in table


# -- real runs: a tests, a docs and a migrate task, resolved and proven by their checks ---------
@pytest.fixture(scope="module")
def benched_kinds(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("bench-kinds")
    suite = tmp / "suite"
    for name in KIND_TASKS.values():
        copy_task(name, suite)
    config = config_with(tmp, repo={"cache_dir": str(tmp / "envs")})
    return bench(
        suite,
        model="scripted",
        jobs=2,
        sandbox="bwrap",
        config=config,
        out=tmp / "bench",
        quiet=True,
    )


@pytest.mark.e2e
@NEEDS_BWRAP
def test_a_tests_a_docs_and_a_migrate_task_are_resolved(
    benched_kinds: tuple[int, dict[str, Any]],
) -> None:
    code, summary = benched_kinds
    assert code == 0
    rows = {r["entry"]: r for r in summary["results"]}
    for kind, name in KIND_TASKS.items():
        row = rows[name]
        assert row["kind"] == kind
        assert row["status"] == "delivered" and row["resolved"] is True, row
        assert row["hidden_passed"] == row["hidden_total"] >= 2  # FAIL_TO_PASS
        assert row["p2p_passed"] == row["p2p_total"] > 140 and row["regressions"] == []
        run_dir = Path(row["run_dir"])
        (checks,) = [e for e in read_trace(run_dir / "trace.jsonl") if e["kind"] == "repo_checks"]
        assert checks["ticket_kind"] == kind
        assert checks["checks"] and all(c["ok"] for c in checks["checks"]), checks
        names = {c["name"] for c in checks["checks"]}
        expected = {
            "tests": {"production_code_untouched", "coverage"},
            "docs": {"production_code_untouched", "api_reference[inflection]"},
            "migrate": {"warnings_as_errors[DeprecationWarning]", "imports[toolz]"},
        }[kind]
        assert expected <= names
