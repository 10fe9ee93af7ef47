"""The wheel, installed into a fresh virtual environment next to another distribution that
ships top-level ``tools`` and ``crews`` packages and a ``run_crew`` script: both work. Then,
from that environment, ``darkfactory rehearse``, and a project made by ``darkfactory init``
with a tool of its own, run through the CrewAI command line (``crewai run``, ``crewai flow
plot``) with a scripted model.

Offline and quick: the wheel is built without build isolation (hatchling is a development
dependency), and the fresh environment gets Dark Factory's dependencies through a ``.pth``
file naming this environment's site-packages. A sandbox shows a command only the
interpreter's own prefix, not the borrowed packages, so the runs here use the ``local``
backend: the sandboxes are tested elsewhere, the packaging is what is tested here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
import yaml
from test_crewai_cli import edges_in

from darkfactory import DISTRIBUTION, __version__
from darkfactory.reporting.trace import read_trace

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parent.parent
HERE = Path(sys.executable).parent  # this environment's bin/: pip, crewai, uv
OTHER = "otherdist"
STAMP = '''
"""``stamp``: write one line into STAMP.txt at the workspace root (a project's own tool)."""

from pydantic import BaseModel, Field

from darkfactory.tools._base import ToolArgs, WorkspaceTool
from darkfactory.workspace.paths import PathRefused, resolve, write_text


class StampArgs(ToolArgs):
    text: str = Field(description="The line to write.")


class StampTool(WorkspaceTool):
    name: str = "stamp"
    description: str = "Write one line of text into STAMP.txt at the workspace root."
    args_schema: type[BaseModel] = StampArgs

    def _run(self, text: str) -> str:
        try:
            path = resolve(self.run_context, "STAMP.txt", write=True)
        except PathRefused as refused:
            return f"ERROR: {refused.message}"
        return f"stamped {write_text(path, text + chr(10), 'STAMP.txt')} bytes"
'''


def run(argv: list[str | Path], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(
        [str(a) for a in argv],
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    return out


def ok(out: subprocess.CompletedProcess[str]) -> str:
    assert out.returncode == 0, f"{out.args}\n{out.stdout}\n{out.stderr}"
    return out.stdout


def other_wheel(dist: Path) -> Path:
    """A distribution with top-level ``tools`` and ``crews`` packages, a ``run_crew`` script
    and a tool registered through Dark Factory's entry point group."""
    files = {
        "tools/__init__.py": "def hello():\n    print('the other tools package')\n",
        "tools/shout.py": (
            "from crewai.tools import BaseTool\n\n\nclass ShoutTool(BaseTool):\n"
            '    name: str = "shout"\n    description: str = "The text, in capitals."\n\n'
            "    def _run(self, text: str) -> str:\n        return text.upper()\n"
        ),
        "crews/__init__.py": "CREW = 'the other crews package'\n",
        f"{OTHER}-1.0.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {OTHER}\nVersion: 1.0\n",
        f"{OTHER}-1.0.dist-info/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
        f"{OTHER}-1.0.dist-info/entry_points.txt": (
            "[console_scripts]\nrun_crew = tools:hello\n\n"
            "[darkfactory.tools]\nshout = tools.shout:ShoutTool\n"
        ),
    }
    files[f"{OTHER}-1.0.dist-info/RECORD"] = "".join(f"{name},,\n" for name in files) + (
        f"{OTHER}-1.0.dist-info/RECORD,,\n"
    )
    path = dist / f"{OTHER}-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as whl:
        for name, text in files.items():
            whl.writestr(name, text)
    return path


def fresh_venv(path: Path) -> Path:
    """A new environment (no pip of its own) that borrows this one's packages, last on its path."""
    ok(run([sys.executable, "-m", "venv", "--without-pip", path], cwd=path.parent))
    site = Path(
        ok(
            run(
                [
                    path / "bin" / "python",
                    "-c",
                    "import sysconfig; print(sysconfig.get_paths()['purelib'])",
                ],
                cwd=path,
            )
        ).strip()
    )
    (site / "zz_borrowed.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
    return path / "bin"


def pip_install(venv_bin: Path, *args: str | Path) -> None:
    ok(
        run(
            [
                sys.executable,
                "-m",
                "pip",
                "--python",
                venv_bin / "python",
                "install",
                "-q",
                "--no-index",
                "--no-deps",
                *args,
            ],
            cwd=venv_bin,
        )
    )


def test_the_wheel_installs_beside_another_tools_package_and_runs_a_project(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    ok(
        run(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                REPO,
                "--no-deps",
                "--no-build-isolation",
                "--no-index",
                "-q",
                "-w",
                dist,
            ],
            cwd=tmp_path,
        )
    )
    (wheel,) = dist.glob("*.whl")
    assert wheel.name == f"{DISTRIBUTION.replace('-', '_')}-{__version__}-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as whl:
        names = whl.namelist()
        scripts = whl.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert {n.split("/")[0] for n in names} == {
        "darkfactory",
        f"darkfactory_crew-{__version__}.dist-info",
    }
    assert "darkfactory/_examples/specs/wordcount.yaml" in names
    assert "darkfactory/_default_config/agents.yaml" in names
    assert scripts.split() == ["[console_scripts]", "darkfactory", "=", "darkfactory.cli:main"]

    venv = fresh_venv(tmp_path / "venv")
    pip_install(venv, wheel)
    pip_install(venv, other_wheel(dist))

    # Both work: the other distribution's packages and script, and ours.
    assert ok(run([venv / "run_crew"], cwd=tmp_path)) == "the other tools package\n"
    assert "the other crews package" in ok(
        run(
            [venv / "python", "-c", "import crews, tools; tools.hello(); print(crews.CREW)"],
            cwd=tmp_path,
        )
    )
    nowhere = tmp_path / "nowhere"
    nowhere.mkdir()
    spec = REPO / "examples" / "specs" / "wordcount.yaml"
    site = (
        venv.parent
        / "lib"
        / f"python{sys.version_info.major}.{sys.version_info.minor}"
        / "site-packages"
    )
    assert f"config {site / 'darkfactory' / '_default_config'}: ok" in ok(
        run([venv / "darkfactory", "validate", spec], cwd=nowhere)
    )

    # rehearse, from the example the wheel carries (no repository around it).
    out = run(
        [
            venv / "darkfactory",
            "rehearse",
            "--sandbox",
            "local",
            "--out",
            tmp_path / "runs",
        ],
        cwd=nowhere,
    )
    assert out.stdout.startswith("delivered: Word count CLI"), out.stdout + out.stderr
    assert "(scripted model, not AI)" in out.stdout
    assert str(site / "darkfactory" / "_examples" / "playbooks" / "wordcount.yaml") in out.stderr

    # A project of one's own: its tool, an installed package's tool, through `crewai run`.
    ok(run([venv / "darkfactory", "init", "proj"], cwd=tmp_path))
    proj = tmp_path / "proj"
    (proj / "tools" / "stamp.py").write_text(STAMP.lstrip(), encoding="utf-8")
    agents = yaml.safe_load((proj / "config" / "agents.yaml").read_text(encoding="utf-8"))
    agents["developer"]["tools"].append("stamp")
    agents["tech_writer"]["tools"].append("shout")
    (proj / "config" / "agents.yaml").write_text(
        yaml.safe_dump(agents, sort_keys=False), encoding="utf-8"
    )
    factory = proj / "config" / "factory.yaml"
    factory.write_text(
        factory.read_text(encoding="utf-8").replace("  backend: auto", "  backend: local"),
        encoding="utf-8",
    )
    book = yaml.safe_load((proj / "specs" / "wordcount.playbook.yaml").read_text(encoding="utf-8"))
    book["roles"]["developer"].insert(
        0, {"tool": "stamp", "args": {"text": "made with a project tool"}}
    )
    (proj / "specs" / "stamp.playbook.yaml").write_text(
        yaml.safe_dump(book, sort_keys=False), encoding="utf-8"
    )

    assert f"config {proj / 'config'}: ok" in ok(
        run([venv / "darkfactory", "validate", "specs/wordcount.yaml"], cwd=proj)
    )
    pip_install(
        venv, "--no-build-isolation", "-e", proj
    )  # the project's scripts: kickoff, plot, ...
    pyproject = (proj / "pyproject.toml").read_bytes()
    active = {
        "PATH": f"{venv}{os.pathsep}{HERE}{os.pathsep}{os.environ['PATH']}",
        "VIRTUAL_ENV": str(venv.parent),
    }

    out = run(
        [HERE / "crewai", "run"], cwd=proj, MODEL="scripted:specs/stamp.playbook.yaml", **active
    )
    assert "delivered: Word count CLI - acceptance 8/8" in out.stdout, out.stdout + out.stderr
    (run_dir,) = (proj / "runs").glob("2*")
    assert (
        json.loads((run_dir / "report.json").read_text(encoding="utf-8"))["status"] == "delivered"
    )
    stamps = [
        r
        for r in read_trace(run_dir / "trace.jsonl")
        if r["kind"] == "tool_call" and r["tool"] == "stamp"
    ]
    assert [(r["role"], r["outcome"]) for r in stamps] == [("Software Developer", "ok")]
    assert (run_dir / "workspace" / "STAMP.txt").read_text(
        encoding="utf-8"
    ) == "made with a project tool\n"
    assert (run_dir / "tools" / "stamp.py").is_file()  # the run keeps the tools it ran with

    out = run([HERE / "crewai", "flow", "plot"], cwd=proj, **active)
    edges = edges_in(proj / "runs" / "flow" / "factory_flow.html")
    assert ("verify", "fix", "needs_fix") in edges and (
        "output_review",
        "deliver",
        "ship",
    ) in edges, out.stderr
    assert (proj / "pyproject.toml").read_bytes() == pyproject
    assert not (proj / "uv.lock").exists()
