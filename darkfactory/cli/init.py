"""``darkfactory init [DIR]``: a new Dark Factory project, a CrewAI project its user owns.

``project_files`` says what goes in it: a pyproject.toml for the CrewAI CLI, a copy of the
default config/, an example tool with its test, the example spec with its playbook."""

from __future__ import annotations

import argparse
import re
import uuid
from pathlib import Path
from string import Template

from darkfactory import DISTRIBUTION, __version__
from darkfactory.cli._common import Subparsers, UsageError
from darkfactory.errors import ExitCode
from darkfactory.project import CONFIG_DIR, PACKAGE_DIR, TOOLS_DIR, shipped

TEMPLATES = PACKAGE_DIR / "project_template"
#: The scripts of a CrewAI project (what ``crewai run``, ``crewai flow plot``, ... run) and
#: the function each is (``darkfactory.crewai_scripts``). A new project declares them; an editable install
#: of Dark Factory's repository gets them from hatch_build.py. The wheel ships none: they
#: would replace another CrewAI project's in the same environment.
SCRIPTS = {
    "kickoff": "darkfactory.crewai_scripts:kickoff",
    "run_crew": "darkfactory.crewai_scripts:kickoff",
    "plot": "darkfactory.crewai_scripts:plot",
    "test": "darkfactory.crewai_scripts:test",
    "train": "darkfactory.crewai_scripts:train",
    "replay": "darkfactory.crewai_scripts:replay",
}
#: The example spec and its playbook, as the project names them.
SPEC = "specs/wordcount.yaml"
PLAYBOOK = "specs/wordcount.playbook.yaml"


def add_parser(subparsers: Subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "init",
        help="make a new project: config/, tools/, specs/ and a pyproject.toml for crewai run",
    )
    p.add_argument(
        "dir",
        type=Path,
        nargs="?",
        default=Path("."),
        help="the project's folder, new or empty (default: the working directory)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="write into a folder that is not empty (its files of the same names are replaced)",
    )
    return p


def run(args: argparse.Namespace) -> int:
    target: Path = args.dir
    if target.exists() and not target.is_dir():
        raise UsageError(f"{target} is not a folder")
    if target.is_dir() and any(target.iterdir()) and not args.force:
        raise UsageError(
            f"{target} is not empty",
            hint="name a new folder (darkfactory init myfactory), or add --force to write "
            "the project's files into this one (files of the same names are replaced)",
        )
    files = project_files(project_name(target))
    for rel, text in files.items():
        path = target / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    print(f"made a Dark Factory project in {target} ({len(files)} files); next:")
    if target.resolve() != Path.cwd().resolve():
        print(f"  cd {target}")
    print("  pip install -e .        # once: the scripts crewai run calls")
    print("  cp .env.example .env    # then set MODEL and its key")
    print(f"  darkfactory validate {SPEC}")
    print(f"  crewai run              # no model yet? MODEL=scripted:{PLAYBOOK} crewai run")
    return int(ExitCode.DELIVERED)


def project_name(folder: Path) -> str:
    """The folder's name as an ASCII identifier: a distribution name that ``crewai chat`` can
    also import as a package."""
    name = re.sub(r"[^a-z0-9]+", "_", folder.resolve().name.lower()).strip("_")
    return name if name and not name[0].isdigit() else f"factory_{name}".rstrip("_")


def project_files(name: str) -> dict[str, str]:
    """Every file of a new project called ``name``, by its path in the project."""

    def template(file: str, **values: str) -> str:
        return Template((TEMPLATES / file).read_text(encoding="utf-8")).substitute(values)

    def example(path: Path) -> str:
        # The shipped files name the example spec where the repository keeps it.
        return path.read_text(encoding="utf-8").replace("examples/specs/", "specs/")

    scripts = "\n".join(f'{script} = "{target}"' for script, target in SCRIPTS.items())
    files = {
        "pyproject.toml": template(
            "pyproject.toml.tmpl",
            name=name,
            requirement=f"{DISTRIBUTION}>={__version__}",
            scripts=scripts,
            project_id=str(uuid.uuid4()),
        ),
        "README.md": template("README.md.tmpl", name=name, dist=DISTRIBUTION),
        ".gitignore": template("gitignore.tmpl"),
        ".env.example": example(shipped(".env.example")),
        f"src/{name}/__init__.py": "",
        f"src/{name}/crew.py": template(
            "crew.py.tmpl", class_name=name.replace("_", " ").title().replace(" ", "")
        ),
        SPEC: example(shipped("examples/specs/wordcount.yaml")),
        PLAYBOOK: example(shipped("examples/playbooks/wordcount.yaml")),
    }
    for tool in ("word_frequency.py", "test_word_frequency.py"):
        files[f"{TOOLS_DIR}/{tool}"] = example(shipped(f"{TOOLS_DIR}/{tool}"))
    for config in sorted(shipped(CONFIG_DIR).glob("*.yaml")):
        files[f"{CONFIG_DIR}/{config.name}"] = example(config)
    return files
