"""Tests, docs and migrate tickets on an existing repository, through the real crew.

The scripted model (a test tool, not AI) plays the roles; the clone, the environment, the
baseline with coverage.py, the sandbox, mkdocs, git and the delivery are real. Each kind's
proof is measured by the pipeline (``engine/repo_checks.py``) and shows in report.json,
``verdict.json`` and ``pull_request.md``; the user's repository stays byte-identical.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import MakeRepo, git, snapshot
from runhelp import NEEDS_BWRAP, events, report_of
from test_repo_run import run

from darkfactory.cli import main
from darkfactory.errors import SpecError
from darkfactory.spec import load_spec

pytestmark = [NEEDS_BWRAP, pytest.mark.e2e]

SHAPES = '''"""Small geometry helpers."""


def clamp(value, low, high):
    """``value`` kept within ``[low, high]``."""
    if low > high:
        raise ValueError("low is above high")
    if value < low:
        return low
    if value > high:
        return high
    return value


def area(width, height):
    """The area of a ``width`` by ``height`` rectangle."""
    return width * height
'''
SHAPES_TESTS = """from shapes import area


def test_area():
    assert area(2, 3) == 6
"""
CLAMP_TESTS = """import pytest

from shapes import clamp


def test_inside():
    assert clamp(5, 0, 10) == 5


def test_below_and_above():
    assert clamp(-1, 0, 10) == 0
    assert clamp(11, 0, 10) == 10


def test_bad_bounds():
    with pytest.raises(ValueError):
        clamp(1, 5, 0)
"""
LOADER = '''"""Reload a module after its source changed."""

from imp import reload


def refresh(module):
    """``module`` reloaded."""
    return reload(module)
'''
LOADER_TESTS = """import json

from shapes.loader import refresh


def test_refresh_returns_the_module():
    assert refresh(json) is json
"""


@pytest.fixture
def shapes_repo(make_repo: MakeRepo) -> Any:
    return make_repo(
        "shapes",
        {
            "pyproject.toml": '[project]\nname = "shapes"\nversion = "1.0"\n',
            "shapes/__init__.py": SHAPES,
            "shapes/loader.py": LOADER,
            "tests/test_shapes.py": SHAPES_TESTS,
            "tests/test_loader.py": LOADER_TESTS,
        },
    )


def ticket(tmp_path: Path, **keys: Any) -> Path:
    path = tmp_path / "ticket.yaml"
    path.write_text(yaml.safe_dump(keys, sort_keys=False))
    return path


def book(tmp_path: Path, role: str, steps: list[dict[str, Any]], rounds: int = 1) -> Path:
    manager: list[dict[str, Any]] = []
    for _ in range(rounds):
        manager += [
            {"delegate": {"to": role, "task": "Work the ticket.", "context": "-"}},
            {"answer": "Done."},
        ]
    path = tmp_path / "playbook.yaml"
    data = {"version": 1, "roles": {"manager": manager, role: steps}}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def pr_of(run_dir: Path) -> str:
    return (run_dir / "pull_request.md").read_text(encoding="utf-8")


def delivered_as_a_branch(repo: Path, run_dir: Path, report: dict[str, Any]) -> None:
    """The branch starts at the base, its patch applies there, the suite ran at both ends."""
    ws = run_dir / "workspace"
    base = git(repo, "rev-parse", "HEAD")
    assert git(ws, "rev-parse", "--abbrev-ref", "HEAD") == f"darkfactory/{run_dir.name}"
    assert git(ws, "merge-base", "HEAD", base) == base
    check = run_dir.parent.parent / f"check-{run_dir.name}"
    subprocess.run(["git", "clone", "-q", str(repo), str(check)], check=True)
    git(check, "apply", "--check", str(run_dir / "change.patch"))
    assert report["repository"]["baseline"]["passed"] == 2
    assert report["repository"]["final"]["passed"] >= 2
    assert report["repository"]["regressions"] == []


def changed(repo: Path, run_dir: Path) -> list[str]:
    return git(
        run_dir / "workspace", "diff", "--name-only", git(repo, "rev-parse", "HEAD"), "HEAD"
    ).split()


# -- tests --------------------------------------------------------------------------------


def test_a_tests_ticket_raises_coverage_with_new_tests_only(
    tmp_path: Path, shapes_repo: Any
) -> None:
    before = snapshot(shapes_repo.path)
    path = ticket(
        tmp_path,
        title="Test clamp",
        repo=str(shapes_repo.path),
        kind="tests",
        modules=["shapes"],
        coverage_gain=20,
    )
    steps = [
        {"tool": "repo_map", "args": {}},
        {"tool": "write_file", "args": {"path": "tests/test_clamp.py", "content": CLAMP_TESTS}},
        {"tool": "run_tests", "args": {}},
        {"answer": "tests/test_clamp.py covers every branch of clamp."},
    ]
    code, run_dir = run(tmp_path, path, book(tmp_path, "qa_engineer", steps))
    report = report_of(run_dir)
    assert code == 0 and report["status"] == "delivered", report["reason"]
    assert snapshot(shapes_repo.path) == before
    delivered_as_a_branch(shapes_repo.path, run_dir, report)
    assert changed(shapes_repo.path, run_dir) == ["tests/test_clamp.py"]
    verdict = json.loads((run_dir / "verdict.json").read_text())
    base, final = verdict["coverage"]["base"], verdict["coverage"]["final"]
    # shapes/__init__.py: area covered at base, clamp's body not; loader.py fully.
    assert base["statements"] == final["statements"] > 0
    assert final["percent"] - base["percent"] >= 20
    checks = {c["name"]: c["ok"] for c in verdict["checks"]}
    assert checks == {"production_code_untouched": True, "coverage": True}
    # The requirements (written from the ticket's keys) are proven by the checks.
    assert report["acceptance"]["failed"] == 0 and report["acceptance"]["passed"] == 2
    pr = pr_of(run_dir)
    assert "**Tests**" in pr and "## The tests checks" in pr
    assert "46.2% → 100.0% (+53.8 points)" in pr  # 6 of 13 lines at base, 13 of 13 now
    assert "`check::coverage`: passed" in pr
    assert (
        "- Check `coverage`: holds: line coverage of shapes: 46.2%"
        in (run_dir / "report.md").read_text()
    )
    html = (run_dir / "report.html").read_text()
    assert "<code>production_code_untouched</code></td><td>yes" in html
    assert report["repository"]["coverage"]["final"]["percent"] == 100.0
    events_ = events(run_dir, "coverage")
    assert events_ and events_[0]["at"] == "base"


def test_a_tests_ticket_that_changes_production_code_fails_and_the_qa_engineer_undoes_it(
    tmp_path: Path, shapes_repo: Any
) -> None:
    path = ticket(tmp_path, title="Test clamp", repo=str(shapes_repo.path), kind="tests")
    touched = {"path": "shapes/__init__.py", "content": SHAPES + "\n# touched\n"}
    steps = [
        {"tool": "write_file", "args": {"path": "tests/test_clamp.py", "content": CLAMP_TESTS}},
        {"tool": "write_file", "args": touched},
        {"answer": "Done."},
        # The fix round: the check's detail names the file; the QA engineer restores it.
        {"tool": "write_file", "args": {"path": "shapes/__init__.py", "content": SHAPES}},
        {"answer": "shapes/__init__.py is as it was."},
    ]
    book_path = book(tmp_path, "qa_engineer", steps, rounds=2)
    code, run_dir = run(tmp_path, path, book_path, max_fix_rounds=1)
    report = report_of(run_dir)
    assert code == 0 and report["status"] == "delivered", report["reason"]
    first = events(run_dir, "repo_checks")[0]["checks"]
    untouched = next(c for c in first if c["name"] == "production_code_untouched")
    assert untouched["ok"] is False and "shapes/__init__.py" in untouched["detail"]
    # A tests ticket's fix goes to the QA engineer, whatever the failure's class.
    assert [e["route"] for e in events(run_dir, "fix_round")] == ["QA Engineer"]
    assert changed(shapes_repo.path, run_dir) == ["tests/test_clamp.py"]


# -- docs ---------------------------------------------------------------------------------

MKDOCS = """site_name: shapes
theme:
  name: material
plugins:
  - search
  - mkdocstrings:
      handlers:
        python:
          paths: [.]
nav:
  - Home: index.md
  - API reference: api.md
"""
INDEX = """# shapes

Small geometry helpers.

```python
from shapes import area, clamp

assert area(2, 3) == 6
print(clamp(12, 0, 10))
```

```pycon
>>> from shapes import clamp
>>> clamp(-3, 0, 10)
0
```
"""


def test_a_docs_ticket_builds_a_strict_site_with_the_api_reference(
    tmp_path: Path, shapes_repo: Any
) -> None:
    before = snapshot(shapes_repo.path)
    path = ticket(tmp_path, title="Document shapes", repo=str(shapes_repo.path), kind="docs")
    steps = [
        {"tool": "repo_map", "args": {}},
        {"tool": "write_file", "args": {"path": "mkdocs.yml", "content": MKDOCS}},
        {"tool": "write_file", "args": {"path": "docs/index.md", "content": INDEX}},
        {"tool": "write_file", "args": {"path": "docs/api.md", "content": "# API\n\n::: shapes\n"}},
        {"tool": "build_docs", "args": {}},
        {"answer": "The site documents shapes."},
    ]
    code, run_dir = run(tmp_path, path, book(tmp_path, "tech_writer", steps))
    report = report_of(run_dir)
    assert code == 0 and report["status"] == "delivered", report["reason"]
    assert snapshot(shapes_repo.path) == before
    delivered_as_a_branch(shapes_repo.path, run_dir, report)
    assert changed(shapes_repo.path, run_dir) == ["docs/api.md", "docs/index.md", "mkdocs.yml"]
    docs = events(run_dir, "docs_check")
    assert docs and docs[-1]["passed"] is True and docs[-1]["examples_run"] == 2
    checks = {
        c["name"]: c["ok"] for c in json.loads((run_dir / "verdict.json").read_text())["checks"]
    }
    assert checks == {"production_code_untouched": True, "api_reference[shapes]": True}
    assert "`check::api_reference[shapes]`: passed" in pr_of(run_dir)


def test_a_docs_ticket_without_the_api_reference_fails_its_check(
    tmp_path: Path, shapes_repo: Any
) -> None:
    path = ticket(tmp_path, title="Document shapes", repo=str(shapes_repo.path), kind="docs")
    steps = [
        {"tool": "write_file", "args": {"path": "mkdocs.yml", "content": MKDOCS}},
        {"tool": "write_file", "args": {"path": "docs/index.md", "content": "# shapes\n"}},
        {"tool": "write_file", "args": {"path": "docs/api.md", "content": "# API\n\nSoon.\n"}},
        {"answer": "Done."},
    ]
    code, run_dir = run(tmp_path, path, book(tmp_path, "tech_writer", steps), max_fix_rounds=0)
    assert code == 1 and report_of(run_dir)["status"] == "failed"
    checks = {c["name"]: c for c in json.loads((run_dir / "verdict.json").read_text())["checks"]}
    assert checks["api_reference[shapes]"]["ok"] is False
    assert "::: shapes" in checks["api_reference[shapes]"]["detail"]


# -- migrate ------------------------------------------------------------------------------

MIGRATION = {
    "gone": [r"^\s*(from imp |import imp\b)"],
    "warnings_as_errors": ["DeprecationWarning"],
    "imports": ["shapes.loader"],
}


def test_a_migration_is_proven_by_its_checks_and_the_suite(
    tmp_path: Path, shapes_repo: Any
) -> None:
    before = snapshot(shapes_repo.path)
    path = ticket(
        tmp_path,
        title="Move off imp",
        description="imp is deprecated (removed in Python 3.12): use importlib.",
        repo=str(shapes_repo.path),
        kind="migrate",
        migration=MIGRATION,
    )
    steps = [
        {"tool": "search_code", "args": {"pattern": "imp"}},
        {
            "tool": "edit_file",
            "args": {
                "path": "shapes/loader.py",
                "old_text": "from imp import reload",
                "new_text": "from importlib import reload",
            },
        },
        {"tool": "run_tests", "args": {}},
        {"answer": "shapes.loader uses importlib.reload."},
    ]
    code, run_dir = run(tmp_path, path, book(tmp_path, "developer", steps))
    report = report_of(run_dir)
    assert code == 0 and report["status"] == "delivered", report["reason"]
    assert snapshot(shapes_repo.path) == before
    delivered_as_a_branch(shapes_repo.path, run_dir, report)
    verdict = json.loads((run_dir / "verdict.json").read_text())
    assert {c["name"]: c["ok"] for c in verdict["checks"]} == {
        r"gone[^\s*(from imp |import imp\b)]": True,
        "imports[shapes.loader]": True,
        "warnings_as_errors[DeprecationWarning]": True,
    }
    pr = pr_of(run_dir)
    assert "**Migration**" in pr and "3 of 3 checks hold" in pr
    # The requirements came from the migration's checks, each proven.
    assert "3 of 3 requirements are proven" in pr


def test_a_migration_left_undone_fails_each_check_with_what_is_left(
    tmp_path: Path, shapes_repo: Any
) -> None:
    path = ticket(
        tmp_path,
        title="Move off imp",
        repo=str(shapes_repo.path),
        kind="migrate",
        migration=MIGRATION,
    )
    steps = [
        {
            "tool": "edit_file",
            "args": {"path": "shapes/loader.py", "old_text": '"""Reload', "new_text": '"""Re-load'},
        },
        {"answer": "Migrated."},  # a claim without the work
    ]
    code, run_dir = run(tmp_path, path, book(tmp_path, "developer", steps), max_fix_rounds=0)
    assert code == 1 and report_of(run_dir)["status"] == "failed"
    checks = {c["name"]: c for c in json.loads((run_dir / "verdict.json").read_text())["checks"]}
    gone = checks[r"gone[^\s*(from imp |import imp\b)]"]
    assert gone["ok"] is False and "shapes/loader.py:3: from imp import reload" in gone["detail"]
    assert checks["imports[shapes.loader]"]["ok"] is False
    assert "DeprecationWarning" in checks["imports[shapes.loader]"]["detail"]
    assert checks["warnings_as_errors[DeprecationWarning]"]["ok"] is False
    assert (
        "tests/test_loader.py::test_refresh_returns_the_module"
        in (checks["warnings_as_errors[DeprecationWarning]"]["detail"])
    )


# -- bad input ----------------------------------------------------------------------------


def test_a_migrate_kind_without_its_check_exits_2_and_leaves_nothing(
    tmp_path: Path, shapes_repo: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    path = ticket(
        tmp_path,
        title="Move off imp",
        acceptance_criteria=["no imp"],
        repo=str(shapes_repo.path),
    )
    out = tmp_path / "runs"
    model = f"scripted:{book(tmp_path, 'developer', [{'answer': 'x'}])}"
    code = main(["run", str(path), "--model", model, "--out", str(out), "--kind", "migrate"])
    assert code == 2
    err = capsys.readouterr().err
    assert "states the check" in err and "migration" in err
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize(
    ("keys", "says", "key"),
    [
        ({"kind": "migrate"}, "states the check", "kind"),
        (
            {"kind": "migrate", "migration": {"gone": ["("]}},
            "not a regular expression",
            "migration.gone.0",
        ),
        (
            {"kind": "migrate", "migration": {"gones": ["x"]}},
            "did you mean 'gone'",
            "migration.gones",
        ),
        ({"kind": "migrate", "migration": {}}, "states no check", "migration"),
        ({"kind": "bug", "migration": {"gone": ["x"]}}, "is for a migrate ticket", "migration"),
        ({"kind": "feature", "modules": ["a"]}, "is for a tests or docs ticket", "modules"),
        ({"kind": "tests", "modules": ["a-b"]}, "not a dotted Python name", "modules.0"),
        ({"kind": "tests", "coverage_gain": 0}, "above 0", "coverage_gain"),
    ],
)
def test_kind_keys_are_checked_where_they_are_written(
    tmp_path: Path, keys: dict[str, Any], says: str, key: str
) -> None:
    path = ticket(tmp_path, title="t", acceptance_criteria=["x"], repo="../r", **keys)
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    assert says in str(caught.value) and caught.value.key == key
    assert caught.value.line is not None


def test_repository_keys_without_repo_need_the_command_line_s_repo(
    tmp_path: Path, shapes_repo: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    # A bench task's ticket names its kind's keys; the repository comes with --repo.
    path = ticket(tmp_path, title="Test clamp", kind="tests", modules=["shapes"])
    spec = load_spec(path)
    assert spec.target is not None and spec.target.repo == ""
    assert spec.target.modules == ["shapes"]
    out = tmp_path / "runs"
    model = f"scripted:{book(tmp_path, 'qa_engineer', [{'answer': 'x'}])}"
    assert main(["run", str(path), "--model", model, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "need one" in err and "--repo" in err and "kind, modules" in err
    assert not out.exists() or not any(out.iterdir())
    # Without kind: in the ticket, --kind decides, and the keys are checked against it.
    loose = ticket(tmp_path, title="Move", acceptance_criteria=["x"], migration=MIGRATION)
    argv = ["run", str(loose), "--model", model, "--out", str(out), "--repo", str(shapes_repo.path)]
    assert main([*argv, "--kind", "tests"]) == 2
    assert "migration is for a migrate ticket" in capsys.readouterr().err
    assert not out.exists() or not any(out.iterdir())


def test_a_coverage_record_that_is_not_counts_is_not_read() -> None:
    from darkfactory.engine.repo_checks import Coverage

    good = {"files": {"a.py": {"covered": 3, "statements": 4, "missing": [4]}}}
    assert (Coverage.of(good).covered, Coverage.of(good).statements) == (3, 4)
    for forged in (
        {"files": {"a.py": {"covered": "3", "statements": 4}}},
        {"files": {"a.py": {"covered": 5, "statements": 4}}},
        {"files": {"a.py": {"covered": True, "statements": 4}}},
        {"files": {"a.py": {"covered": 10**12, "statements": 10**12}}},
        {"files": {"a.py": [1, 2]}},
    ):
        found = Coverage.of(forged)
        assert found.statements == 0 and "not well formed" in found.error
    assert Coverage.of(None).error and Coverage.of({"error": "NoDataError"}).error == "NoDataError"


def test_documented_modules_never_follow_a_link_in_the_workspace(tmp_path: Path) -> None:
    from darkfactory.engine.repo_checks import documented_modules
    from darkfactory.repo.project import Project
    from darkfactory.spec import RepoTarget

    outside = tmp_path / "outside" / "secret_pkg"
    outside.mkdir(parents=True)
    (outside / "__init__.py").write_text("")
    ws = tmp_path / "ws"
    (ws / "shapes").mkdir(parents=True)
    (ws / "shapes" / "__init__.py").write_text("")
    (ws / "linked").symlink_to(outside, target_is_directory=True)
    target = RepoTarget(repo="r", kind="docs")
    assert documented_modules(target, ws, Project()) == ["shapes"]
