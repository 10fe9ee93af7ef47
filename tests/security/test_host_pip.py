"""The host's pip builds nothing a model chose: requirements that name files are refused.

A source distribution whose ``setup.py`` leaves ``planted.marker`` waits where the host's
pip would look for a requirement that names a file: the user's current directory and the
run's wheelhouse (pip's destination, where a file "already downloaded" is taken as is).
The requirements name it in every spelling pip reads as a file; each is refused before pip
runs, with a reason the fix task can act on, and even a list that skipped the check
(``deps.download`` called directly) builds nothing: pip runs in an empty directory.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from pypi_local import LocalIndex, sdist
from runhelp import NEEDS_BWRAP, events, example_playbook, good_code, only_run, report_of, run_spec

from darkfactory.engine import deps
from darkfactory.sandbox import open_sandbox
from darkfactory.sandbox.base import Limits, Sandbox, SandboxSpec

if TYPE_CHECKING:
    from conftest import Planted  # tests/security/conftest.py

pytestmark = NEEDS_BWRAP

FILE_NAMED = "this names a file or a path"


def plant_sdists(where: Path, marker: Path) -> None:
    """``evil-1.0.tar.gz``, ``evil.zip`` and a ``setup.py``, each leaving ``marker`` if built."""
    where.mkdir(parents=True, exist_ok=True)
    sdist(where, "evil", "1.0", marker=marker)
    setup_py = f"open({str(marker)!r}, 'w').write('built')\nfrom setuptools import setup\nsetup()\n"
    with zipfile.ZipFile(where / "evil.zip", "w") as zf:
        zf.writestr("evil-1.0/PKG-INFO", "Metadata-Version: 2.1\nName: evil\nVersion: 1.0\n")
        zf.writestr("evil-1.0/setup.py", setup_py)
    (where / "setup.py").write_text(setup_py)


@pytest.fixture
def bwrap_run(tmp_path: Path, planted: Planted) -> Iterator[tuple[Sandbox, Path]]:
    """A bwrap sandbox built as a run builds it, and the sdists planted in the cwd and the
    wheelhouse."""
    run_dir = tmp_path / "run"
    ws = run_dir / "workspace"
    ws.mkdir(parents=True)
    sb = open_sandbox(
        "bwrap",
        SandboxSpec(
            workspace=ws,
            mounts=deps.mounts(run_dir),
            pythonpath=[deps.DEPS_TARGET],
            limits=Limits(timeout_s=60),
            hand_over=True,
        ),
    )
    plant_sdists(planted.cwd, planted.marker)
    plant_sdists(run_dir / "wheelhouse", planted.marker)
    yield sb, run_dir
    sb.close()


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ("evil-1.0.tar.gz", FILE_NAMED),
        ("EVIL-1.0.TAR.GZ", FILE_NAMED),
        ("evil-1.0.tar.gz[extra] ; python_version >= '3'", FILE_NAMED),
        ("evil.zip", FILE_NAMED),
        ("evil-1.0-py3-none-any.whl", FILE_NAMED),
        ("evil.tgz", FILE_NAMED),
        ("six===evil-1.0.tar.gz", FILE_NAMED),
        ("six===../wheelhouse/evil-1.0.tar.gz", FILE_NAMED),
        ("./evil-1.0.tar.gz", "not a valid requirement"),
        ("../x", "not a valid requirement"),
        (".", "not a valid requirement"),
        ("evil @ file:///{cwd}/evil-1.0.tar.gz", "URLs are not accepted"),
        ("-e .", "pip options are not accepted"),
        ("-c constraints.txt", "pip options are not accepted"),
        ("--constraint=constraints.txt", "pip options are not accepted"),
        ("six; python_version == '3 --global-option=x'", "pip options are not accepted"),
        ("six; python_version == '${DF_SECURITY_TEST_TOKEN}'", "'$' is not accepted"),
    ],
)
def test_a_requirement_that_names_a_file_is_refused_before_pip_runs(
    bwrap_run: tuple[Sandbox, Path], planted: Planted, line: str, why: str
) -> None:
    sb, run_dir = bwrap_run
    ws = run_dir / "workspace"
    (ws / "requirements.txt").write_text(line.replace("{cwd}", str(planted.cwd)) + "\n")
    result = deps.ensure(sb, ws, run_dir, timeout_s=120)
    assert result is not None and result.failed == "read" and result.exec is None
    text = result.summary()
    assert text.startswith("DEPENDENCIES FAILED: requirements.txt could not be used")
    assert "requirements.txt line 1" in text and why in text, text
    assert planted.env_value not in text
    assert not (run_dir / "wheelhouse" / deps.REQUIREMENTS).exists()  # pip never ran
    planted.assert_marker_absent()


def test_pyproject_dependencies_are_checked_the_same_way(
    bwrap_run: tuple[Sandbox, Path], planted: Planted
) -> None:
    sb, run_dir = bwrap_run
    ws = run_dir / "workspace"
    (ws / "pyproject.toml").write_text(
        '[project]\nname = "app"\ndependencies = ["six", "evil-1.0.tar.gz"]\n'
    )
    result = deps.ensure(sb, ws, run_dir, timeout_s=120)
    assert result is not None and result.failed == "read"
    assert "pyproject.toml dependencies[1]" in result.summary()
    assert FILE_NAMED in result.summary()
    planted.assert_marker_absent()


@pytest.mark.parametrize("line", ["evil-1.0.tar.gz", "evil.zip", ".", "evil-1.0.tar.gz[x]"])
def test_pip_itself_builds_nothing_it_finds_in_the_cwd_or_the_wheelhouse(
    bwrap_run: tuple[Sandbox, Path], planted: Planted, local_index: LocalIndex, line: str
) -> None:
    """Past the name check (``download`` called directly): pip finds no file to build."""
    _, run_dir = bwrap_run
    wheelhouse = run_dir / "wheelhouse"
    before = sorted(p.name for p in wheelhouse.iterdir())
    error = deps.download([line], wheelhouse, "3.11", timeout_s=120)
    assert error is not None  # pip failed: there was nothing to download
    planted.assert_marker_absent()
    assert sorted(p.name for p in wheelhouse.iterdir()) == before


def test_a_plain_requirement_still_comes_from_the_index_as_a_wheel(
    bwrap_run: tuple[Sandbox, Path], planted: Planted, local_index: LocalIndex
) -> None:
    sb, run_dir = bwrap_run
    ws = run_dir / "workspace"
    (ws / "requirements.txt").write_text("six==1.16.0 ; python_version >= '3'\n")
    result = deps.ensure(sb, ws, run_dir, timeout_s=120)
    assert result is not None and result.ok, result and result.summary()
    assert result.installed == ("six 1.16.0",)
    # What the sandbox's pip read is our rendering, and pip put only wheels beside it.
    listed = (run_dir / "wheelhouse" / deps.REQUIREMENTS).read_text()
    assert listed == 'six==1.16.0; python_version >= "3"\n'
    new = {p.name for p in (run_dir / "wheelhouse").iterdir()} - {
        "evil-1.0.tar.gz",
        "evil.zip",
        "setup.py",
    }
    assert new == {"six-1.16.0-py2.py3-none-any.whl", deps.REQUIREMENTS, deps.STAMP}
    planted.assert_marker_absent()


def test_a_run_whose_developer_asks_for_an_archive_gets_the_refusal_in_the_fix_task(
    tmp_path: Path, planted: Planted
) -> None:
    """End to end: the refusal reaches the fix task; the fixed run delivers; nothing built."""
    plant_sdists(planted.cwd, planted.marker)
    book = example_playbook()
    roles = book["roles"]
    good = good_code(book)
    roles["developer"] = [
        {
            "tool": "write_file",
            "args": {"path": "requirements.txt", "content": "evil-1.0.tar.gz\n"},
        },
        {"tool": "write_file", "args": {"path": "wordcount.py", "content": "import evil\n" + good}},
        {"answer": "wordcount.py is written; it needs evil."},
        {"tool": "write_file", "args": {"path": "requirements.txt", "content": "# none\n"}},
        {"tool": "write_file", "args": {"path": "wordcount.py", "content": good}},
        {"answer": "wordcount.py no longer needs evil."},
    ]
    fix = [
        {
            "delegate": {
                "to": "developer",
                "task": "Fix the dependencies so that the tests pass.",
                "context": "See the failures in the task.",
            },
            "expect": [
                "DEPENDENCIES FAILED: requirements.txt could not be used",
                "requirements.txt line 1: 'evil-1.0.tar.gz'",
                FILE_NAMED,
            ],
        },
        {"answer": "Fixed."},
    ]
    # manager: design(2) implement(2) verify(2) | fix | document(2)
    roles["manager"] = roles["manager"][:6] + fix + roles["manager"][6:]
    out = tmp_path / "runs"
    code = run_spec(out, book)
    run_dir = only_run(out)
    r = report_of(run_dir)
    assert code == 0, r["reason"]
    assert r["status"] == "delivered" and r["fix_rounds"] == 1
    assert [p["phase"] for p in events(run_dir, "phase_start")].count("fix") == 1
    planted.assert_marker_absent()
    assert not any(p.name.startswith("evil") for p in (run_dir / "wheelhouse").iterdir())
    planted.assert_absent(run_dir)
