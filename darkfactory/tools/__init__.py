"""Dark Factory's CrewAI tools, one module each, and the registry that finds them.

A tool is named in ``config/agents.yaml`` by its module name: ``tools/read_file.py`` is
``read_file``. Drop a module with one ``BaseTool`` subclass into this folder and name it in
``agents.yaml`` to give a role a new tool. A ``WorkspaceTool`` subclass is built with the
run's context (workspace, sandbox); any other ``BaseTool`` is built with no arguments.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from crewai.tools import BaseTool

    from darkfactory.workspace.context import RunContext


def available_tool_names() -> list[str]:
    """Names of every tool module in this package, without importing them (cheap)."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


@cache
def tool_class(name: str) -> type[BaseTool]:
    """The ``BaseTool`` subclass defined in ``tools/<name>.py``."""
    from crewai.tools import BaseTool

    from darkfactory.tools._base import WorkspaceTool

    module = importlib.import_module(f"{__name__}.{name}")
    found = [
        obj
        for obj in vars(module).values()
        if inspect.isclass(obj)
        and issubclass(obj, BaseTool)
        and obj not in (BaseTool, WorkspaceTool)
        and obj.__module__ == module.__name__
    ]
    if len(found) != 1:
        raise TypeError(
            f"tools/{name}.py must define exactly one BaseTool subclass, found {len(found)}"
        )
    return found[0]


def build_tool(name: str, ctx: RunContext) -> BaseTool:
    """An instance of tool ``name`` bound to the run ``ctx``."""
    from darkfactory.tools._base import WorkspaceTool

    cls = tool_class(name)
    if issubclass(cls, WorkspaceTool):
        return cls(ctx=ctx)  # type: ignore[call-arg]
    return cls()  # type: ignore[call-arg]
