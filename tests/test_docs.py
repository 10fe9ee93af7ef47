"""The documentation site builds with ``mkdocs build --strict``, and the generated parts are there.

The configuration reference is generated from ``darkfactory.config`` by the hook
``docs/hooks/config_reference.py``; reading the built HTML proves the hook ran and covers
every key the code accepts.
"""

from __future__ import annotations

import ast
import html
import re
from pathlib import Path

from pydantic import BaseModel

from darkfactory import config as cfg
from darkfactory.errors import ExitCode

REPO = Path(__file__).resolve().parent.parent


def field_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Every key of ``model``, nested models flattened as ``sandbox.memory_mb``."""
    keys = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys += field_keys(annotation, f"{prefix}{name}.")
        else:
            keys.append(f"{prefix}{name}")
    return keys


def page(site: Path, name: str) -> str:
    """The built HTML of a page."""
    return (site / name / "index.html").read_text(encoding="utf-8")


def plain(markup: str) -> str:
    """The page's text: tags (including code highlighting) stripped, entities decoded."""
    return html.unescape(re.sub(r"<[^>]+>", "", markup))


def test_every_page_of_the_nav_is_built(site: Path) -> None:
    for name in (
        "getting-started",
        "how-it-works",
        "architecture",
        "threat-model",
        "configuration",
        "spec-formats",
        "models",
        "sandboxes",
        "extending",
        "report",
        "observability",
        "misbehaving-models",
        "repositories",
        "exit-codes",
        "troubleshooting",
        "benchmarks",
    ):
        assert (site / name / "index.html").is_file(), name
    assert (site / "index.html").is_file()
    assert not (site / "hooks").exists(), "the hook's source must not be published"


def test_configuration_reference_lists_every_factory_key(site: Path) -> None:
    text = page(site, "configuration")
    keys = field_keys(cfg.FactoryConfig)
    assert "sandbox.memory_mb" in keys and "budget.max_llm_calls" in keys
    missing = [k for k in keys if f"<td><code>{k}</code></td>" not in text]  # a table cell
    assert not missing, f"factory.yaml keys missing from the built page: {missing}"
    assert "config-reference:" not in text, "a marker was left unreplaced"


def test_configuration_reference_lists_every_role_and_task_key(site: Path) -> None:
    text = page(site, "configuration")
    expected = [
        *field_keys(cfg.AgentConfig),
        *field_keys(cfg.TaskConfig),
        *cfg.REQUIRED_ROLES,
        *cfg.REQUIRED_TASKS,
        *(f"{{{p}}}" for p in cfg.PLACEHOLDERS),
    ]
    missing = [k for k in expected if f"<td><code>{k}</code></td>" not in text]
    assert not missing, f"keys missing from the built configuration page: {missing}"
    # Descriptions come from the models' Field(description=...).
    assert cfg.AgentConfig.model_fields["goal"].description in plain(text)


def test_configuration_reference_lists_every_refused_crewai_key_with_why(site: Path) -> None:
    text = page(site, "configuration")
    words = " ".join(plain(text).split())
    for refused in (cfg.REFUSED_AGENT_KEYS, cfg.REFUSED_TASK_KEYS):
        missing = [k for k in refused if f"<code>{k}</code>" not in text]
        assert not missing, f"refused CrewAI keys missing from the built page: {missing}"
        for key, reason in refused.items():
            # The first letter is capitalized there, `code` is markup.
            assert reason.why[1:].replace("`", "") in words, key
            assert reason.instead[1:].replace("`", "") in words, key


def test_extending_page_shows_the_tested_example_code(site: Path) -> None:
    shown = plain(page(site, "extending"))
    source = (REPO / "tools" / "word_frequency.py").read_text(encoding="utf-8")
    for line in source.splitlines():
        assert line in shown, f"tools/word_frequency.py line not on the page: {line!r}"


def test_benchmarks_page_keeps_the_marker_for_the_table(site: Path) -> None:
    assert "<!-- bench:sandbox_overhead -->" in page(site, "benchmarks")


def _is_trace_write(func: ast.Attribute) -> bool:
    """``trace.write`` / ``<anything>.trace.write``."""
    owner = func.value
    name = owner.id if isinstance(owner, ast.Name) else getattr(owner, "attr", None)
    return func.attr == "write" and name == "trace"


def trace_event_kinds() -> set[str]:
    """Every event kind the code writes: ``trace.write("kind", ...)`` / ``ctx.emit("kind", ...)``."""
    kinds = set()
    for package in ("darkfactory",):
        for path in (REPO / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and (node.func.attr == "emit" or _is_trace_write(node.func))
                    and node.args
                    and isinstance(node.args[0], ast.Constant)
                    and isinstance(node.args[0].value, str)
                ):
                    kinds.add(node.args[0].value)
    return kinds


def test_report_page_documents_every_trace_event_kind(site: Path) -> None:
    """The trace table is generated from EVENT_FIELDS; every kind the code writes is in it."""
    from darkfactory.reporting.trace import EVENT_FIELDS

    kinds = trace_event_kinds() | set(EVENT_FIELDS)
    assert {"run_start", "llm_call", "tool_call", "test_outcome", "run_end"} <= kinds
    text = page(site, "report")
    missing = sorted(k for k in kinds if f"<td><code>{k}</code></td>" not in text)
    assert not missing, f"trace event kinds missing from docs/report.md: {missing}"
    assert "reference:" not in text, "a marker was left unreplaced"


def test_exit_codes_page_lists_every_exit_code(site: Path) -> None:
    text = page(site, "exit-codes")
    for code in ExitCode:
        assert f"<td>{code.value}</td>" in text and f"<code>{code.name}</code>" in text, code
