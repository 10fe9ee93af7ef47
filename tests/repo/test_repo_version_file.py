"""A package that imports the version file its build writes (setuptools-scm, hatch-vcs).

A checkout has no such file: no build ran. A real repository whose package does ``from
._version import version`` fails its baseline at collection; with the stub written (never
over a file, never through a symlink, git-ignored) its suite passes in bwrap, and the
workspace has no change to deliver.
"""

from __future__ import annotations

from pathlib import Path

from conftest import MakeRepo, git
from runhelp import NEEDS_BWRAP

from darkfactory.config import RepoConfig
from darkfactory.repo.baseline import run_baseline
from darkfactory.repo.environment import prepare_environment, project_sandbox
from darkfactory.repo.project import Project, detect_project
from darkfactory.repo.source import clone_into, open_repository
from darkfactory.repo.version_file import write_version_files
from darkfactory.sandbox import open_sandbox
from darkfactory.sandbox.base import Limits, SandboxSpec

LIMITS = Limits(timeout_s=120)
SCM_PYPROJECT = """\
[build-system]
requires = ["setuptools>=64", "setuptools-scm>=8"]
build-backend = "setuptools.build_meta"

[project]
name = "scmpkg"
dynamic = ["version"]

[tool.setuptools_scm]
version_file = "src/scmpkg/_version.py"
fallback_version = "2.5.0"
"""
SCM_FILES: dict[str, str | bytes] = {
    "pyproject.toml": SCM_PYPROJECT,
    "src/scmpkg/__init__.py": "from ._version import version as __version__, version_tuple\n",
    "tests/test_version.py": (
        "import scmpkg\n\n\ndef test_version():\n"
        "    assert scmpkg.__version__ == '2.5.0'\n"
        "    assert scmpkg.version_tuple == (2, 5, 0)\n"
    ),
}


def tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    return root


def baseline_counts(
    workspace: Path, project: Project, tmp_path: Path
) -> tuple[dict[str, int], str]:
    """The suite at base in bwrap: (counts, the collection error's start)."""
    env = prepare_environment(
        project, identity="scm", backend="bwrap", limits=LIMITS, cache_dir=tmp_path / "cache"
    )
    spec = SandboxSpec(workspace=workspace, mounts=env.mounts(), limits=LIMITS)
    inner = open_sandbox("bwrap", spec)
    try:
        found = run_baseline(project_sandbox(inner, project), project, commit="base", timeout=120)
    finally:
        inner.close()
    return found.counts(), (found.collection_error or "")[:2000]


@NEEDS_BWRAP
def test_a_setuptools_scm_version_file_gets_a_stub_and_the_baseline_passes(
    make_repo: MakeRepo, tmp_path: Path
) -> None:
    repo = make_repo(files=SCM_FILES)
    ws = tmp_path / "ws"
    with open_repository(str(repo.path), None, limits=RepoConfig()) as source:
        clone_into(source, ws, "darkfactory/scm")
    project = detect_project(ws)
    (vf,) = project.version_files
    assert (vf.path, vf.version) == ("src/scmpkg/_version.py", "2.5.0")
    assert vf.declared == "pyproject.toml [tool.setuptools_scm] version_file"
    assert any(
        n.startswith("src/scmpkg/_version.py is written by the build") and "2.5.0" in n
        for n in project.notes
    )

    # The gap: without the file the package does not import, so no test runs at base.
    counts, error = baseline_counts(ws, project, tmp_path)
    assert counts["passed"] == 0
    assert "_version" in error, error

    notes = write_version_files(ws, project.version_files)
    assert notes == [
        "src/scmpkg/_version.py: written with version 2.5.0 in place of the file the build "
        "writes (pyproject.toml [tool.setuptools_scm] version_file); git-ignored"
    ]
    counts, error = baseline_counts(ws, project, tmp_path)
    assert counts == {"passed": 1, "failed": 0, "error": 0, "skipped": 0}, error
    # Git-ignored: nothing for a run to deliver; and written once.
    assert git(ws, "status", "--porcelain", "--untracked-files=all") == ""
    assert write_version_files(ws, project.version_files) == []
    exclude = (ws / ".git" / "info" / "exclude").read_text(encoding="utf-8")
    assert exclude.splitlines().count("/src/scmpkg/_version.py") == 1


def test_a_version_file_in_the_checkout_is_never_overwritten(tmp_path: Path) -> None:
    root = tree(
        tmp_path / "repo",
        {
            "pyproject.toml": SCM_PYPROJECT.replace("version_file", "write_to"),
            "src/scmpkg/__init__.py": "",
            "src/scmpkg/_version.py": "version = 'committed'\n",
        },
    )
    project = detect_project(root)
    assert [vf.declared for vf in project.version_files] == [
        "pyproject.toml [tool.setuptools_scm] write_to"
    ]
    assert not any("is written by the build" in n for n in project.notes)  # it is there
    assert write_version_files(root, project.version_files) == []
    assert (root / "src/scmpkg/_version.py").read_text() == "version = 'committed'\n"


def test_a_symlink_on_the_way_is_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tree(tmp_path / "repo", {"pyproject.toml": SCM_PYPROJECT, "setup.py": ""})
    (root / "src").mkdir()
    (root / "src" / "scmpkg").symlink_to(outside)
    project = detect_project(root)
    notes = write_version_files(root, project.version_files)
    assert list(outside.iterdir()) == []
    assert len(notes) == 1 and notes[0].startswith("src/scmpkg/_version.py (the build's version")
    assert "not written" in notes[0]
    # A version file that is a dangling link is left alone too.
    (root / "src" / "scmpkg").unlink()
    (root / "src" / "scmpkg").mkdir()
    (root / "src" / "scmpkg" / "_version.py").symlink_to(outside / "planted.py")
    assert write_version_files(root, project.version_files) == []
    assert list(outside.iterdir()) == []


def test_hatch_vcs_templates_and_what_gets_no_stub(tmp_path: Path) -> None:
    root = tree(
        tmp_path / "hatch",
        {
            "pyproject.toml": (
                '[project]\nname = "hv"\ndynamic = ["version"]\n'
                '[tool.hatch.version]\nsource = "vcs"\n'
                '[tool.hatch.version.raw-options]\nfallback_version = "1.0.dev0"\n'
                "[tool.hatch.build.hooks.vcs]\n"
                'version-file = "hv/_version.py"\n'
                'template = "__version__ = {version!r}\\nT = {version_tuple}\\nD = {{1: 2}}\\n"\n'
            ),
            "hv/__init__.py": "",
        },
    )
    (vf,) = detect_project(root).version_files
    assert vf.declared == "pyproject.toml [tool.hatch.build.hooks.vcs] version-file"
    assert vf.content == "__version__ = '1.0.dev0'\nT = (1, 0, 'dev0')\nD = {1: 2}\n"
    namespace: dict[str, object] = {}
    exec(compile(vf.content, vf.path, "exec"), namespace)  # the stub is valid Python
    assert namespace["__version__"] == "1.0.dev0"

    # setup.py's literal use_scm_version, a .txt file; a root elsewhere, a path out of the
    # repository and a template with fields only the build knows get no stub, each noted.
    root = tree(
        tmp_path / "setup",
        {
            "setup.py": (
                "from setuptools import setup\n"
                "setup(name='sp', use_scm_version={'write_to': 'sp/VERSION.txt'})\n"
            ),
            "pyproject.toml": (
                "[tool.setuptools_scm]\nroot = '..'\nversion_file = 'sp/_v.py'\n"
                "[tool.hatch.build.hooks.vcs]\nversion-file = '../elsewhere.py'\n"
            ),
            "sp/__init__.py": "",
        },
    )
    project = detect_project(root)
    assert [(vf.path, vf.content) for vf in project.version_files] == [
        ("sp/VERSION.txt", "0+unknown\n")
    ]
    assert any("relative to root '..'" in n for n in project.notes)
    assert any("'../elsewhere.py' is not a file in the repository" in n for n in project.notes)
    root = tree(
        tmp_path / "tmpl",
        {
            "pyproject.toml": (
                "[tool.setuptools_scm]\nversion_file = 'p/_v.py'\n"
                "version_file_template = 'v = {scm_version.node}'\n"
            ),
            "p/__init__.py": "",
        },
    )
    project = detect_project(root)
    (vf,) = project.version_files
    assert "__version__ = version = '0+unknown'" in vf.content
    assert any("has a template with fields only the build fills in" in n for n in project.notes)
