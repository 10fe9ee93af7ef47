"""Hatch build hook: an editable install of this repository (``pip install -e .``) gets the
scripts the CrewAI CLI runs here (``crewai run`` runs ``uv run kickoff``); the wheel does not.

In a wheel they would replace a CrewAI project's own ``kickoff`` or ``run_crew`` in the same
environment. The table is ``editable-scripts`` under this hook in pyproject.toml."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

SCRIPT = """#!python
# Written by an editable install of Dark Factory (hatch_build.py): the CrewAI CLI runs it.
import sys

from {module} import {function}

sys.exit({function}())
"""


class CustomBuildHook(BuildHookInterface):
    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if version != "editable":
            return
        self._scripts = Path(tempfile.mkdtemp(prefix="darkfactory-scripts-"))
        for name, target in self.config.get("editable-scripts", {}).items():
            module, _, function = target.partition(":")
            path = self._scripts / name
            path.write_text(SCRIPT.format(module=module, function=function), encoding="utf-8")
            path.chmod(0o755)  # the wheel keeps the mode: an installer copies it
            build_data["shared_scripts"][str(path)] = name

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        if version == "editable":
            shutil.rmtree(self._scripts, ignore_errors=True)
