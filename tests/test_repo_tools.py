"""repo_map, search_code and read_file's head on real temporary workspaces.

Each test builds a small Python project under ``tmp_path / "ws"`` with an ``outside``
directory next to it holding a secret; symlinks and a hard link lead there, and nothing
of it may show up in any answer. Nothing here is timed but the catastrophic pattern,
which must be stopped (benchmarks/repo_tools.py measures the speed).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

import darkfactory.tools as tools
import darkfactory.tools._source
import darkfactory.tools.repo_map
import darkfactory.tools.search_code  # noqa: F401  (tools.search_code below)
from darkfactory.tools import build_tool
from darkfactory.tools.read_file import HEAD_CHARS, HEAD_LINES, ReadFileTool
from darkfactory.tools.repo_map import RepoMapTool
from darkfactory.tools.search_code import (
    MAX_LINE_CHARS,
    MAX_MATCHES,
    MAX_OUTPUT_CHARS,
    SearchCodeTool,
)
from darkfactory.workspace.context import RunContext

SECRET = "def secret_function():\n    return 'TOPSECRET'\n"

MODELS = '''\
"""Users."""


class User(Base, metaclass=Meta):
    def __init__(self, name: str, age: int = 0) -> None:
        self.name = name

    async def save(self, *, force: bool = False) -> bool:
        return force

    def _hidden(self):
        pass


def load_user(user_id: int, /, *rest, strict: bool = False, **extra) -> User:
    return User(str(user_id))
'''

UTIL = """\
def helper(x):
    return x + 1


def _private(x=[1, 2]):
    return x
"""

APP = """\
from pkg.models import User, load_user
from pkg.util import helper


def main() -> None:
    print(helper(1), load_user(2), User("x"))
"""

TEST_APP = """\
from pkg.models import load_user


def test_load_user():
    assert load_user(1)
"""


class Env:
    """A workspace with code, skipped directories, links out, and the tools."""

    def __init__(self, tmp_path: Path) -> None:
        self.ws = tmp_path / "ws"
        self.outside = tmp_path / "outside"
        self.outside.mkdir()
        (self.outside / "secret.py").write_text(SECRET)
        files = {
            "pkg/__init__.py": "",
            "pkg/models.py": MODELS,
            "pkg/util.py": UTIL,
            "app.py": APP,
            "tests/test_app.py": TEST_APP,
            "README.md": "# Demo\n\nCall load_user to get a user.\n",
            ".git/hooks/hook.py": "def git_hook():\n    pass\n",
            ".venv/lib/site.py": "def venv_function():\n    pass\n",
            "myenv/pyvenv.cfg": "home = /usr/bin\n",
            "myenv/lib/mod.py": "def other_venv_function():\n    pass\n",
            "pkg/__pycache__/models.py": "def cached_function():\n    pass\n",
        }
        for rel, text in files.items():
            (self.ws / rel).parent.mkdir(parents=True, exist_ok=True)
            (self.ws / rel).write_text(text)
        (self.ws / "data.bin").write_bytes(b"load_user\0\x01\x02")
        (self.ws / "link_file.py").symlink_to(self.outside / "secret.py")
        (self.ws / "link_dir").symlink_to(self.outside)
        (self.ws / "inside_link.py").symlink_to(self.ws / "pkg" / "util.py")
        os.link(self.outside / "secret.py", self.ws / "hard.py")
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.ctx = RunContext(
            workspace=self.ws, on_event=lambda kind, data: self.events.append((kind, data))
        )
        self.map = RepoMapTool(ctx=self.ctx)
        self.search = SearchCodeTool(ctx=self.ctx)
        self.read = ReadFileTool(ctx=self.ctx)


@pytest.fixture
def env(tmp_path: Path) -> Env:
    tools.repo_map._cache.clear()
    return Env(tmp_path)


def refused(out: str, *words: str) -> None:
    assert out.startswith("ERROR: "), out
    for word in words:
        assert word in out, out


def leaks_nothing(out: str) -> None:
    for word in ("secret_function", "TOPSECRET", "venv_function", "git_hook", "cached_function"):
        assert word not in out, out


# -- repo_map ---------------------------------------------------------------------------


def test_repo_map_lists_signatures_under_their_files_most_used_first(env: Env) -> None:
    out = env.map._run()
    lines = out.splitlines()
    assert lines[0].startswith("Python classes and functions under '.' (5 files, most used")
    models = lines.index("pkg/models.py")
    assert lines[models + 1 : models + 6] == [
        "  4: class User(Base, metaclass=Meta)",
        "    5: def __init__(self, name: str, age: int = 0) -> None",
        "    8: async def save(self, *, force: bool = False) -> bool",
        "    11: def _hidden(self)",
        "  15: def load_user(user_id: int, /, *rest, strict: bool = False, **extra) -> User",
    ]
    util = lines.index("pkg/util.py")
    assert lines[util + 1 : util + 3] == ["  1: def helper(x)", "  5: def _private(x=[1, 2])"]
    # User and load_user are used by two other files, helper by one, the rest by none.
    assert models < util < lines.index("app.py")
    assert "  4: def test_load_user()" in lines
    assert "[left out" not in out
    # Skipped: VCS data, virtualenvs, caches, binary and non-Python files; links not followed.
    leaks_nothing(out)
    assert "README" not in out and "data.bin" not in out
    assert lines[-1] == "[not read: hard links: 1; symlinks (never followed): 2]"
    assert env.events[-1] == (
        "file_op",
        {"tool": "repo_map", "path": ".", "ok": True, "bytes": 645},
    )


def test_repo_map_parses_and_never_runs_the_code(env: Env) -> None:
    (env.ws / "boom.py").write_text(
        "open('EXECUTED', 'w').write('ran')\nraise SystemExit(3)\n\n\ndef after_boom(): ...\n"
    )
    (env.ws / "broken.py").write_text("def broken(:\n")
    out = env.map._run()
    assert not (env.ws / "EXECUTED").exists()
    assert "boom.py\n  5: def after_boom()" in out
    assert "[not parsed: broken.py (syntax error at line 1)]" in out


def test_repo_map_reads_any_source_encoding_and_line_ending(env: Env) -> None:
    (env.ws / "latin.py").write_bytes(
        "# -*- coding: latin-1 -*-\ndef café(x='é', *, y: dict[str,\n  int] = {}): ...\n".encode(
            "latin-1"
        )
    )
    (env.ws / "crlf.py").write_bytes(
        b"\xef\xbb\xbfclass A:\r\n    def m(self, a: int = max(\r\n        1, 2)) -> 'A':\r\n"
        b"        return self\r\n"
    )
    out = env.map._run()
    assert "latin.py\n  2: def café(x='é', *, y: dict[str, int] = {})\n" in out
    assert "crlf.py\n  1: class A\n    2: def m(self, a: int = max( 1, 2)) -> 'A'\n" in out


def test_repo_map_is_cut_to_max_chars_and_says_what_was_left_out(env: Env) -> None:
    for i in range(40):
        body = "".join(
            f"def function_{i}_{j}(a: int, b: str = 'x') -> None: ...\n" for j in range(5)
        )
        (env.ws / f"mod_{i:02d}.py").write_text(body + "from pkg.models import User\n")
    out = env.map._run(max_chars=500)
    body, _, notes = out.partition("\n[left out: ")
    assert len(body) <= 500
    assert notes.startswith("202 of 209 symbols, the least used (40 files not shown at all)")
    assert "raise max_chars (up to 40000)" in notes
    assert "  4: class User(Base, metaclass=Meta)" in body  # used by 42 files: first
    bigger = env.map._run(max_chars=20_000)
    assert "[left out" not in bigger and "mod_39.py\n  1: def function_39_0" in bigger
    assert env.map._run(max_chars=500) == out  # deterministic


def test_repo_map_of_a_directory_or_a_file(env: Env) -> None:
    out = env.map._run(path="pkg")
    assert out.splitlines()[0].startswith("Python classes and functions under 'pkg' (3 files")
    assert "app.py" not in out and "pkg/util.py" in out
    out = env.map._run(path="pkg/util.py")
    assert out.splitlines()[1:] == [
        "pkg/util.py",
        "  1: def helper(x)",
        "  5: def _private(x=[1, 2])",
    ]
    assert env.map._run(path="tests/../README.md") == "No Python files under 'README.md'."


def test_repo_map_caches_parses_by_content(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    parsed: list[int] = []
    real = tools.repo_map._parse
    monkeypatch.setattr(tools.repo_map, "_parse", lambda data: parsed.append(1) or real(data))
    first = env.map._run()
    assert len(parsed) == 5
    assert env.map._run() == first and len(parsed) == 5
    (env.ws / "pkg" / "util.py").write_text(UTIL.replace("helper", "assist"))
    assert "  1: def assist(x)" in env.map._run() and len(parsed) == 6


@pytest.mark.parametrize(
    ("path", "words"),
    [
        ("../outside", ["leaves the workspace"]),
        (str(Path("/etc")), ["absolute path"]),
        ("link_dir", ["outside the workspace"]),
        ("link_dir/secret.py", ["outside the workspace"]),
        ("link_file.py", ["outside the workspace"]),
        ("inside_link.py", ["is a symlink, never followed"]),
        ("nope", ["does not exist"]),
        (".git", ["skipped directory"]),
    ],
)
def test_both_tools_refuse_paths_outside_links_and_missing(
    env: Env, path: str, words: list[str]
) -> None:
    for out in (env.map._run(path=path), env.search._run(pattern="secret|def", path=path)):
        refused(out, *words)
        leaks_nothing(out)


def test_a_linked_directory_on_the_way_is_not_followed(env: Env) -> None:
    (env.ws / "alias").symlink_to(env.ws / "pkg")
    for out in (
        env.map._run(path="alias/util.py"),
        env.search._run(pattern="x", path="alias/models.py"),
    ):
        refused(out, "goes through a symlink (never followed here)")
    for out in (env.map._run(path="alias"), env.search._run(pattern="x", path="alias")):
        refused(out, "'alias' is a symlink, never followed here")


# -- search_code ------------------------------------------------------------------------


def test_search_finds_lines_in_text_files_and_counts_them(env: Env) -> None:
    out = env.search._run(pattern=r"def \w+_user")
    assert out.splitlines() == [
        "pkg/models.py:15: def load_user(user_id: int, /, *rest, strict: bool = False, "
        "**extra) -> User:",
        "tests/test_app.py:4: def test_load_user():",
        "[2 matching lines in 2 files; 6 files searched]",
        "[not read: binary files: 1; hard links: 1; symlinks (never followed): 3]",
    ]
    leaks_nothing(out)
    out = env.search._run(pattern="LOAD_USER", ignore_case=True, glob="*.md")
    assert out.splitlines()[:2] == [
        "README.md:3: Call load_user to get a user.",
        "[1 matching line in 1 file; 1 file searched (glob '*.md')]",
    ]
    out = env.search._run(pattern="import", glob="pkg/*.py")
    assert out.startswith("No line under '.' matches 'import'; 3 files searched")
    out = env.search._run(pattern="secret|TOPSECRET|venv_function|git_hook|cached")
    assert out.startswith("No line under '.' matches")


def test_search_shows_context_lines_and_joins_close_matches(env: Env) -> None:
    out = env.search._run(pattern="return", path="pkg", context=1)
    assert out.splitlines() == [
        "pkg/models.py-8-     async def save(self, *, force: bool = False) -> bool:",
        "pkg/models.py:9:         return force",
        "pkg/models.py-10- ",
        "--",
        "pkg/models.py-15- def load_user(user_id: int, /, *rest, strict: bool = False, "
        "**extra) -> User:",
        "pkg/models.py:16:     return User(str(user_id))",
        "--",
        "pkg/util.py-1- def helper(x):",
        "pkg/util.py:2:     return x + 1",
        "pkg/util.py-3- ",
        "--",
        "pkg/util.py-5- def _private(x=[1, 2]):",
        "pkg/util.py:6:     return x",
        "[4 matching lines in 2 files; 3 files searched]",
    ]
    out = env.search._run(pattern="^", path="pkg/util.py", context=2)
    assert [line.split(" ")[0] for line in out.splitlines()[:6]] == [
        f"pkg/util.py:{n}:" for n in range(1, 7)
    ]


def test_search_output_is_capped_and_counts_the_rest(env: Env) -> None:
    (env.ws / "many.txt").write_text("".join(f"match {i}\n" for i in range(500)))
    out = env.search._run(pattern="match", path="many.txt")
    lines = out.splitlines()
    assert len(lines) == MAX_MATCHES + 1
    assert lines[-1] == (
        f"[{MAX_MATCHES} of 500 matching lines shown, in 1 file (1 file searched); "
        "narrow pattern, path or glob to see the rest]"
    )
    (env.ws / "wide.txt").write_text(("match " + "x" * 5000 + "\n") * 50)
    out = env.search._run(pattern="match", path="wide.txt", context=5)
    assert len(out) < MAX_OUTPUT_CHARS + 200
    assert out.splitlines()[0].endswith("... [5006 characters]")
    assert len(out.splitlines()[0]) < MAX_LINE_CHARS + 50
    assert "of 50 matching lines shown" in out


def test_search_explains_a_bad_pattern(env: Env) -> None:
    refused(env.search._run(pattern="print("), "not a valid Python regular expression", "print\\(")
    refused(env.search._run(pattern="a{2,1}"), "not a valid Python regular expression")
    refused(env.search._run(pattern="x" * 301), "over 300")
    refused(env.search._run(pattern=""), "empty")
    refused(env.search._run(pattern="x", glob="*" * 201), "glob")


def test_a_catastrophic_pattern_is_stopped(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tools.search_code, "TIMEOUT_S", 1.0)
    (env.ws / "evil.txt").write_text("a" * 64 + "!\n")
    start = time.monotonic()
    out = env.search._run(pattern="(a+)+$")
    assert time.monotonic() - start < 10
    refused(out, "still matching after 1 s", "backtracking")
    assert env.events[-1][1]["ok"] is False


def test_a_huge_tree_is_walked_only_so_far(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tools._source, "MAX_ENTRIES", 5)
    note = "anything past the first 5 entries (give a subdirectory)]"
    assert env.search._run(pattern="def").endswith(note)
    assert env.map._run().endswith(note)


def test_special_files_are_not_opened(env: Env) -> None:
    os.mkfifo(env.ws / "pipe.txt")
    out = env.search._run(pattern="helper")
    assert "[not read: binary files: 1; hard links: 1; special files: 1; symlinks" in out


# -- read_file: the head of a large file, a range of it ------------------------------------


def test_read_file_without_a_range_shows_only_the_head(env: Env) -> None:
    (env.ws / "big.py").write_text("".join(f"x_{i} = {i}\n" for i in range(1, 5001)))
    out = env.read._run(path="big.py")
    lines = out.splitlines()
    assert lines[0].startswith(f"'big.py': lines 1-{HEAD_LINES} of 5000 (")
    assert lines[HEAD_LINES] == f"{HEAD_LINES:>6}\tx_{HEAD_LINES} = {HEAD_LINES}"
    assert lines[-1] == (
        f"[cut after line {HEAD_LINES} to keep the output small: call read_file with "
        f"start_line={HEAD_LINES + 1} to read on, or with start_line and end_line for the "
        "lines you need]"
    )
    out = env.read._run(path="big.py", start_line=2500, end_line=2502)
    assert out.splitlines()[1:] == [
        "  2500\tx_2500 = 2500",
        "  2501\tx_2501 = 2501",
        "  2502\tx_2502 = 2502",
    ]
    assert len(env.read._run(path="big.py", start_line=1).splitlines()) == 2000 + 2
    (env.ws / "wide.txt").write_text(("y" * 99 + "\n") * 400)
    out = env.read._run(path="wide.txt")
    assert len(out) < HEAD_CHARS + 2000 and "start_line=201 to read on" in out


# -- through the registry and CrewAI --------------------------------------------------------


def test_tools_are_registered_and_validated_by_crewai(env: Env) -> None:
    assert {"repo_map", "search_code"} <= set(tools.available_tool_names())
    search = build_tool("search_code", env.ctx)
    assert "pkg/util.py:1: def helper(x):" in search.run(pattern="def helper")
    with pytest.raises(ValueError, match="pattern"):
        search.run(pattern="x" * 301)
    with pytest.raises(ValueError, match="context"):
        search.run(pattern="x", context=6)
    repo_map = build_tool("repo_map", env.ctx)
    assert "pkg/util.py" in repo_map.run()
    with pytest.raises(ValueError, match="max_chars"):
        repo_map.run(max_chars=10)


def test_the_model_sees_field_descriptions() -> None:
    for tool in (RepoMapTool, SearchCodeTool):
        schema = tool.model_fields["args_schema"].default.model_json_schema()
        for name, prop in schema["properties"].items():
            assert prop.get("description"), f"{tool.__name__}.{name} has no description"
            assert "title" not in prop
