"""The run store shared by the server and every worker: each run's job, snapshots and status.

``DirectoryStore`` keeps it in a directory (a shared filesystem in production); writes are
fenced, so a worker that lost its run can no longer overwrite it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import secrets
import shutil
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from darkfactory.errors import DarkFactoryError, InputError
from darkfactory.workspace import git as gitrepo
from darkfactory.workspace import hostio, rundir

_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_SNAP = re.compile(r"snap-([0-9]{1,18})")
_TMP = re.compile(r"tmp-([0-9]{1,18})-[0-9a-f]+")
#: Snapshots kept per run: the current one and the one before it.
KEEP_SNAPSHOTS = 2
#: Largest run-directory file a snapshot takes (bigger ones are listed as skipped), and
#: most bytes one snapshot or job reads.
MAX_FILE_BYTES = 256 * 1024 * 1024
MAX_TREE_BYTES = 1024 * 1024 * 1024
#: Never in a snapshot: the workspace goes as a git bundle, the lock is this machine's.
_NOT_SAVED = frozenset({rundir.WORKSPACE_DIR, rundir.LOCK_FILE})
#: ``fcntl`` locks belong to a process, not a thread: threads queue here first.
_THREADS = threading.Lock()


class StoreError(InputError):
    """The run store cannot be used (missing, not writable) or lacks what was asked for."""


class StaleFence(DarkFactoryError):
    """A write by a worker that no longer holds the run: a newer fence claimed it."""

    def __init__(self, run_id: str, fence: int, holder: int) -> None:
        self.run_id, self.fence, self.holder = run_id, fence, holder
        super().__init__(f"run {run_id}: fence {fence} is stale (the holder is fence {holder})")


class RunStore(Protocol):
    """What the server and the workers keep in the shared store."""

    def check(self) -> None: ...
    def put_job(self, run_id: str, job_dir: Path) -> None: ...
    def get_job(self, run_id: str, into: Path) -> Path: ...
    def claim(self, run_id: str, fence: int) -> None: ...
    def save(self, run_id: str, run_dir: Path, *, fence: int) -> int: ...
    def restore(self, run_id: str, runs_dir: Path) -> Path | None: ...
    def set_status(
        self, run_id: str, status: dict[str, Any], *, fence: int | None = None
    ) -> None: ...
    def get_status(self, run_id: str) -> dict[str, Any] | None: ...
    def statuses(self) -> dict[str, dict[str, Any]]: ...
    def usage(self, run_id: str) -> dict[str, int]: ...


def check_run_id(run_id: str) -> str:
    """``run_id`` if it is a plain name (never a path), else ``ValueError``."""
    if not isinstance(run_id, str) or not _RUN_ID.fullmatch(run_id):
        raise ValueError(f"not a run id: {run_id!r}")
    return run_id


class DirectoryStore:
    """A ``RunStore`` in a directory: ``jobs/<id>/``, and ``runs/<id>/`` with ``snap-<n>/``,
    ``current`` (the latest complete snapshot), ``fence`` and ``status.json``.

    Every compare-and-write of a fence runs under an exclusive ``fcntl.lockf`` on
    ``runs/<id>/.fence.lock``: POSIX locks hold across processes and machines, on NFS too
    (through lockd; not on a ``nolock`` mount). A snapshot is written and fsynced aside,
    renamed into place, then ``current`` replaced (``os.replace``): a reader sees the old
    snapshot or the new one, never half of one.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _run(self, run_id: str) -> Path:
        return self.root / "runs" / check_run_id(run_id)

    def check(self) -> None:
        hint = f"create it (mkdir -p {self.root}) or mount the shared store there"
        if not self.root.is_dir():
            raise StoreError("the run store is not a directory", file=self.root, hint=hint)
        probe = self.root / f".probe-{os.getpid()}-{secrets.token_hex(4)}"
        try:
            for sub in ("jobs", "runs"):
                (self.root / sub).mkdir(exist_ok=True)
            _write_atomic(probe, b"ok")
            probe.unlink()
        except OSError as exc:
            raise StoreError(
                f"the run store is not writable: {exc.strerror or exc}",
                file=self.root,
                hint="make it writable by this user on the server and on every worker",
            ) from None

    # -- jobs ------------------------------------------------------------------------------

    def put_job(self, run_id: str, job_dir: Path) -> None:
        dest = self.root / "jobs" / check_run_id(run_id)
        if not Path(job_dir).is_dir():
            raise StoreError("not a job directory", file=job_dir, hint="give spec/ and config/")
        if dest.exists():
            raise StoreError(f"job {run_id} is already stored", file=dest, hint="use a new id")
        tmp = dest.with_name(f".tmp-{run_id}-{secrets.token_hex(4)}")
        try:
            copied = hostio.copy_tree(
                Path(job_dir), ".", tmp, limit=MAX_FILE_BYTES, max_bytes=MAX_TREE_BYTES
            )
            if copied.refused:
                path, why = copied.refused[0]
                raise StoreError(f"{path}: {why}", file=job_dir, hint="submit plain files only")
            _fsync_tree(tmp)
            os.rename(tmp, dest)
            _fsync(dest.parent)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def get_job(self, run_id: str, into: Path) -> Path:
        src = self.root / "jobs" / check_run_id(run_id)
        if not src.is_dir():
            raise StoreError(f"no job {run_id} in the run store", file=self.root / "jobs")
        dest = Path(into) / run_id
        if dest.exists():
            raise StoreError("already exists", file=dest, hint="remove it first")
        shutil.copytree(src, dest, symlinks=True)
        return dest

    # -- fences and status -----------------------------------------------------------------

    @contextlib.contextmanager
    def _fenced(self, run_id: str) -> Iterator[Path]:
        """Hold the run's fence lock (across threads, processes and machines)."""
        run = self._run(run_id)
        run.mkdir(parents=True, exist_ok=True)
        with _THREADS:
            fd = os.open(run / ".fence.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX)
                yield run
            finally:
                os.close(fd)  # releases the lock

    def claim(self, run_id: str, fence: int) -> None:
        with self._fenced(run_id) as run:
            if fence <= (holder := _holder(run)):
                raise StaleFence(run_id, fence, holder)
            _write_atomic(run / "fence", f"{fence}\n".encode())

    def set_status(self, run_id: str, status: dict[str, Any], *, fence: int | None = None) -> None:
        data = json.dumps({"updated_at": time.time(), **status}, indent=1).encode()
        with self._fenced(run_id) as run:
            if fence is not None:
                _check(run_id, run, fence)
            _write_atomic(run / "status.json", data)

    def get_status(self, run_id: str) -> dict[str, Any] | None:
        return _read_json(self._run(run_id) / "status.json")

    def statuses(self) -> dict[str, dict[str, Any]]:
        runs = self.root / "runs"
        names = sorted(os.listdir(runs)) if runs.is_dir() else []
        found = {n: _read_json(runs / n / "status.json") for n in names if _RUN_ID.fullmatch(n)}
        return {name: status for name, status in found.items() if status is not None}

    def usage(self, run_id: str) -> dict[str, int]:
        run, job = self._run(run_id), self.root / "jobs" / check_run_id(run_id)
        snaps = len(_snapshots(run)) if run.is_dir() else 0
        return {"bytes": tree_bytes(run) + tree_bytes(job), "snapshots": snaps}

    # -- snapshots -------------------------------------------------------------------------

    def save(self, run_id: str, run_dir: Path, *, fence: int) -> int:
        """Snapshot ``run_dir`` as it is now; the bytes written.

        The workspace is saved as ``git bundle --all``: its commits, branches and HEAD.
        Uncommitted work is not saved: a resumed run stashes it and redoes the partial step.
        """
        with self._fenced(run_id) as run:
            _check(run_id, run, fence)
        tmp = run / f"tmp-{fence}-{secrets.token_hex(4)}"
        try:
            try:
                written = _snapshot(Path(run_dir), tmp)
            except OSError:  # a newer holder removed this stale writer's tmp-
                with self._fenced(run_id) as run:
                    _check(run_id, run, fence)
                raise
            with self._fenced(run_id) as run:
                _check(run_id, run, fence)
                snap = f"snap-{max(_snapshots(run), default=0) + 1}"
                os.rename(tmp, run / snap)
                _write_atomic(run / "current", f"{snap}\n".encode())
                for n in _snapshots(run)[:-KEEP_SNAPSHOTS]:
                    shutil.rmtree(run / f"snap-{n}", ignore_errors=True)
                for old in run.iterdir():  # left by writers that lost the run
                    if (m := _TMP.fullmatch(old.name)) and int(m[1]) < fence:
                        shutil.rmtree(old, ignore_errors=True)
            return written
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def restore(self, run_id: str, runs_dir: Path) -> Path | None:
        """``runs_dir/<id>`` rebuilt from the latest snapshot, its flow state in ``flows.db``."""
        from darkfactory.engine.session import persistence_for  # CrewAI: only when needed
        from darkfactory.engine.state import RunState

        run = self._run(run_id)
        try:
            name = (run / "current").read_text(encoding="ascii").strip()
        except FileNotFoundError:
            return None
        if not _SNAP.fullmatch(name):
            raise StoreError(f"names no snapshot: {name!r}", file=run / "current")
        snap, dest = run / name, Path(runs_dir) / run_id
        if dest.exists() or dest.is_symlink():
            raise StoreError("already exists", file=dest, hint="remove it to restore the run")
        meta = json.loads((snap / "snapshot.json").read_text(encoding="utf-8"))
        tmp = dest.with_name(f".restore-{run_id}-{secrets.token_hex(4)}")
        try:
            shutil.copytree(snap / "run", tmp, symlinks=True)
            tmp.chmod(0o700)  # the workspace is model-written: no other local user reaches it
            if meta["workspace"]:
                _unbundle(snap / "workspace.bundle", tmp / rundir.WORKSPACE_DIR, meta)
            os.rename(tmp, dest)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        state = json.loads((snap / "state.json").read_text(encoding="utf-8"))
        if isinstance(state, dict):
            state["run_dir"] = str(dest.resolve())  # where the run lives now
            persistence_for(dest).save_state(
                flow_uuid=run_id, method_name="restored", state_data=RunState.model_validate(state)
            )
        return dest


def _snapshot(run_dir: Path, dest: Path) -> int:
    """Write a snapshot of ``run_dir`` into the new ``dest``, fsynced; the bytes written."""
    (dest / "run").mkdir(parents=True)
    meta = {"skipped": _copy_run_files(run_dir, dest / "run"), "saved_at": time.time()}
    meta.update(_bundle(run_dir / rundir.WORKSPACE_DIR, dest / "workspace.bundle"))
    state = rundir.stored_state(run_dir)
    (dest / "state.json").write_text(json.dumps(state), encoding="utf-8")
    (dest / "snapshot.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
    _fsync_tree(dest)
    return tree_bytes(dest)


def _copy_run_files(run_dir: Path, dest: Path) -> list[tuple[str, str]]:
    """Copy the run's directories and regular files, never following a link, through
    ``hostio``; what was skipped (path, why)."""
    skipped: list[tuple[str, str]] = []
    total = 0
    for top in sorted(os.scandir(run_dir), key=lambda e: e.name):
        if top.name in _NOT_SAVED:
            continue
        entries = [(top.name, top.stat(follow_symlinks=False).st_mode)]
        if stat.S_ISDIR(entries[0][1]):
            below = hostio.walk(run_dir, top.name, skip_dirs=frozenset())
            entries += [(f"{top.name}/{e.path}", e.mode) for e in below]
        for rel, mode in entries:
            if stat.S_ISDIR(mode):
                (dest / rel).mkdir()
                continue
            try:
                if not stat.S_ISREG(mode):
                    raise hostio.Refused(rel, "not a regular file or directory")
                data = hostio.read_bytes(run_dir, rel, limit=MAX_FILE_BYTES)
            except hostio.Refused as exc:
                skipped.append((rel, exc.why))
                continue
            except FileNotFoundError:  # gone since it was listed
                continue
            total += len(data)
            if total > MAX_TREE_BYTES:
                raise StoreError(f"over {MAX_TREE_BYTES} bytes to save", file=run_dir)
            (dest / rel).write_bytes(data)
            (dest / rel).chmod(0o755 if mode & 0o111 else 0o644)
    return skipped


def _bundle(ws: Path, bundle: Path) -> dict[str, Any]:
    """Bundle the workspace's refs (``git bundle --all``); what rebuilding it needs."""
    if not (ws / ".git").is_dir():
        return {"workspace": False}

    def git(*args: str) -> str | None:
        try:
            return gitrepo.run(ws, *args) or None
        except subprocess.CalledProcessError:
            return None

    refs = bool(git("for-each-ref", "--count=1", "--format=%(refname)"))
    if refs:
        gitrepo.run(ws, "bundle", "create", str(bundle), "--all")
    try:
        exclude = hostio.read_text(ws, ".git/info/exclude", limit=64 * 1024, errors="replace")
    except (FileNotFoundError, hostio.Refused):
        exclude = None
    return {
        "workspace": True,
        "bundled": refs,
        "head": git("rev-parse", "-q", "--verify", "HEAD^{commit}"),
        "branch": git("symbolic-ref", "-q", "HEAD"),  # None: a detached HEAD
        "exclude": exclude,
    }


def _unbundle(bundle: Path, ws: Path, meta: dict[str, Any]) -> None:
    """A new repository at ``ws`` with the bundle's refs and the HEAD saved, checked out."""
    gitrepo.init(ws)
    if meta["bundled"]:
        for line in gitrepo.run(ws, "bundle", "unbundle", str(bundle)).splitlines():
            sha, _, ref = line.partition(" ")
            if ref.startswith("refs/"):
                gitrepo.run(ws, "update-ref", ref, sha)
    if meta["branch"]:
        gitrepo.run(ws, "symbolic-ref", "HEAD", meta["branch"])
    elif meta["head"]:
        gitrepo.run(ws, "update-ref", "--no-deref", "HEAD", meta["head"])
    if meta["exclude"] is not None:
        (ws / ".git" / "info").mkdir(exist_ok=True)
        (ws / ".git" / "info" / "exclude").write_text(meta["exclude"], encoding="utf-8")
    if meta["head"]:
        gitrepo.run(ws, "reset", "-q", "--hard")
        if gitrepo.head(ws) != meta["head"]:
            raise StoreError(f"the restored workspace is not at {meta['head']}", file=ws)


def _holder(run: Path) -> int:
    """The fence that holds the run (0: none yet)."""
    try:
        return int((run / "fence").read_text(encoding="ascii").strip())
    except FileNotFoundError:
        return 0


def _check(run_id: str, run: Path, fence: int) -> None:
    if fence != (holder := _holder(run)):
        raise StaleFence(run_id, fence, holder)


def _snapshots(run: Path) -> list[int]:
    return sorted(int(m[1]) for p in run.iterdir() if (m := _SNAP.fullmatch(p.name)))


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, NotADirectoryError):
        return None
    return data if isinstance(data, dict) else None


def _write_atomic(path: Path, data: bytes) -> None:
    """Write ``path`` whole or not at all: a fsynced temporary file, then ``os.replace``."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with tmp.open("wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync(path.parent)


def _fsync(path: Path) -> None:
    """fsync the file or directory ``path`` (never through a link)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(top: Path) -> None:
    """fsync every file and directory under ``top`` (ours: no link in it), children first."""
    for dirpath, _, filenames in os.walk(top, topdown=False):
        for name in filenames:
            _fsync(Path(dirpath) / name)
        _fsync(Path(dirpath))


def tree_bytes(top: Path) -> int:
    """Bytes of the regular files under ``top`` (``lstat``: a link counts as itself)."""
    total = 0
    for dirpath, _, filenames in os.walk(top):
        for name in filenames:
            with contextlib.suppress(FileNotFoundError):
                total += (Path(dirpath) / name).lstat().st_size
    return total
