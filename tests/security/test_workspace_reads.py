"""Whole runs with hostile agents: the host never follows a link, and a forged verdict fails.

The scripted model (a test tool, not AI) plays agents that plant links to host secrets
where the host reads (the acceptance tests it freezes, DESIGN.md it puts in prompts), swap
the acceptance directory for a link, and try to forge the test verdict. Every planted
secret (tests/security/conftest.py) must stay out of the run directory and every prompt
(the ``--record`` cassette holds them all).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from dockerd import docker_engine  # noqa: F401  (a fixture)
from runhelp import (
    NEEDS_BWRAP,
    REPO,
    config_with,
    events,
    example_playbook,
    only_run,
    report_of,
    run_spec,
)
from test_verdict import FORCE_PASS_PLUGIN, FORGE

from darkfactory.engine import docs_check as docsite

pytestmark = [NEEDS_BWRAP, pytest.mark.e2e]

SLUGIFY_SPEC = REPO / "examples" / "specs" / "slugify.md"
SLUGIFY_BOOK = REPO / "examples" / "playbooks" / "slugify.yaml"


def slugify_book() -> dict[str, Any]:
    book: dict[str, Any] = yaml.safe_load(SLUGIFY_BOOK.read_text(encoding="utf-8"))
    return book


def with_design_helper(book: dict[str, Any], command: str) -> dict[str, Any]:
    """In the design phase the manager also sends the developer, who runs ``command``."""
    book = copy.deepcopy(book)
    manager = book["roles"]["manager"]
    manager.insert(
        1,
        {"delegate": {"to": "developer", "task": "Prepare the workspace.", "context": "-"}},
    )
    book["roles"]["developer"][:0] = [
        {"tool": "run_command", "args": {"argv": ["sh", "-c", command]}},
        {"answer": "The workspace is prepared."},
    ]
    return book


def run(tmp_path: Path, book: dict[str, Any], backend: str, **kw: Any) -> tuple[int, Path, Path]:
    out = tmp_path / "runs"
    cassette = tmp_path / "prompts.jsonl"
    code = run_spec(out, book, "--record", str(cassette), backend=backend, **kw)
    return code, only_run(out), cassette


@pytest.mark.parametrize("backend", ["bwrap", "docker"])
def test_links_to_host_secrets_are_never_followed(
    planted: Any, tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    if backend == "docker":
        request.getfixturevalue("docker_engine")
    links = (
        "ln -s /proc/self/environ acceptance/test_environ.py; "
        f"ln -s {planted.home}/.ssh acceptance/ssh; "
        "ln -s /proc/self/cwd/.env acceptance/test_dotenv.py; "
        f"ln -s {planted.home}/.netrc acceptance/conftest.py; "
        "ln -sf /proc/self/environ DESIGN.md"
    )
    book = with_design_helper(slugify_book(), links)
    code, run_dir, cassette = run(tmp_path, book, backend, spec=SLUGIFY_SPEC)
    report = report_of(run_dir)
    assert code == 0 and report["status"] == "delivered", report["reason"]
    assert report["acceptance"] == {"total": 5, "passed": 5, "failed": 0}
    refused = [e for e in events(run_dir, "security") if e["what"] == "acceptance_entries_refused"]
    assert refused and all("symlink" in r for r in refused[0]["paths"]), refused
    assert sorted(p.name for p in (run_dir / "acceptance").iterdir()) == ["test_slugify.py"]
    planted.assert_absent(run_dir, cassette)
    planted.assert_marker_absent()


def test_acceptance_swapped_for_a_link_is_restored(planted: Any, tmp_path: Path) -> None:
    book = example_playbook()
    book["roles"]["developer"].insert(
        0,
        {
            "tool": "run_command",
            "args": {"argv": ["sh", "-c", "rm -rf acceptance && ln -s /proc/self/cwd acceptance"]},
        },
    )
    code, run_dir, cassette = run(tmp_path, book, "bwrap")
    report = report_of(run_dir)
    assert code == 0 and report["status"] == "delivered", report["reason"]
    assert events(run_dir, "acceptance_restored")
    ws_acc = run_dir / "workspace" / "acceptance"
    assert ws_acc.is_dir() and not ws_acc.is_symlink()
    planted.assert_absent(run_dir, cassette)


@pytest.mark.parametrize("backend", ["bwrap", "docker"])
def test_a_forged_verdict_is_never_delivered(
    planted: Any, tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    if backend == "docker":
        request.getfixturevalue("docker_engine")
    book = example_playbook()
    developer = book["roles"]["developer"]
    write = next(i for i, s in enumerate(developer) if s.get("tool") == "write_file")
    developer[write]["args"]["content"] = (
        "def count(text):\n    return {'lines': 0, 'words': 0, 'chars': 0}\n"
    )
    developer[write + 1 : write + 1] = [
        {"tool": "write_file", "args": {"path": path, "content": content}}
        for path, content in (
            ("pytest.py", FORGE + "sys.exit(0)\n"),
            ("sitecustomize.py", FORGE),
            ("conftest.py", FORCE_PASS_PLUGIN),
        )
    ]
    config = config_with(tmp_path, max_fix_rounds=0)
    code, run_dir, cassette = run(tmp_path, book, backend, config=config)
    report = report_of(run_dir)
    assert code != 0 and report["status"] == "failed", report["reason"]
    assert report["acceptance"]["passed"] < report["acceptance"]["total"]
    planted.assert_absent(run_dir, cassette)


def test_docs_examples_are_not_read_through_links(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    (ws / "docs").mkdir(parents=True)
    secret = tmp_path / "secret.md"
    secret.write_text("```python\nprint('host secret')\n```\n")
    (ws / "README.md").symlink_to(secret)
    (ws / "docs" / "leak.md").symlink_to(secret)
    (ws / "docs" / "ok.md").write_text("```python\nprint('fine')\n```\n")
    found = docsite.find_examples(ws)
    assert [e.code.strip() for e in found.examples] == ["print('fine')"]
