"""A project's rooms: its config/ found from where the command runs (or ``--project``), its
tools/ and installed packages' tools in one registry, and ``darkfactory init``."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

import darkfactory.tools as tools
from darkfactory import DISTRIBUTION, project
from darkfactory.cli import init
from darkfactory.config import load_config
from darkfactory.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
SPEC = REPO / "examples" / "specs" / "wordcount.yaml"

SHOUT = """
from crewai.tools import BaseTool

from ._helpers import loud


class ShoutTool(BaseTool):
    name: str = "shout"
    description: str = "The text, in capitals."

    def _run(self, text: str) -> str:
        return loud(text)
"""


def darkfactory(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "darkfactory", *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def make_project(root: Path, *tool_files: str) -> Path:
    """``darkfactory init`` into ``root``, plus the named example tool files."""
    for rel, text in init.project_files(init.project_name(root)).items():
        write(root / rel, text)
    for name in tool_files:
        write(root / "tools" / f"{name}.py", {"shout": SHOUT, "_helpers": HELPERS}[name])
    return root


HELPERS = "def loud(text: str) -> str:\n    return text.upper()\n"


def name_tool(root: Path, role: str, tool: str) -> None:
    agents = root / "config" / "agents.yaml"
    lines = agents.read_text(encoding="utf-8").splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{role}:"))
    i = next(i for i in range(start, len(lines)) if lines[i].startswith("  tools: ["))
    lines[i] = lines[i].replace("]", f", {tool}]")
    agents.write_text("".join(lines), encoding="utf-8")


@pytest.fixture
def clean_registry() -> object:
    tools.tool_class.cache_clear()
    tools._entry_points.cache_clear()
    yield
    tools.tool_class.cache_clear()
    tools._entry_points.cache_clear()


def installed_dist(site: Path, name: str, entry_points: str, files: dict[str, str]) -> Path:
    """A distribution installed into ``site`` as pip would leave it (dist-info + modules)."""
    info = site / f"{name}-1.0.dist-info"
    write(info / "METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    write(info / "entry_points.txt", entry_points)
    for rel, text in files.items():
        write(site / rel, text)
    return site


# -- the registry --------------------------------------------------------------------------
def test_a_project_tool_loads_by_path_under_a_private_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean_registry: object
) -> None:
    root = make_project(tmp_path / "p", "shout", "_helpers")
    # Another distribution's top-level `tools` package is importable meanwhile.
    other = tmp_path / "other"
    write(other / "tools" / "__init__.py", "OTHER = True\n")
    monkeypatch.syspath_prepend(str(other))
    monkeypatch.delitem(sys.modules, "tools", raising=False)

    names = tools.available_tool_names(root / "tools")
    assert {"shout", "word_frequency", "read_file"} <= set(names)
    assert not {"_helpers", "test_word_frequency"} & set(names)  # helpers and tests
    shout = tools.tool_class("shout", root / "tools")
    assert shout.__module__.startswith("darkfactory._project_tools_")
    assert shout()._run(text="hi") == "HI"  # its relative import of ._helpers worked
    assert importlib.import_module("tools").OTHER is True  # neither shadows the other
    assert str(root / "tools") not in sys.path


def test_a_name_two_sources_define_is_an_error_naming_both(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p")
    write(root / "tools" / "read_file.py", SHOUT)
    with pytest.raises(ConfigError) as caught:
        load_config(root / "config")
    text = str(caught.value)
    assert "tool 'read_file' is defined twice" in text
    assert "Dark Factory's built-in darkfactory.tools.read_file" in text
    assert f"the project's {root / 'tools' / 'read_file.py'}" in text


def test_an_installed_package_registers_tools_by_entry_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean_registry: object
) -> None:
    site = installed_dist(
        tmp_path / "site",
        "shouting",
        "[darkfactory.tools]\nshout = shouting.shout:ShoutTool\nwhisper = shouting.whisper\n",
        {
            "shouting/__init__.py": "",
            "shouting/_helpers.py": HELPERS,
            "shouting/shout.py": SHOUT,
            "shouting/whisper.py": SHOUT.replace("ShoutTool", "WhisperTool")
            .replace('"shout"', '"whisper"')
            .replace("loud(text)", "text.lower()"),
        },
    )
    monkeypatch.syspath_prepend(str(site))
    assert {"shout", "whisper"} <= set(tools.available_tool_names())
    assert tools.tool_class("shout")()._run(text="a") == "A"  # module:Class
    assert tools.tool_class("whisper")()._run(text="B") == "b"  # a module with one tool

    root = make_project(tmp_path / "p", "shout", "_helpers")
    with pytest.raises(ConfigError) as caught:
        tools.available_tool_names(root / "tools")
    text = str(caught.value)
    assert "shouting 1.0's entry point darkfactory.tools: shout = shouting.shout:ShoutTool" in text
    assert "the project's" in text and "shout.py" in text


def test_validate_finds_an_entry_point_tool_in_another_process(tmp_path: Path) -> None:
    site = installed_dist(
        tmp_path / "site",
        "shouting",
        "[darkfactory.tools]\nshout = shouting.shout:ShoutTool\n",
        {"shouting/__init__.py": "", "shouting/_helpers.py": HELPERS, "shouting/shout.py": SHOUT},
    )
    root = make_project(tmp_path / "p")
    name_tool(root, "developer", "shout")
    out = darkfactory("validate", str(SPEC), cwd=root, env={"PYTHONPATH": str(site)})
    assert out.returncode == 0, out.stderr
    assert f"config {root / 'config'}: ok" in out.stdout


# -- finding the project ---------------------------------------------------------------------
def test_the_project_is_found_from_the_working_directory_up(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", "shout", "_helpers")
    name_tool(root, "tech_writer", "shout")
    sub = root / "specs"
    assert project.find_root(sub) == root.resolve()
    out = darkfactory("validate", str(SPEC), cwd=sub)
    assert out.returncode == 0, out.stderr
    assert f"config {root.resolve() / 'config'}: ok" in out.stdout

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert project.find_root(elsewhere) is None
    out = darkfactory("validate", str(SPEC), cwd=elsewhere)
    assert out.returncode == 0, out.stderr
    assert f"config {project.shipped('config')}: ok" in out.stdout


def test_project_option_names_the_project(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", "shout", "_helpers")
    name_tool(root, "tech_writer", "shout")
    out = darkfactory("--project", str(root), "validate", str(SPEC), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert f"config {root / 'config'}: ok" in out.stdout

    out = darkfactory("--project", str(tmp_path), "validate", str(SPEC), cwd=tmp_path)
    assert out.returncode == 2
    assert f"{tmp_path} is not a Dark Factory project: it has no config/agents.yaml" in out.stderr
    assert "Traceback" not in out.stderr


EVIL_TOOL = """
from pathlib import Path

Path({marker!r}).write_text("imported on the host")
"""


def test_a_run_workspace_is_never_a_project(tmp_path: Path) -> None:
    # A run directory as a run leaves it: its own copies of config/ and tools/, and a
    # workspace a model wrote, here with a config/ and a tool that would run on import.
    run_dir = make_project(tmp_path / "runs" / "20261207-000000-x-0000")
    from darkfactory.workspace import rundir

    rundir.spec_json(run_dir).parent.mkdir(parents=True)
    rundir.spec_json(run_dir).write_text("{}", encoding="utf-8")
    workspace = run_dir / rundir.WORKSPACE_DIR
    marker = tmp_path / "imported"
    make_project(workspace)
    write(workspace / "tools" / "evil.py", EVIL_TOOL.format(marker=str(marker)))
    name_tool(workspace, "developer", "evil")
    assert project.RUN_WORKSPACE == rundir.WORKSPACE_DIR
    assert rundir.spec_json(Path()).relative_to(Path()) == project.RUN_SPEC
    # From inside the workspace the search goes on above it: the run's own copies.
    assert project.find_root(workspace / "tools") == run_dir.resolve()
    out = darkfactory("validate", str(SPEC), cwd=workspace)
    assert out.returncode == 0, out.stderr
    assert f"config {run_dir.resolve() / 'config'}: ok" in out.stdout
    # Named explicitly, it is refused with exit 2, and nothing of it is imported.
    for argv in (["--project", str(workspace)], []):
        extra = [] if argv else ["--config", str(workspace / "config")]
        out = darkfactory(*argv, "validate", str(SPEC), *extra, cwd=tmp_path)
        assert out.returncode == 2, out.stdout + out.stderr
        assert "inside the run workspace" in out.stderr and "Traceback" not in out.stderr
    assert not marker.exists()


def test_the_packaged_config_has_no_project_tools() -> None:
    assert project.tools_dir(project.PACKAGE_DIR / "_default_config") is None
    assert project.tools_dir(REPO / "config") == REPO / "tools"


# -- darkfactory init ---------------------------------------------------------------------------
def test_init_makes_a_crewai_flow_project_that_validates(tmp_path: Path) -> None:
    out = darkfactory("init", "my-factory", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    root = tmp_path / "my-factory"
    made = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    assert made == [
        ".env.example",
        ".gitignore",
        "README.md",
        "config/agents.yaml",
        "config/factory.yaml",
        "config/tasks.yaml",
        "pyproject.toml",
        "specs/wordcount.playbook.yaml",
        "specs/wordcount.yaml",
        "src/my_factory/__init__.py",
        "src/my_factory/crew.py",
        "tools/test_word_frequency.py",
        "tools/word_frequency.py",
    ]
    meta = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    assert meta["project"]["name"] == "my_factory"
    assert meta["project"]["dependencies"] == [f"{DISTRIBUTION}>=0.1.0"]
    assert meta["project"]["scripts"] == init.SCRIPTS
    assert meta["tool"]["crewai"]["type"] == "flow"
    assert meta["tool"]["crewai"]["project_id"]  # so that `crewai run` writes none
    assert meta["tool"]["uv"] == {"managed": False}
    # The config is ours, commented, with the spec where the project keeps it.
    factory = (root / "config" / "factory.yaml").read_text(encoding="utf-8")
    assert "\nspec: specs/wordcount.yaml\n" in factory and factory.startswith("#")
    assert "SPEC=specs/wordcount.yaml" in (root / ".env.example").read_text(encoding="utf-8")

    out = darkfactory("validate", "specs/wordcount.yaml", cwd=root)
    assert out.returncode == 0, out.stderr
    assert f"config {root / 'config'}: ok" in out.stdout
    # The example tool's own test passes where the project keeps it.
    test = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tools"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert test.returncode == 0, test.stdout + test.stderr
    assert "1 passed" in test.stdout


def test_init_refuses_a_folder_that_is_not_empty(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine\n", encoding="utf-8")
    out = darkfactory("init", cwd=tmp_path)
    assert out.returncode == 2
    assert "is not empty" in out.stderr and "--force" in out.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]

    out = darkfactory("init", "--force", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "notes.txt").read_text(encoding="utf-8") == "mine\n"
    assert (tmp_path / "config" / "agents.yaml").is_file()


def test_project_name_is_an_identifier() -> None:
    assert init.project_name(Path("/x/My Factory-2")) == "my_factory_2"
    assert init.project_name(Path("/x/42")) == "factory_42"
    assert init.project_name(Path("/x/---")) == "factory"


# -- one fact, one place: what pyproject.toml repeats ---------------------------------------
def test_pyproject_names_what_the_package_knows() -> None:
    assert PYPROJECT["project"]["name"] == DISTRIBUTION
    assert PYPROJECT["project"]["scripts"] == {"darkfactory": "darkfactory.cli:main"}
    assert PYPROJECT["tool"]["crewai"]["type"] == "flow"
    assert PYPROJECT["tool"]["crewai"]["project_id"]
    assert PYPROJECT["tool"]["uv"] == {"managed": False}
    wheel = PYPROJECT["tool"]["hatch"]["build"]["targets"]["wheel"]
    assert wheel["force-include"] == {
        src: f"darkfactory/{dst}" for src, dst in project.SHIPPED.items()
    }
    assert all((REPO / src).exists() for src in project.SHIPPED)
    assert wheel["hooks"]["custom"]["editable-scripts"] == init.SCRIPTS


@pytest.mark.parametrize("script", sorted(init.SCRIPTS))
def test_each_crewai_script_is_a_function(script: str) -> None:
    module, _, function = init.SCRIPTS[script].partition(":")
    assert callable(getattr(importlib.import_module(module), function))
