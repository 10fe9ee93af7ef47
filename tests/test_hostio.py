"""hostio, the one way the host reads model-written files: each refusal, on real files."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

import pytest

from darkfactory.workspace import hostio


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "a.py").write_text("A = 1\n")
    (root / "top.txt").write_text("top\n")
    (tmp_path / "secret").write_text("host secret\n")
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "key").write_text("host key\n")
    return root


def test_reads_a_regular_file(ws: Path) -> None:
    assert hostio.read_text(ws, "pkg/a.py") == "A = 1\n"
    assert hostio.read_bytes(ws, "./top.txt") == b"top\n"
    assert hostio.is_file(ws, "pkg/a.py") and hostio.kind_of(ws, "pkg") == "dir"


@pytest.mark.parametrize("rel", ["../secret", "/etc/passwd", "pkg/../../secret", "a\0b"])
def test_paths_that_leave_the_root_are_refused(ws: Path, rel: str) -> None:
    with pytest.raises(hostio.Refused):
        hostio.read_bytes(ws, rel)


def test_a_symlink_is_never_followed(ws: Path) -> None:
    (ws / "link.py").symlink_to(ws.parent / "secret")
    (ws / "linkdir").symlink_to(ws.parent / "secrets")
    (ws / "loop").symlink_to(ws / "loop")
    for rel in ("link.py", "linkdir/key", "loop"):
        with pytest.raises(hostio.Refused):
            hostio.read_bytes(ws, rel)
    assert hostio.kind_of(ws, "link.py") == "symlink" and not hostio.is_file(ws, "link.py")
    assert hostio.kind_of(ws, "linkdir/key") is None


def test_a_fifo_is_refused_without_waiting_for_a_writer(ws: Path) -> None:
    os.mkfifo(ws / "fifo.py")
    done = threading.Event()

    def read() -> None:
        with pytest.raises(hostio.Refused, match="not a regular file"):
            hostio.read_bytes(ws, "fifo.py")
        done.set()

    t = threading.Thread(target=read, daemon=True)
    t.start()
    assert done.wait(5), "reading a FIFO blocked"


def test_sockets_hard_links_and_big_files_are_refused(ws: Path) -> None:
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(ws / "sock"))
        with pytest.raises(hostio.Refused, match="not a regular file"):
            hostio.read_bytes(ws, "sock")
    os.link(ws.parent / "secret", ws / "hard.py")
    with pytest.raises(hostio.Refused, match="hard link"):
        hostio.read_bytes(ws, "hard.py")
    (ws / "big.bin").write_bytes(b"x" * 2000)
    with pytest.raises(hostio.Refused, match="limit"):
        hostio.read_bytes(ws, "big.bin", limit=1000)


def test_walk_lists_links_without_entering_them(ws: Path) -> None:
    (ws / "linkdir").symlink_to(ws.parent / "secrets")
    (ws / ".git").mkdir()
    (ws / ".git" / "config").write_text("x")
    entries = {e.path: e.kind for e in hostio.walk(ws)}
    assert entries == {
        ".git": "dir",
        "linkdir": "symlink",
        "pkg": "dir",
        "pkg/a.py": "file",
        "top.txt": "file",
    }
    with pytest.raises(hostio.Refused, match="more than 3 entries"):
        list(hostio.walk(ws, max_entries=3))
    (ws / "pkglink").symlink_to(ws / "pkg")
    assert list(hostio.walk(ws, "pkglink")) == []  # a linked start is not walked


def test_files_and_hash_tree_tell_a_link_from_a_file(ws: Path) -> None:
    found, refused = hostio.files(ws, ".", suffix=".py")
    assert found == {"pkg/a.py": b"A = 1\n"} and refused == []
    before = hostio.hash_tree(ws, "pkg")
    (ws / "pkg" / "a.py").unlink()
    (ws / "pkg" / "a.py").symlink_to(ws.parent / "secret")
    after = hostio.hash_tree(ws, "pkg")
    assert before != after and after["a.py"].startswith("refused:")
    _, refused = hostio.files(ws, "pkg", suffix=".py")
    assert refused == [("a.py", "a symlink, not a regular file")]


def test_copy_tree_copies_only_plain_files_without_special_bits(ws: Path, tmp_path: Path) -> None:
    (ws / "run.sh").write_text("#!/bin/sh\n")
    (ws / "run.sh").chmod(0o4755)
    (ws / "link").symlink_to(ws.parent / "secret")
    os.mkfifo(ws / "fifo")
    copied = hostio.copy_tree(ws, ".", tmp_path / "copy")
    assert sorted(copied.files) == ["pkg/a.py", "run.sh", "top.txt"]
    assert sorted(p for p, _ in copied.refused) == ["fifo", "link"]
    assert (tmp_path / "copy" / "run.sh").stat().st_mode & 0o7777 == 0o755
    kept = hostio.copy_tree(ws, ".", tmp_path / "sandbox-copy", keep_symlinks=True)
    assert (tmp_path / "sandbox-copy" / "link").is_symlink()
    assert [p for p, _ in kept.refused] == ["fifo"]


def test_remove_never_follows_a_link(ws: Path) -> None:
    (ws / "acceptance").symlink_to(ws.parent / "secrets")
    hostio.remove(ws / "acceptance")
    assert not (ws / "acceptance").exists() and (ws.parent / "secrets" / "key").is_file()
    hostio.remove(ws / "pkg")
    assert not (ws / "pkg").exists()
    hostio.remove(ws / "missing")
