"""mkdocs hook: reference tables generated from the code, so they cannot drift.

A page may contain these markers (each alone on a line); the hook replaces each with
Markdown built from ``darkfactory.config``, ``darkfactory.reporting.trace`` and ``darkfactory.models.prices``
(none of which imports CrewAI):

``<!-- config-reference:factory -->``
    Every key of ``factory.yaml`` (``FactoryConfig``, nested keys as ``sandbox.memory_mb``):
    name, type, default and the field's description.
``<!-- config-reference:agent -->`` / ``<!-- config-reference:task -->``
    The keys of one role in ``agents.yaml`` (``AgentConfig``) / one task in ``tasks.yaml``
    (``TaskConfig``).
``<!-- config-reference:agent_refused -->`` / ``<!-- config-reference:task_refused -->``
    The keys of CrewAI's ``Agent`` / ``Task`` that a role / a task refuses
    (``REFUSED_AGENT_KEYS`` / ``REFUSED_TASK_KEYS``), with why and what to do instead.
``<!-- config-reference:roles -->``
    The roles of the shipped ``config/agents.yaml``, which ones the pipeline requires, their
    role text and tools.
``<!-- config-reference:tasks -->``
    The tasks the pipeline requires and the phase that runs each (read from
    ``darkfactory/engine/flow.py``).
``<!-- config-reference:placeholders -->``
    The placeholders allowed in ``tasks.yaml`` (``PLACEHOLDERS``) and what each holds.
``<!-- reference:trace -->``
    Every event kind of ``trace.jsonl`` with the fields it always has
    (``darkfactory.reporting.trace.EVENT_FIELDS``).
``<!-- reference:prices -->``
    The prices of the models these docs name (``PRICED_MODELS``), from the installed
    genai-prices table through ``darkfactory.models.prices``, and the table's version.

An unknown marker, or a placeholder without an explanation here, fails the build.
"""

from __future__ import annotations

import ast
import re
import sys
import types
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from mkdocs.exceptions import PluginError

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from annotated_types import Ge, Gt, Le, Lt  # noqa: E402
from pydantic import BaseModel  # noqa: E402
from pydantic.fields import FieldInfo  # noqa: E402
from pydantic_core import PydanticUndefined  # noqa: E402

from darkfactory import config as cfg  # noqa: E402

MARKER = re.compile(r"^<!--\s*(?:config-)?reference:([a-z_]+)\s*-->[ \t]*$", re.MULTILINE)


# -- rendering a field ---------------------------------------------------------------------
def _cell(text: str) -> str:
    """Text safe for one Markdown table cell."""
    return " ".join(text.split()).replace("|", "\\|")


def _type(annotation: Any, metadata: list[Any]) -> str:
    origin = get_origin(annotation)
    if origin is Annotated:  # e.g. list[Annotated[str, Field(...)]]: the type, then its bounds
        inner, *extra = get_args(annotation)
        return _type(inner, [*metadata, *extra])
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        text = " or ".join(_type(a, []) for a in args)
    elif origin is Literal:
        text = "one of " + ", ".join(f"`{v}`" for v in get_args(annotation))
    elif origin is list:
        (item,) = get_args(annotation) or (Any,)
        text = f"list of {_type(item, [])}"
    else:
        text = {str: "text", int: "integer", float: "number", bool: "`true` or `false`"}.get(
            annotation, getattr(annotation, "__name__", str(annotation))
        )
    bounds = []
    for m in metadata:
        if isinstance(m, Gt):
            bounds.append(f"> {m.gt}")
        elif isinstance(m, Ge):
            bounds.append(f"≥ {m.ge}")
        elif isinstance(m, Lt):
            bounds.append(f"< {m.lt}")
        elif isinstance(m, Le):
            bounds.append(f"≤ {m.le}")
        elif getattr(m, "min_length", None):
            bounds.append("not empty")
    return f"{text}, {', '.join(bounds)}" if bounds else text


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "**required**"
    factory = field.default_factory
    value = factory() if factory is not None else field.default  # type: ignore[call-arg]
    if value is None or value is PydanticUndefined:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, float):
        return f"`{value:g}`"
    if isinstance(value, list | tuple) and not value:
        return "`[]`"
    return f"`{value}`"


def _rows(model: type[BaseModel], prefix: str = "") -> list[tuple[str, str, str, str]]:
    rows = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            rows += _rows(annotation, prefix=f"{key}.")
            continue
        rows.append(
            (
                f"`{key}`",
                _type(annotation, list(field.metadata)),
                _default(field),
                field.description or "",
            )
        )
    return rows


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def field_table(model: type[BaseModel]) -> str:
    """A Markdown table of every field of ``model`` (nested models flattened)."""
    return _table(("Key", "Type", "Default", "Description"), _rows(model))


def refused_table(refused: dict[str, cfg.Refusal]) -> str:
    """The refused CrewAI keys, those with the same reason in one row."""
    groups: dict[cfg.Refusal, list[str]] = {}
    for key, reason in refused.items():
        groups.setdefault(reason, []).append(key)
    rows = [
        (
            ", ".join(f"`{k}`" for k in keys),
            reason.why[:1].upper() + reason.why[1:] + ".",
            reason.instead[:1].upper() + reason.instead[1:] + "." if reason.instead else "",
        )
        for reason, keys in groups.items()
    ]
    return _table(("CrewAI key", "Not supported here because", "Instead"), rows)


# -- roles, tasks, placeholders ------------------------------------------------------------
def roles_table() -> str:
    agents = cfg.load_agents(cfg.default_config_dir() / cfg.AGENTS_FILE)
    rows = []
    for key, agent in agents.items():
        required = "yes" if key in cfg.REQUIRED_ROLES else "no"
        if key == cfg.MANAGER:
            tools = "none (the manager delegates)"
        else:
            tools = ", ".join(f"`{t}`" for t in agent.tools) or "none"
        rows.append((f"`{key}`", required, agent.role, tools))
    missing = [r for r in cfg.REQUIRED_ROLES if r not in agents]
    if missing:
        raise PluginError(f"config-reference: agents.yaml lacks required roles {missing}")
    return _table(("Key", "Required", "Role text (`role:`)", "Tools in the shipped config"), rows)


def task_phases() -> dict[str, list[str]]:
    """Task key -> the pipeline phases (FactoryFlow methods) that run it, from the source."""
    source = (REPO / "darkfactory" / "engine" / "flow.py").read_text(encoding="utf-8")
    phases: dict[str, list[str]] = {}
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.FunctionDef):
            continue
        for call in ast.walk(node):
            if (
                isinstance(call, ast.Call)
                and isinstance(call.func, ast.Attribute)
                and call.func.attr == "_crew_phase"
                and call.args
                and isinstance(call.args[0], ast.Constant)
            ):
                phases.setdefault(str(call.args[0].value), []).append(node.name)
    return phases


def tasks_table() -> str:
    phases = task_phases()
    rows = []
    for key in cfg.REQUIRED_TASKS:
        if key not in phases:
            raise PluginError(f"config-reference: no pipeline phase runs required task {key!r}")
        rows.append((f"`{key}`", ", ".join(f"`{p}`" for p in phases[key])))
    return _table(("Task", "Run by the phase"), rows)


def placeholders_table() -> str:
    return _table(
        ("Placeholder", "What the pipeline puts there"),
        [(f"`{{{name}}}`", text) for name, text in cfg.PLACEHOLDERS.items()],
    )


#: When each trace event is written (optional: a kind missing here still gets its row).
EVENT_WHEN = {
    "baseline": "a repository run's suite ran at the base commit, before any model call",
    "reproduction": "a bug's reproduction was checked at the base commit",
    "coverage": "a tests ticket's line coverage was measured (`at`: `base`)",
    "repo_checks": "a tests, docs or migrate ticket's checks were measured in a verify round",
    "deliver": "a repository run pushed its branch or opened a pull request",
    "security": "hostile workspace content was found and undone (a nested `.git`, a link "
    "in the acceptance tests)",
    "run_start": "a new run starts",
    "run_resumed": "`darkfactory resume` continues the run",
    "phase_start": "a phase starts",
    "phase_end": "a phase ends (`commit`: the sha, or null; in verify: `passed`)",
    "acceptance_frozen": "the acceptance tests are frozen",
    "acceptance_restored": "the workspace copy of the acceptance tests was changed and is put back",
    "llm_call": "a model call ends",
    "delegation": "a manager delegates or asks",
    "tool_call": "a tool call ends",
    "file_op": "a file tool acts",
    "sandbox_exec": "a command ran in the sandbox",
    "test_run": "the `run_tests` tool ran pytest",
    "test_outcome": "the verify phase read one test's result",
    "verify": "a verify round ends",
    "failure_classification": "a failed verify round's failures are classified",
    "fix_round": "a fix round starts",
    "doc_example": "the docs check ran one example of the docs",
    "docs_check": "a docs check (strict build and examples) ends",
    "docs_fix_round": "a docs fix round starts",
    "ambiguity": "an agent used `report_ambiguity`",
    "escalation": "the run stops for a person (stuck, or a spec ambiguity)",
    "budget": "a budget ran out",
    "run_end": "the run ends or stops",
}


def trace_table() -> str:
    from darkfactory.reporting.trace import EVENT_FIELDS

    rows = []
    for kind, fields in EVENT_FIELDS.items():
        shown = "; ".join(f"`{name}`: {text}" for name, text in fields.items()) or "-"
        rows.append((f"`{kind}`", EVENT_WHEN.get(kind, ""), shown))
    return _table(("`kind`", "Written when", "Fields it always has"), rows)


#: Models whose price the docs show: those the docs and `.env.example` name, and a few
#: common ones. tests/test_prices.py checks that every model the docs name is priced.
PRICED_MODELS = (
    "openai/gpt-4o-mini",
    "openai/gpt-4o",
    "openai/gpt-4.1-mini",
    "openai/gpt-5-mini",
    "anthropic/claude-sonnet-4-5",
    "anthropic/claude-haiku-4-5",
    "gemini/gemini-2.5-flash",
    "gemini/gemini-2.5-pro",
)


def prices_table() -> str:
    from darkfactory.models.prices import FREE_PREFIXES, price, table_version

    rows = []
    for model in PRICED_MODELS:
        known = price(model)
        if known is None:
            raise PluginError(f"reference:prices: {table_version()} has no price for {model!r}")
        rows.append((f"`{model}`", f"{known[0]:g}", f"{known[1]:g}"))
    free = ", ".join(f"`{p}`" for p in FREE_PREFIXES)
    return (
        _table(("Model", "Input, USD per million tokens", "Output, USD per million tokens"), rows)
        + f"\n\nFrom {table_version()}. Free (cost 0): {free}."
    )


RENDERERS = {
    "factory": lambda: field_table(cfg.FactoryConfig),
    "agent": lambda: field_table(cfg.AgentConfig),
    "task": lambda: field_table(cfg.TaskConfig),
    "agent_refused": lambda: refused_table(cfg.REFUSED_AGENT_KEYS),
    "task_refused": lambda: refused_table(cfg.REFUSED_TASK_KEYS),
    "roles": roles_table,
    "tasks": tasks_table,
    "placeholders": placeholders_table,
    "trace": trace_table,
    "prices": prices_table,
}


def render(name: str) -> str:
    renderer = RENDERERS.get(name)
    if renderer is None:
        raise PluginError(
            f"config-reference: unknown marker {name!r}; known: {', '.join(RENDERERS)}"
        )
    return renderer()


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any, **kwargs: Any) -> str:
    """Replace every ``<!-- config-reference:NAME -->`` line with its generated Markdown."""
    return MARKER.sub(lambda m: render(m.group(1)), markdown)
