"""The file tools on real temporary workspaces: every refusal, every happy path.

Each test builds a workspace under ``tmp_path / "ws"`` with an ``outside`` directory next
to it, so an escape would be visible on disk; tests assert the files, not just the text.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from darkfactory.tools import build_tool
from darkfactory.tools.delete_file import DeleteFileTool
from darkfactory.tools.edit_file import EditFileTool
from darkfactory.tools.list_files import MAX_ENTRIES, ListFilesTool
from darkfactory.tools.read_file import ReadFileTool
from darkfactory.tools.write_file import WriteFileTool
from darkfactory.workspace.context import RunContext
from darkfactory.workspace.paths import PathRefused, iter_files, resolve

ACCEPTANCE_TEXT = "def test_it():\n    assert True\n"


class Env:
    """A workspace with acceptance tests and a .git dir, a secret outside it, and the tools."""

    def __init__(self, tmp_path: Path) -> None:
        self.ws = tmp_path / "ws"
        self.outside = tmp_path / "outside"
        (self.ws / "acceptance").mkdir(parents=True)
        (self.ws / "acceptance" / "test_x.py").write_text(ACCEPTANCE_TEXT)
        (self.ws / ".git").mkdir()
        (self.ws / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
        self.outside.mkdir()
        (self.outside / "secret.txt").write_text("top secret\n")
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.ctx = RunContext(
            workspace=self.ws, on_event=lambda kind, data: self.events.append((kind, data))
        )
        self.list = ListFilesTool(ctx=self.ctx)
        self.read = ReadFileTool(ctx=self.ctx)
        self.write = WriteFileTool(ctx=self.ctx)
        self.edit = EditFileTool(ctx=self.ctx)
        self.delete = DeleteFileTool(ctx=self.ctx)

    def untouched(self) -> None:
        """Nothing outside the workspace or under a protected path changed."""
        assert sorted(p.name for p in self.outside.iterdir()) == ["secret.txt"]
        assert (self.outside / "secret.txt").read_text() == "top secret\n"
        assert sorted(p.name for p in (self.ws / "acceptance").iterdir()) == ["test_x.py"]
        assert (self.ws / "acceptance" / "test_x.py").read_text() == ACCEPTANCE_TEXT
        assert sorted(p.name for p in (self.ws / ".git").iterdir()) == ["HEAD"]
        assert (self.ws / ".git" / "HEAD").read_text() == "ref: refs/heads/main\n"


@pytest.fixture
def env(tmp_path: Path) -> Env:
    return Env(tmp_path)


def refused(out: str, *words: str) -> None:
    assert out.startswith("ERROR: "), out
    for word in words:
        assert word in out, out


# -- refusals: paths that leave the workspace ---------------------------------------------


@pytest.mark.parametrize("path", ["../outside/secret.txt", "a/../../outside/secret.txt", ".."])
def test_traversal_is_refused_for_every_tool(env: Env, path: str) -> None:
    refused(env.read._run(path=path), "leaves the workspace")
    refused(env.write._run(path=path, content="pwned"), "leaves the workspace")
    refused(env.edit._run(path=path, old_text="top", new_text="pwned"), "leaves the workspace")
    refused(env.delete._run(path=path), "leaves the workspace")
    refused(env.list._run(path=path), "leaves the workspace")
    env.untouched()


def test_traversal_to_a_new_file_outside_creates_nothing(env: Env) -> None:
    refused(env.write._run(path="src/../../outside/new.txt", content="x"), "leaves the workspace")
    assert not (env.outside / "new.txt").exists()
    assert not (env.ws / "src").exists()


def test_absolute_path_is_refused_and_the_relative_one_suggested(env: Env) -> None:
    out = env.write._run(path=str(env.ws / "src" / "app.py"), content="x")
    refused(out, "absolute path", "use 'src/app.py' instead")
    refused(env.read._run(path=str(env.outside / "secret.txt")), "absolute path")
    refused(env.read._run(path="/etc/passwd"), "absolute path", "relative to the workspace")
    refused(env.delete._run(path=str(env.outside / "secret.txt")), "absolute path")
    assert not (env.ws / "src").exists()
    env.untouched()


@pytest.mark.parametrize("path", ["", "   ", "src/a\0.py"])
def test_empty_and_nul_paths_are_refused(env: Env, path: str) -> None:
    refused(env.write._run(path=path, content="x"))
    refused(env.read._run(path=path))
    assert sorted(p.name for p in env.ws.iterdir()) == [".git", "acceptance"]


def test_file_symlink_out_is_refused(env: Env) -> None:
    (env.ws / "link.txt").symlink_to(env.outside / "secret.txt")
    refused(env.read._run(path="link.txt"), "outside the workspace")
    refused(env.write._run(path="link.txt", content="pwned"), "outside the workspace")
    refused(env.edit._run(path="link.txt", old_text="top", new_text="x"), "outside the workspace")
    env.untouched()


def test_directory_symlink_out_is_refused(env: Env) -> None:
    (env.ws / "src").mkdir()
    (env.ws / "src" / "out").symlink_to(env.outside, target_is_directory=True)
    refused(env.read._run(path="src/out/secret.txt"), "outside the workspace")
    refused(env.write._run(path="src/out/new.txt", content="pwned"), "outside the workspace")
    refused(env.delete._run(path="src/out/secret.txt"), "outside the workspace")
    refused(env.list._run(path="src/out"), "outside the workspace")
    env.untouched()


def test_dangling_symlink_to_outside_is_refused(env: Env) -> None:
    (env.ws / "dangling.txt").symlink_to(env.outside / "created_by_agent.txt")
    refused(env.write._run(path="dangling.txt", content="pwned"), "outside the workspace")
    assert not (env.outside / "created_by_agent.txt").exists()
    # The same with a relative link target.
    (env.ws / "rel.txt").symlink_to(Path("..") / "outside" / "also.txt")
    refused(env.write._run(path="rel.txt", content="pwned"), "outside the workspace")
    env.untouched()


def test_symlink_chain_out_is_refused(env: Env) -> None:
    (env.ws / "c.txt").symlink_to(env.outside / "secret.txt")
    (env.ws / "b.txt").symlink_to("c.txt")
    (env.ws / "a.txt").symlink_to("b.txt")
    refused(env.read._run(path="a.txt"), "outside the workspace")
    refused(env.write._run(path="a.txt", content="pwned"), "outside the workspace")
    env.untouched()


def test_symlink_loop_is_refused(env: Env) -> None:
    (env.ws / "loop1").symlink_to("loop2")
    (env.ws / "loop2").symlink_to("loop1")
    refused(env.read._run(path="loop1"), "symlink loop")
    refused(env.write._run(path="loop1/x.txt", content="x"), "symlink loop")


def test_symlink_inside_the_workspace_is_followed(env: Env) -> None:
    (env.ws / "src").mkdir()
    (env.ws / "src" / "real.py").write_text("x = 1\n")
    (env.ws / "alias.py").symlink_to(Path("src") / "real.py")
    assert "x = 1" in env.read._run(path="alias.py")
    assert env.write._run(path="alias.py", content="x = 2\n").startswith("Wrote 'src/real.py'")
    assert (env.ws / "alias.py").is_symlink()
    assert (env.ws / "src" / "real.py").read_text() == "x = 2\n"


# -- refusals: protected paths ----------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "acceptance/test_x.py",
        "acceptance/test_new.py",
        "./acceptance/../acceptance/test_x.py",
        "src/../acceptance/test_x.py",
        "acceptance",
        "acceptance/",
    ],
)
def test_write_into_acceptance_is_refused(env: Env, path: str) -> None:
    refused(env.write._run(path=path, content="def test_it(): pass\n"), "acceptance/")
    refused(env.edit._run(path=path, old_text="assert True", new_text="pass"), "acceptance/")
    refused(env.delete._run(path=path), "acceptance/")
    env.untouched()


def test_acceptance_tests_can_still_be_read(env: Env) -> None:
    out = env.read._run(path="acceptance/test_x.py")
    assert "     2\t    assert True" in out


def test_write_through_a_symlink_into_acceptance_is_refused(env: Env) -> None:
    (env.ws / "tests").mkdir()
    (env.ws / "tests" / "t.py").symlink_to(Path("..") / "acceptance" / "test_x.py")
    (env.ws / "acc").symlink_to("acceptance", target_is_directory=True)
    (env.ws / "new_acc.py").symlink_to(Path("acceptance") / "test_new.py")  # dangling
    refused(env.write._run(path="tests/t.py", content="pass\n"), "through a symlink")
    refused(env.edit._run(path="tests/t.py", old_text="True", new_text="False"), "symlink")
    refused(env.write._run(path="acc/test_x.py", content="pass\n"), "'acceptance/'")
    refused(env.write._run(path="acc/test_new.py", content="pass\n"), "'acceptance/'")
    refused(env.delete._run(path="acc/test_x.py"), "'acceptance/'")
    refused(env.write._run(path="new_acc.py", content="pass\n"), "'acceptance/'")
    env.untouched()
    # Deleting the link itself removes only the link.
    assert env.delete._run(path="tests/t.py").startswith("Deleted the symlink")
    assert not (env.ws / "tests" / "t.py").exists()
    env.untouched()


def test_a_protected_path_that_is_itself_a_symlink_is_protected_at_its_target(
    tmp_path: Path,
) -> None:
    ws = tmp_path / "ws"
    (ws / "tests" / "acc").mkdir(parents=True)
    (ws / "tests" / "acc" / "test_a.py").write_text("A\n")
    (ws / "acceptance").symlink_to(Path("tests") / "acc", target_is_directory=True)
    with pytest.raises(PathRefused, match="acceptance"):
        resolve(ws, "tests/acc/test_a.py", write=True)
    assert resolve(ws, "tests/acc/test_a.py", write=False) == ws / "tests" / "acc" / "test_a.py"


def test_write_into_git_is_refused(env: Env) -> None:
    refused(env.write._run(path=".git/HEAD", content="ref: evil\n"), "'.git/'", "git metadata")
    refused(env.write._run(path=".git/hooks/pre-commit", content="rm -rf /\n"), "'.git/'")
    refused(env.write._run(path="src/../.git/config", content="x"), "'.git/'")
    refused(env.delete._run(path=".git/HEAD"), "'.git/'")
    (env.ws / "g").symlink_to(".git", target_is_directory=True)
    refused(env.write._run(path="g/HEAD", content="x"), "'.git/'")
    env.untouched()


def test_protected_set_comes_from_the_run_context(env: Env) -> None:
    env.ctx.protected.discard("acceptance")  # the design phase may write acceptance tests
    assert env.write._run(path="acceptance/test_y.py", content="y\n").startswith("Wrote")
    env.ctx.protected.add("acceptance")  # ... then the flow freezes them
    refused(env.write._run(path="acceptance/test_y.py", content="z\n"), "acceptance/")
    assert (env.ws / "acceptance" / "test_y.py").read_text() == "y\n"


def test_hard_link_to_a_protected_file_is_replaced_not_written_through(env: Env) -> None:
    os.link(env.ws / "acceptance" / "test_x.py", env.ws / "copy.py")
    assert env.write._run(path="copy.py", content="changed\n").startswith("Wrote")
    assert (env.ws / "copy.py").read_text() == "changed\n"
    env.untouched()


def test_root_itself_cannot_be_written_or_deleted(env: Env) -> None:
    refused(env.write._run(path=".", content="x"), "workspace root")
    refused(env.delete._run(path="."), "workspace root")
    refused(env.delete._run(path="src/.."), "workspace root")
    assert env.ws.is_dir()


# -- happy paths --------------------------------------------------------------------------------


def test_write_creates_parents_and_reports_size(env: Env) -> None:
    out = env.write._run(path="src/pkg/mod.py", content="a = 1\nb = 2\n")
    assert out == "Wrote 'src/pkg/mod.py' (created): 12 bytes, 2 lines."
    assert (env.ws / "src" / "pkg" / "mod.py").read_text() == "a = 1\nb = 2\n"
    out = env.write._run(path="./src/pkg/mod.py", content="é")
    assert out == "Wrote 'src/pkg/mod.py' (overwrote): 2 bytes, 1 lines."
    assert (env.ws / "src" / "pkg" / "mod.py").read_bytes() == "é".encode()
    assert [p.name for p in (env.ws / "src" / "pkg").iterdir()] == ["mod.py"]  # no temp left


def test_write_keeps_the_mode_of_an_existing_file(env: Env) -> None:
    script = env.ws / "run.sh"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    env.write._run(path="run.sh", content="#!/bin/sh\necho hi\n")
    assert script.stat().st_mode & 0o777 == 0o755


def test_write_refuses_a_directory_and_a_file_in_the_way(env: Env) -> None:
    (env.ws / "src").mkdir()
    (env.ws / "src" / "a.py").write_text("x\n")
    refused(env.write._run(path="src", content="x"), "is a directory")
    refused(env.write._run(path="src/a.py/b.py", content="x"), "existing file")
    assert (env.ws / "src" / "a.py").read_text() == "x\n"


def test_read_whole_file_and_ranges(env: Env) -> None:
    (env.ws / "f.txt").write_text("".join(f"line {i}\n" for i in range(1, 11)))
    out = env.read._run(path="f.txt")
    assert out.splitlines()[0] == "'f.txt': lines 1-10 of 10 (71 bytes)"
    assert out.splitlines()[1] == "     1\tline 1"
    assert out.splitlines()[-1] == "    10\tline 10"
    out = env.read._run(path="f.txt", start_line=3, end_line=5)
    assert out.splitlines()[1:] == ["     3\tline 3", "     4\tline 4", "     5\tline 5"]
    out = env.read._run(path="f.txt", start_line=9, end_line=99)
    assert out.splitlines()[1:] == ["     9\tline 9", "    10\tline 10"]
    out = env.read._run(path="f.txt", end_line=1)
    assert out.splitlines()[1:] == ["     1\tline 1"]
    refused(env.read._run(path="f.txt", start_line=11), "past the end", "10 lines")
    refused(env.read._run(path="f.txt", start_line=5, end_line=4), "before start_line")
    refused(env.read._run(path="f.txt", start_line=0), "1-based")


def test_read_is_bounded_and_says_how_to_read_on(env: Env, monkeypatch: Any) -> None:
    import darkfactory.tools.read_file as read_file

    monkeypatch.setattr(read_file, "MAX_LINES", 3)
    (env.ws / "f.txt").write_text("".join(f"{i}\n" for i in range(1, 11)))
    out = env.read._run(path="f.txt")
    assert out.splitlines()[1:4] == ["     1\t1", "     2\t2", "     3\t3"]
    assert out.splitlines()[-1].startswith("[cut after line 3")
    assert "start_line=4" in out
    out = env.read._run(path="f.txt", start_line=4)
    assert "     4\t4" in out and "start_line=7" in out


def test_read_refuses_binary_missing_and_directories(env: Env) -> None:
    (env.ws / "img.png").write_bytes(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR")
    (env.ws / "latin1.txt").write_bytes("café".encode("latin-1"))
    refused(env.read._run(path="img.png"), "binary")
    refused(env.read._run(path="latin1.txt"), "not UTF-8")
    refused(env.read._run(path="nope.py"), "does not exist", "list_files")
    refused(env.read._run(path="acceptance"), "is a directory")
    (env.ws / "empty.txt").write_text("")
    assert env.read._run(path="empty.txt") == "'empty.txt' is empty (0 bytes)."


def test_edit_unique_match(env: Env) -> None:
    (env.ws / "m.py").write_text("def f():\n    return 1\n\n\ndef g():\n    return 2\n")
    out = env.edit._run(path="m.py", old_text="    return 2\n", new_text="    return 3\n")
    assert out.startswith("Edited 'm.py': replaced 1 occurrence (first at line 6)")
    assert "     6\t    return 3" in out
    assert (env.ws / "m.py").read_text() == "def f():\n    return 1\n\n\ndef g():\n    return 3\n"


def test_edit_ambiguous_match_names_the_count_and_lines(env: Env) -> None:
    original = "x = 1\ny = 2\nx = 1\nz = 3\nx = 1\n"
    (env.ws / "m.py").write_text(original)
    out = env.edit._run(path="m.py", old_text="x = 1", new_text="x = 9")
    refused(out, "occurs 3 times", "lines 1, 3, 5", "replace_all")
    assert (env.ws / "m.py").read_text() == original


def test_edit_replace_all(env: Env) -> None:
    (env.ws / "m.py").write_text("x = 1\ny = 2\nx = 1\n")
    out = env.edit._run(path="m.py", old_text="x = 1", new_text="x = 9", replace_all=True)
    assert out.startswith("Edited 'm.py': replaced 2 occurrences (first at line 1)")
    assert (env.ws / "m.py").read_text() == "x = 9\ny = 2\nx = 9\n"


def test_edit_absent_text_shows_the_closest_region(env: Env) -> None:
    original = "".join(f"def f{i}():\n    return {i}\n\n" for i in range(20))
    (env.ws / "m.py").write_text(original)
    out = env.edit._run(path="m.py", old_text="def f7():\n    return 'seven'\n", new_text="")
    refused(out, "not found", "closest region is lines 22-23", "    22\tdef f7():")
    out = env.edit._run(path="m.py", old_text="    22\tdef f7():", new_text="x")
    refused(out, "line numbers")
    out = env.edit._run(path="m.py", old_text="zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz", new_text="x")
    refused(out, "not found", "read_file")
    refused(env.edit._run(path="m.py", old_text="", new_text="x"), "empty")
    refused(env.edit._run(path="m.py", old_text="f1", new_text="f1"), "the same")
    refused(env.edit._run(path="nope.py", old_text="a", new_text="b"), "does not exist")
    assert (env.ws / "m.py").read_text() == original


def test_edit_a_crlf_file_with_lf_old_text(env: Env) -> None:
    (env.ws / "w.txt").write_bytes(b"one\r\ntwo\r\nthree\r\n")
    out = env.edit._run(path="w.txt", old_text="one\ntwo\n", new_text="1\n2\n")
    assert out.startswith("Edited"), out
    assert (env.ws / "w.txt").read_bytes() == b"1\r\n2\r\nthree\r\n"


def test_delete_file_symlink_and_directories(env: Env) -> None:
    (env.ws / "src" / "empty").mkdir(parents=True)
    (env.ws / "src" / "a.py").write_text("abc")
    (env.ws / "out").symlink_to(env.outside, target_is_directory=True)
    assert env.delete._run(path="src/a.py") == "Deleted 'src/a.py' (3 bytes)."
    assert not (env.ws / "src" / "a.py").exists()
    refused(env.delete._run(path="src/a.py"), "does not exist")
    (env.ws / "src" / "b.py").write_text("b")
    refused(env.delete._run(path="src"), "2 entries", "empty directories")
    assert (env.ws / "src" / "b.py").exists()
    assert env.delete._run(path="src/empty").startswith("Deleted the empty directory")
    assert not (env.ws / "src" / "empty").exists()
    # A symlink pointing outside can be removed: only the link goes.
    assert env.delete._run(path="out").startswith("Deleted the symlink")
    assert not (env.ws / "out").is_symlink()
    env.untouched()


def test_list_files_recursive_with_sizes_skipping_caches(env: Env) -> None:
    (env.ws / "src" / "__pycache__").mkdir(parents=True)
    (env.ws / "src" / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"\0")
    (env.ws / ".pytest_cache").mkdir()
    (env.ws / ".pytest_cache" / "x").write_text("x")
    (env.ws / "src" / "a.py").write_text("abc")
    (env.ws / "README.md").write_text("hello\n")
    (env.ws / "out").symlink_to(env.outside, target_is_directory=True)
    out = env.list._run()
    assert out.splitlines() == [
        "Files under the workspace (path, size in bytes):",
        "README.md  6",
        "out  (symlink)",
        "acceptance/test_x.py  31",
        "src/a.py  3",
    ]
    assert env.list._run(path="") == out
    assert env.list._run(path="src").splitlines()[1:] == ["src/a.py  3"]
    refused(env.list._run(path="README.md"), "is a file")
    refused(env.list._run(path="nope"), "does not exist")
    (env.ws / "empty").mkdir()
    assert env.list._run(path="empty").startswith("No files under 'empty'")


def test_list_files_is_bounded(env: Env) -> None:
    (env.ws / "many").mkdir()
    for i in range(MAX_ENTRIES + 5):
        (env.ws / "many" / f"f{i:04}.txt").write_text("")
    lines = env.list._run().splitlines()
    assert len(lines) == 1 + MAX_ENTRIES + 1
    assert lines[-1].startswith(f"[cut after {MAX_ENTRIES} entries")
    assert len(list(iter_files(env.ws))) == MAX_ENTRIES + 5 + 1


# -- events and the CrewAI path -------------------------------------------------------------


def test_events_report_operations_without_contents(env: Env) -> None:
    env.write._run(path="a.txt", content="SECRET CONTENT\n")
    env.read._run(path="a.txt")
    env.edit._run(path="a.txt", old_text="SECRET", new_text="PUBLIC")
    env.write._run(path="acceptance/test_x.py", content="SECRET CONTENT\n")
    env.delete._run(path="a.txt")
    assert [(kind, d["tool"], d["path"], d["ok"], d["bytes"]) for kind, d in env.events] == [
        ("file_op", "write_file", "a.txt", True, 15),
        ("file_op", "read_file", "a.txt", True, 15),
        ("file_op", "edit_file", "a.txt", True, 15),
        ("file_op", "write_file", "acceptance/test_x.py", False, 0),
        ("file_op", "delete_file", "a.txt", True, 15),
    ]
    assert "SECRET" not in repr(env.events)


def test_tools_through_crewai_run_and_the_registry(env: Env) -> None:
    write = build_tool("write_file", env.ctx)
    assert write.name == "write_file"
    assert write.run(path="src/app.py", content="print('hi')\n").startswith("Wrote")
    read = build_tool("read_file", env.ctx)
    assert "     1\tprint('hi')" in read.run(path="src/app.py", start_line=1)
    assert (
        build_tool("edit_file", env.ctx)
        .run(path="src/app.py", old_text="hi", new_text="ho")
        .startswith("Edited")
    )
    assert (env.ws / "src" / "app.py").read_text() == "print('ho')\n"
    assert "src/app.py  12" in build_tool("list_files", env.ctx).run()
    out = build_tool("write_file", env.ctx).run(path="../outside/x", content="x")
    refused(out, "leaves the workspace")
    out = build_tool("delete_file", env.ctx).run(path="acceptance/test_x.py")
    refused(out, "acceptance/")
    # The schema CrewAI validates against rejects bad arguments before _run sees them.
    with pytest.raises(ValueError, match="start_line"):
        read.run(path="src/app.py", start_line=0)
    env.untouched()


def test_the_model_sees_field_descriptions() -> None:
    for tool in (ReadFileTool, WriteFileTool, EditFileTool, DeleteFileTool, ListFilesTool):
        schema = tool.model_fields["args_schema"].default.model_json_schema()
        for name, prop in schema["properties"].items():
            assert prop.get("description"), f"{tool.__name__}.{name} has no description"


def test_resolve_with_a_bare_directory_uses_the_default_protected_set(tmp_path: Path) -> None:
    (tmp_path / "acceptance").mkdir()
    assert resolve(tmp_path, "src/x.py", write=True) == tmp_path.resolve() / "src" / "x.py"
    with pytest.raises(PathRefused, match="acceptance"):
        resolve(tmp_path, "acceptance/t.py", write=True)
    assert resolve(tmp_path, "acceptance/t.py", write=True, protected=()).name == "t.py"
