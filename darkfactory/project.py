"""Where a Dark Factory project keeps its rooms (``config/``, ``tools/``), and where the files
the wheel ships (the default config, the example spec) are, installed or in a checkout."""

from __future__ import annotations

from pathlib import Path

from darkfactory.errors import InputError

CONFIG_DIR = "config"
TOOLS_DIR = "tools"
#: What makes a folder a project: its ``config/agents.yaml``.
MARKER = Path(CONFIG_DIR) / "agents.yaml"

PACKAGE_DIR = Path(__file__).resolve().parent
#: Files the wheel carries inside the package (pyproject.toml's ``force-include``), by their
#: path in a source checkout. Installed, they are under ``darkfactory/``; in a checkout,
#: the originals are read.
SHIPPED = {
    "config": "_default_config",
    ".env.example": "_examples/env.example",
    "examples/specs/wordcount.yaml": "_examples/specs/wordcount.yaml",
    "examples/playbooks/wordcount.yaml": "_examples/playbooks/wordcount.yaml",
    "tools/word_frequency.py": "_examples/tools/word_frequency.py",
    "tools/test_word_frequency.py": "_examples/tools/test_word_frequency.py",
}


def shipped(checkout_path: str) -> Path:
    """A file the wheel ships (``SHIPPED``): the installed copy, else the checkout's."""
    installed = PACKAGE_DIR / SHIPPED[checkout_path]
    return installed if installed.exists() else PACKAGE_DIR.parent / checkout_path


#: A run's workspace is ``runs/<id>/workspace`` beside ``runs/<id>/spec/spec.json``
#: (``workspace.rundir``'s ``WORKSPACE_DIR``, ``SPEC_DIR``, ``SPEC_JSON``; a test checks).
RUN_WORKSPACE = "workspace"
RUN_SPEC = Path("spec") / "spec.json"


def run_workspace_of(path: Path) -> Path | None:
    """The run workspace ``path`` is in (model-written: never a project), or None."""
    here = path.resolve()
    return next(
        (
            d
            for d in (here, *here.parents)
            if d.name == RUN_WORKSPACE and (d.parent / RUN_SPEC).is_file()
        ),
        None,
    )


def find_root(start: Path | None = None) -> Path | None:
    """The nearest folder, from ``start`` (the working directory) up, with ``config/agents.yaml``.

    Never one inside a run's workspace: a model wrote it, and a project's ``tools/`` are
    imported on the host (from ``runs/<id>/workspace`` the search goes on at ``runs/<id>``,
    whose ``config/`` and ``tools/`` are the run's own copies).
    """
    here = (start or Path.cwd()).resolve()
    inside = run_workspace_of(here)
    candidates = (here, *here.parents) if inside is None else inside.parents
    return next((d for d in candidates if (d / MARKER).is_file()), None)


def refuse_run_workspace(path: Path, what: str) -> None:
    """``InputError`` when ``path`` is in a run's workspace (model-written, never trusted)."""
    inside = run_workspace_of(path)
    if inside is not None:
        raise InputError(
            f"{what} {path} is inside the run workspace {inside}: a model wrote it, and a "
            "project's config and tools run on this machine",
            hint="use your own project (darkfactory init DIR), or the run's copy of its "
            f"config: {inside.parent / CONFIG_DIR}",
        )


def checked_root(path: Path) -> Path:
    """``path`` as a project root (``--project``), or an ``InputError`` saying what is missing."""
    refuse_run_workspace(path, "--project")
    if not (path / MARKER).is_file():
        raise InputError(
            f"{path} is not a Dark Factory project: it has no {MARKER}",
            hint="darkfactory init DIR makes one; a project holds config/ (and tools/, specs/)",
        )
    return path


def config_dir(start: Path | None = None) -> Path:
    """The project's ``config/`` found from ``start`` (the working directory), else the
    default config packaged with Dark Factory."""
    root = find_root(start)
    return root / CONFIG_DIR if root is not None else shipped("config")


def tools_dir(config: Path) -> Path | None:
    """The project's ``tools/``: the folder beside ``config`` (none beside the packaged config)."""
    beside = config.resolve().parent
    refuse_run_workspace(beside, "the config directory's project")
    if beside == PACKAGE_DIR:  # darkfactory/_default_config: darkfactory/tools is built in
        return None
    tools = beside / TOOLS_DIR
    return tools if tools.is_dir() else None
