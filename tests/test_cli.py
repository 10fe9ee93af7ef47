"""Bad input through the real ``darkfactory`` command: a clear message, exit 2, no traceback."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from darkfactory.cli import EXAMPLE_PLAYBOOK, EXAMPLE_SPEC
from darkfactory.errors import PlaybookError
from darkfactory.models.playbook import load_playbook

REPO = Path(__file__).resolve().parent.parent


def darkfactory(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and k != "MODEL"}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "darkfactory", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def assert_bad_input(out: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert out.returncode == 2, (out.returncode, out.stdout, out.stderr)
    assert "Traceback" not in out.stderr and "Traceback" not in out.stdout
    for needle in needles:
        assert needle in out.stderr, (needle, out.stderr)


@pytest.fixture
def config_copy(tmp_path: Path) -> Path:
    dst = tmp_path / "config"
    shutil.copytree(REPO / "config", dst)
    return dst


def test_missing_spec_file(tmp_path: Path) -> None:
    out = darkfactory("run", "nope.yaml", "--model", f"scripted:{EXAMPLE_PLAYBOOK}", cwd=tmp_path)
    assert_bad_input(out, "nope.yaml", "not found")
    assert not (tmp_path / "runs").exists()  # nothing created for bad input


def test_empty_spec(tmp_path: Path) -> None:
    spec = tmp_path / "empty.md"
    spec.write_text("   \n\n")
    out = darkfactory("run", str(spec), "--model", f"scripted:{EXAMPLE_PLAYBOOK}", cwd=tmp_path)
    assert_bad_input(out, "empty.md", "empty")


def test_malformed_yaml_spec_names_the_line(tmp_path: Path) -> None:
    spec = tmp_path / "ticket.yaml"
    spec.write_text("title: x\nacceptance_criteria:\n  - ok\n  - [unclosed\n")
    out = darkfactory("validate", str(spec), cwd=tmp_path)
    assert_bad_input(out, "ticket.yaml:")
    assert any(f"ticket.yaml:{n}" in out.stderr for n in (4, 5)), out.stderr


def test_unknown_config_key(tmp_path: Path, config_copy: Path) -> None:
    factory = config_copy / "factory.yaml"
    factory.write_text(factory.read_text() + "\nmax_fix_round: 2\n")
    out = darkfactory("validate", str(EXAMPLE_SPEC), "--config", str(config_copy), cwd=tmp_path)
    assert_bad_input(out, "factory.yaml", "max_fix_round", "unknown key")


def test_unknown_tool_name(tmp_path: Path, config_copy: Path) -> None:
    agents_path = config_copy / "agents.yaml"
    agents = yaml.safe_load(agents_path.read_text())
    agents["developer"]["tools"].append("run_shell")
    agents_path.write_text(yaml.safe_dump(agents, sort_keys=False))
    out = darkfactory(
        "run",
        str(EXAMPLE_SPEC),
        "--config",
        str(config_copy),
        "--model",
        f"scripted:{EXAMPLE_PLAYBOOK}",
        cwd=tmp_path,
    )
    assert_bad_input(out, "agents.yaml", "run_shell", "developer")


def test_missing_role(tmp_path: Path, config_copy: Path) -> None:
    agents_path = config_copy / "agents.yaml"
    agents = yaml.safe_load(agents_path.read_text())
    del agents["qa_engineer"]
    agents_path.write_text(yaml.safe_dump(agents, sort_keys=False))
    out = darkfactory("validate", str(EXAMPLE_SPEC), "--config", str(config_copy), cwd=tmp_path)
    assert_bad_input(out, "agents.yaml", "qa_engineer")


def test_no_model_configured_says_what_to_set(tmp_path: Path) -> None:
    out = darkfactory("run", str(EXAMPLE_SPEC), cwd=tmp_path)
    assert_bad_input(out, "no model is configured", "MODEL", "darkfactory rehearse")
    assert not (tmp_path / "runs").exists()


def test_hosted_model_without_key_says_which_key(tmp_path: Path) -> None:
    out = darkfactory(
        "run", str(EXAMPLE_SPEC), cwd=tmp_path, env={"MODEL": "anthropic/claude-3-5-haiku-latest"}
    )
    assert_bad_input(out, "ANTHROPIC_API_KEY")


def test_malformed_playbook_names_file_and_line(tmp_path: Path) -> None:
    book = tmp_path / "book.yaml"
    book.write_text("roles:\n  manager:\n    - answer: ok\n      tool: write_file\n")
    out = darkfactory("run", str(EXAMPLE_SPEC), "--model", f"scripted:{book}", cwd=tmp_path)
    assert_bad_input(out, "book.yaml:3", "exactly one of tool, delegate, ask, answer")


def test_playbook_with_a_recursive_alias_is_refused_before_the_run(tmp_path: Path) -> None:
    """Playbooks go through the guarded YAML loader: a PlaybookError, not a RecursionError."""
    book = tmp_path / "book.yaml"
    book.write_text("roles:\n  manager: &steps\n    - answer: ok\n    - raw: *steps\n")
    with pytest.raises(PlaybookError, match="used inside its own anchor") as info:
        load_playbook(book)
    assert (info.value.file, info.value.line) == (str(book), 4)
    out = darkfactory("run", str(EXAMPLE_SPEC), "--model", f"scripted:{book}", cwd=tmp_path)
    assert_bad_input(
        out, f"{book}:4: the YAML alias *steps is used inside its own anchor &steps", "  hint: "
    )
    assert len(out.stderr.splitlines()) == 2, out.stderr
    assert not (tmp_path / "runs").exists()  # no run started


def test_crewai_run_entry_point_without_model(tmp_path: Path) -> None:
    """``crewai run`` calls the ``run_crew`` script; with no model it stops at once."""
    run_crew = Path(sys.executable).with_name("run_crew")
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and k != "MODEL"}
    out = subprocess.run(
        [str(run_crew)], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 2, out.stderr
    assert "no model is configured" in out.stderr
    assert "Traceback" not in out.stderr


def test_validate_is_fast_and_reports_requirements(tmp_path: Path) -> None:
    out = darkfactory("validate", str(EXAMPLE_SPEC), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "R7:" in out.stdout
    assert "crewai" not in out.stderr


def test_model_whose_provider_package_is_missing_is_bad_input(tmp_path: Path) -> None:
    out = darkfactory(
        "run",
        str(EXAMPLE_SPEC),
        cwd=tmp_path,
        env={"MODEL": "lm_studio/qwen", "BASE_URL": "http://127.0.0.1:9"},
    )
    assert_bad_input(out, "lm_studio/qwen", "OpenAI-compatible local server")
    assert not (tmp_path / "runs").exists()


def test_local_openai_compatible_server_needs_no_key() -> None:
    from darkfactory.config import load_config
    from darkfactory.models import LOCAL_KEY_PLACEHOLDER, ModelPlan

    saved = dict(os.environ)
    os.environ["BASE_URL"] = "http://127.0.0.1:9/v1"
    try:
        plan = ModelPlan(load_config(None), cli_model="openai/qwen2.5-coder")
        plan.check()
        llm = plan.llm_for("developer")
        assert llm.api_key == LOCAL_KEY_PLACEHOLDER and llm.base_url.startswith(
            "http://127.0.0.1:9"
        )
    finally:
        os.environ.clear()
        os.environ.update(saved)


def test_output_into_a_closed_pipe_is_not_an_error(tmp_path: Path) -> None:
    """``darkfactory validate SPEC --json | head``: the reader goes away; no traceback."""
    big = Path(__file__).parent / "data" / "petstore.yaml"  # its JSON is over a pipe's 64 KB
    proc = subprocess.run(
        f"{sys.executable} -m darkfactory validate {big} --json | head -c 10; "
        'exit "${PIPESTATUS[0]}"',
        executable="/bin/bash",
        shell=True,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr, proc.stderr


def test_every_command_is_one_module_in_the_registry() -> None:
    """One style: each module of ``darkfactory.cli`` is a command in ``COMMANDS``, named like
    its module, with ``add_parser`` and ``run``; ``--help`` lists them in that order."""
    import argparse
    import pkgutil

    import darkfactory.cli as cli

    modules = [m.name for m in pkgutil.iter_modules(cli.__path__) if not m.name.startswith("_")]
    registered = [c.__name__.rpartition(".")[2] for c in cli.COMMANDS]  # type: ignore[attr-defined]
    assert sorted(registered) == sorted(modules)
    subparsers = next(
        a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction)
    )
    assert list(subparsers.choices) == registered
    for command in cli.COMMANDS:
        assert callable(command.add_parser) and callable(command.run)


def test_help_imports_neither_crewai_nor_the_engine(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "darkfactory", "--help"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    imported = {line.rpartition("|")[2].strip() for line in out.stderr.splitlines()}
    heavy = {m for m in imported if m.split(".")[0] in ("crewai", "litellm", "openai", "pydantic")}
    assert not heavy | {m for m in imported if m.startswith("darkfactory.engine")}
