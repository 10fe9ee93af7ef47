"""The registry of CrewAI tools a role may name in ``config/agents.yaml``, from three sources.

- Built in: a module of this package (``read_file.py`` is ``read_file``).
- The project's: a module in its ``tools/`` folder, beside ``config/``, loaded by file path
  as ``darkfactory._project_tools_<hash>.<name>``: never as a top-level ``tools`` package,
  so a project's ``tools/`` and another distribution's ``tools`` package cannot shadow
  each other or these.
- An installed package's: an entry point of the group ``darkfactory.tools``, named like the
  tool, whose value is ``module:Class`` or a module.

A module defines exactly one ``BaseTool`` subclass. A ``WorkspaceTool`` is built with the
run's context (workspace, sandbox); any other ``BaseTool`` with no arguments. A name two
sources define is a ``ConfigError`` naming both.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.machinery
import importlib.util
import inspect
import pkgutil
import sys
from dataclasses import dataclass
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from darkfactory.errors import ConfigError

if TYPE_CHECKING:
    from crewai.tools import BaseTool

    from darkfactory.workspace.context import RunContext

#: The entry-point group through which an installed package registers tools.
ENTRY_POINT_GROUP = "darkfactory.tools"
#: Files of a project's ``tools/`` that are not tools: tests and private helpers.
_NOT_TOOLS = ("_", "test_")


@dataclass(frozen=True)
class ToolSource:
    """Where the tool ``name`` is defined; ``origin`` says it to a person."""

    name: str
    origin: str
    module: str  # the import name of its module
    attr: str | None = None  # an entry point's ``:Class``
    path: Path | None = None  # a project tool's file


def tool_sources(tools_dir: Path | None = None) -> dict[str, ToolSource]:
    """Every tool by name: built in, in the project's ``tools_dir``, then from entry points.

    Nothing is imported (cheap). A name defined twice raises a ``ConfigError``."""
    found: dict[str, ToolSource] = {}
    for source in (*_builtin(), *_project(tools_dir), *_entry_points()):
        other = found.get(source.name)
        if other is not None:
            raise ConfigError(
                f"tool {source.name!r} is defined twice: {other.origin}, and {source.origin}",
                file=source.path or other.path,
                hint="rename one of them: agents.yaml names a tool by its name alone",
            )
        found[source.name] = source
    return found


def available_tool_names(tools_dir: Path | None = None) -> list[str]:
    """The name of every tool a role may be given (``tool_sources``), sorted."""
    return sorted(tool_sources(tools_dir))


@cache
def tool_class(name: str, tools_dir: Path | None = None) -> type[BaseTool]:
    """The ``BaseTool`` subclass of the tool ``name`` (imported on first use)."""
    from crewai.tools import BaseTool

    source = tool_sources(tools_dir).get(name)
    if source is None:
        raise KeyError(f"no tool named {name!r}")
    if source.path is not None:
        module = _import_project_module(source.path)
    else:
        module = importlib.import_module(source.module)
    if source.attr is not None:
        found = getattr(module, source.attr, None)
        if not (inspect.isclass(found) and issubclass(found, BaseTool)):
            raise TypeError(f"{source.origin} is not a CrewAI BaseTool subclass")
        return found
    return _the_tool_class(module, source.origin)


def build_tool(
    name: str, ctx: RunContext, tools_dir: Path | None = None, *, output_tokens: int | None = None
) -> BaseTool:
    """An instance of tool ``name`` bound to the run ``ctx``; a ``WorkspaceTool`` that
    reads files keeps each answer within ``output_tokens`` (``WorkspaceTool.output_tokens``)."""
    from darkfactory.tools._base import WorkspaceTool

    cls = tool_class(name, tools_dir)
    if issubclass(cls, WorkspaceTool):
        return cls(ctx=ctx, output_tokens=output_tokens)  # type: ignore[call-arg]
    return cls()  # type: ignore[call-arg]


# -- the three sources -----------------------------------------------------------------------
def _builtin() -> list[ToolSource]:
    return [
        ToolSource(m.name, f"Dark Factory's built-in {__name__}.{m.name}", f"{__name__}.{m.name}")
        for m in pkgutil.iter_modules(__path__)
        if not m.name.startswith("_")
    ]


def _project(tools_dir: Path | None) -> list[ToolSource]:
    if tools_dir is None or not tools_dir.is_dir():
        return []
    return [
        ToolSource(p.stem, f"the project's {p}", p.stem, path=p.resolve())
        for p in sorted(tools_dir.glob("*.py"))
        if p.stem.isidentifier() and not p.stem.startswith(_NOT_TOOLS)
    ]


@cache
def _entry_points() -> tuple[ToolSource, ...]:
    return tuple(_from_entry_point(ep) for ep in entry_points(group=ENTRY_POINT_GROUP))


def _from_entry_point(ep: EntryPoint) -> ToolSource:
    dist = f"{ep.dist.name} {ep.dist.version}" if ep.dist is not None else "an installed package"
    origin = f"{dist}'s entry point {ENTRY_POINT_GROUP}: {ep.name} = {ep.value}"
    module, _, attr = ep.value.partition(":")
    return ToolSource(ep.name, origin, module.strip(), attr=attr.strip() or None)


# -- loading -----------------------------------------------------------------------------------
def _import_project_module(path: Path) -> ModuleType:
    """``path`` imported as a module of a package private to its folder (relative imports of
    the folder's other modules work; nothing is put on ``sys.path``)."""
    folder = path.parent
    package = f"darkfactory._project_tools_{hashlib.sha256(str(folder).encode()).hexdigest()[:12]}"
    if package not in sys.modules:
        spec = importlib.machinery.ModuleSpec(package, None, is_package=True)
        spec.submodule_search_locations = [str(folder)]
        sys.modules[package] = importlib.util.module_from_spec(spec)
    return importlib.import_module(f"{package}.{path.stem}")


def _the_tool_class(module: ModuleType, origin: str) -> type[BaseTool]:
    from crewai.tools import BaseTool

    from darkfactory.tools._base import WorkspaceTool

    found = [
        obj
        for obj in vars(module).values()
        if inspect.isclass(obj)
        and issubclass(obj, BaseTool)
        and obj not in (BaseTool, WorkspaceTool)
        and obj.__module__ == module.__name__
    ]
    if len(found) != 1:
        raise TypeError(f"{origin} must define exactly one BaseTool subclass, found {len(found)}")
    return found[0]
