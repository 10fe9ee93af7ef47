"""The shared run store: fenced snapshots a run resumes from on another machine (real git)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from runhelp import REPO

from darkfactory.engine.session import persistence_for
from darkfactory.engine.state import JournalEntry, RunState
from darkfactory.service.store import DirectoryStore, StaleFence, StoreError, check_run_id
from darkfactory.workspace import git as gitrepo
from darkfactory.workspace import rundir

RUN_ID = "20261207-081500-word-count-cli-3f9a"


def make_run(runs_dir: Path, run_id: str = RUN_ID, *, step: str = "plan") -> Path:
    """A run directory as a run leaves it after ``step``: spec, config, a workspace on the
    run's branch with two commits, a trace and the flow state in ``runs_dir/flows.db``."""
    run_dir = runs_dir / run_id
    (run_dir / "spec").mkdir(parents=True)
    (run_dir / "spec" / "spec.md").write_text("# Word count\n", encoding="utf-8")
    rundir.spec_json(run_dir).write_text('{"title": "Word count"}', encoding="utf-8")
    shutil.copytree(REPO / "config", run_dir / "config")
    (run_dir / "acceptance").mkdir()
    (run_dir / "acceptance" / "test_wc.py").write_text("def test_x(): pass\n", encoding="utf-8")
    (run_dir / "trace.jsonl").write_text('{"event": "run_start"}\n', encoding="utf-8")
    (run_dir / rundir.LOCK_FILE).write_text("pid 1", encoding="utf-8")
    ws = run_dir / rundir.WORKSPACE_DIR
    gitrepo.init(ws)
    (ws / "README.md").write_text("hello\n", encoding="utf-8")
    gitrepo.commit_all(ws, "intake")
    gitrepo.run(ws, "checkout", "-q", "-b", f"darkfactory/{run_id}")
    (ws / "wc.py").write_text("print(1)\n", encoding="utf-8")
    gitrepo.commit_all(ws, "plan")
    (ws / ".git" / "info").mkdir(exist_ok=True)
    (ws / ".git" / "info" / "exclude").write_text(rundir.WORKSPACE_IGNORE, encoding="utf-8")
    journal_step(run_dir, step)
    return run_dir


def journal_step(run_dir: Path, step: str) -> None:
    state = RunState(
        id=run_dir.name,
        run_dir=str(run_dir),
        phase=step,
        journal=[JournalEntry(step=step)],
        commits={step: gitrepo.head(run_dir / rundir.WORKSPACE_DIR)},
    )
    persistence_for(run_dir).save_state(flow_uuid=run_dir.name, method_name=step, state_data=state)


@pytest.fixture
def store(tmp_path: Path) -> DirectoryStore:
    (tmp_path / "store").mkdir()
    found = DirectoryStore(tmp_path / "store")
    found.check()
    return found


def files_of(top: Path) -> dict[str, bytes]:
    return {
        p.relative_to(top).as_posix(): p.read_bytes()
        for p in sorted(top.rglob("*"))
        if p.is_file() and not p.is_symlink() and ".git" not in p.relative_to(top).parts
    }


def test_a_saved_run_is_restored_on_another_machine(store: DirectoryStore, tmp_path: Path) -> None:
    run_dir = make_run(tmp_path / "a" / "runs")
    ws = run_dir / rundir.WORKSPACE_DIR
    store.claim(RUN_ID, 1)
    written = store.save(RUN_ID, run_dir, fence=1)
    assert written > 0
    assert (store.root / "runs" / RUN_ID / "current").read_text().strip() == "snap-1"

    other = tmp_path / "b" / "runs"
    restored = store.restore(RUN_ID, other)
    assert restored == other / RUN_ID
    expected = {k: v for k, v in files_of(run_dir).items() if k != rundir.LOCK_FILE}
    assert files_of(restored) == expected  # the workspace's files too, checked out
    assert not (restored / rundir.LOCK_FILE).exists()
    back = restored / rundir.WORKSPACE_DIR
    assert gitrepo.head(back) == gitrepo.head(ws)
    branch = gitrepo.run(back, "symbolic-ref", "--short", "HEAD")
    assert branch == f"darkfactory/{RUN_ID}"
    assert gitrepo.log(back) == ["intake", "plan"]
    assert gitrepo.run(back, "rev-parse", "main") == gitrepo.run(ws, "rev-parse", "main")
    assert gitrepo.uncommitted(back) == []
    exclude = (back / ".git" / "info" / "exclude").read_text(encoding="utf-8")
    assert exclude == rundir.WORKSPACE_IGNORE
    saved = rundir.stored_state(run_dir)
    assert saved is not None
    assert rundir.stored_state(restored) == {**saved, "run_dir": str(restored.resolve())}


def test_restore_refuses_an_existing_run_dir_and_says_none_when_nothing_was_saved(
    store: DirectoryStore, tmp_path: Path
) -> None:
    assert store.restore(RUN_ID, tmp_path / "x") is None
    run_dir = make_run(tmp_path / "a" / "runs")
    store.claim(RUN_ID, 1)
    store.save(RUN_ID, run_dir, fence=1)
    with pytest.raises(StoreError, match="already exists"):
        store.restore(RUN_ID, run_dir.parent)


def test_a_worker_that_lost_the_run_cannot_write_it(store: DirectoryStore, tmp_path: Path) -> None:
    run_dir = make_run(tmp_path / "runs")
    store.claim(RUN_ID, 1)
    store.save(RUN_ID, run_dir, fence=1)
    current = store.root / "runs" / RUN_ID / "current"
    store.claim(RUN_ID, 2)  # another worker took the run over
    with pytest.raises(StaleFence, match="fence 1 is stale"):
        store.save(RUN_ID, run_dir, fence=1)
    with pytest.raises(StaleFence):
        store.set_status(RUN_ID, {"status": "running"}, fence=1)
    assert current.read_text().strip() == "snap-1"
    assert store.usage(RUN_ID)["snapshots"] == 1
    assert not list((store.root / "runs" / RUN_ID).glob("tmp-*"))
    with pytest.raises(StaleFence):
        store.claim(RUN_ID, 2)  # not higher than the holder
    with pytest.raises(StaleFence):
        store.claim(RUN_ID, 1)
    with pytest.raises(StaleFence):
        store.save("never-claimed", run_dir, fence=1)
    store.save(RUN_ID, run_dir, fence=2)
    assert current.read_text().strip() == "snap-2"


def test_two_snapshots_are_kept(store: DirectoryStore, tmp_path: Path) -> None:
    run_dir = make_run(tmp_path / "runs")
    store.claim(RUN_ID, 7)
    ws = run_dir / rundir.WORKSPACE_DIR
    for step in ("implement", "verify", "docs"):
        (ws / f"{step}.txt").write_text(step, encoding="utf-8")
        gitrepo.commit_all(ws, step)
        journal_step(run_dir, step)
        store.save(RUN_ID, run_dir, fence=7)
    stored = store.root / "runs" / RUN_ID
    assert sorted(p.name for p in stored.glob("snap-*")) == ["snap-2", "snap-3"]
    assert (stored / "current").read_text().strip() == "snap-3"
    assert store.usage(RUN_ID)["snapshots"] == 2
    (ws / "uncommitted.txt").write_text("lost", encoding="utf-8")  # never saved
    restored = store.restore(RUN_ID, tmp_path / "other")
    assert restored is not None
    assert gitrepo.log(restored / rundir.WORKSPACE_DIR)[-1] == "docs"
    assert not (restored / rundir.WORKSPACE_DIR / "uncommitted.txt").exists()
    state = rundir.stored_state(restored)
    assert state is not None and state["journal"] == [{"step": "docs", "route": None}]


def test_links_and_special_files_in_the_run_dir_are_not_saved(
    store: DirectoryStore, tmp_path: Path
) -> None:
    run_dir = make_run(tmp_path / "runs")
    (run_dir / "acceptance" / "evil").symlink_to("/etc")
    (run_dir / "acceptance" / "passwd").symlink_to("/etc/passwd")
    (run_dir / "report.md").symlink_to("/etc/hostname")
    os.mkfifo(run_dir / "acceptance" / "fifo")
    store.claim(RUN_ID, 1)
    store.save(RUN_ID, run_dir, fence=1)
    snap = store.root / "runs" / RUN_ID / "snap-1"
    for rel in ("acceptance/evil", "acceptance/passwd", "acceptance/fifo", "report.md"):
        assert not os.path.lexists(snap / "run" / rel), rel
    skipped = json.loads((snap / "snapshot.json").read_text())["skipped"]
    assert sorted(path for path, _ in skipped) == [
        "acceptance/evil",
        "acceptance/fifo",
        "acceptance/passwd",
        "report.md",
    ]
    assert not [p for p in snap.rglob("*") if p.is_symlink()]
    assert (snap / "run" / "acceptance" / "test_wc.py").is_file()


@pytest.mark.parametrize("bad", ["", "..", "../x", "a/b", "/etc", ".hidden", "a\n", "x" * 129])
def test_a_run_id_is_a_plain_name(store: DirectoryStore, tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValueError, match="not a run id"):
        check_run_id(bad)
    for call in (
        lambda: store.claim(bad, 1),
        lambda: store.save(bad, tmp_path, fence=1),
        lambda: store.restore(bad, tmp_path),
        lambda: store.set_status(bad, {}),
        lambda: store.get_status(bad),
        lambda: store.usage(bad),
        lambda: store.put_job(bad, tmp_path),
        lambda: store.get_job(bad, tmp_path),
    ):
        with pytest.raises(ValueError):
            call()
    assert sorted(p.name for p in store.root.iterdir()) == ["jobs", "runs"]
    assert not list((store.root / "runs").iterdir())


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A directory an unprivileged user can reach (pytest's own are private to root)."""
    top = Path(tempfile.mkdtemp(prefix="darkfactory-store-"))
    top.chmod(0o755)
    yield top
    shutil.rmtree(top)


def test_a_read_only_store_is_refused(shared_tmp: Path) -> None:
    root = shared_tmp / "store"
    root.mkdir(mode=0o555)
    root.chmod(0o555)
    with pytest.raises(StoreError, match="not a directory"):
        DirectoryStore(shared_tmp / "missing").check()
    if os.geteuid() != 0:
        with pytest.raises(StoreError, match="not writable") as err:
            DirectoryStore(root).check()
        assert str(root) in str(err.value)
        return
    pid = os.fork()  # root writes anywhere: check as an unprivileged user in a child
    if pid == 0:
        code = 1
        try:
            os.setgid(65534)
            os.setuid(65534)
            DirectoryStore(root).check()
        except StoreError as exc:
            code = 0 if str(root) in str(exc) and "not writable" in str(exc) else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_a_job_goes_in_and_comes_back(store: DirectoryStore, tmp_path: Path) -> None:
    job = tmp_path / "job"
    (job / "spec").mkdir(parents=True)
    (job / "spec" / "spec.md").write_text("# Word count\n", encoding="utf-8")
    shutil.copytree(REPO / "config", job / "config")
    store.put_job(RUN_ID, job)
    with pytest.raises(StoreError, match="already stored"):
        store.put_job(RUN_ID, job)
    got = store.get_job(RUN_ID, tmp_path / "worker")
    assert got == tmp_path / "worker" / RUN_ID
    assert files_of(got) == files_of(job)
    with pytest.raises(StoreError, match="no job"):
        store.get_job("unknown", tmp_path / "worker")
    (job / "spec" / "link").symlink_to("/etc/passwd")
    with pytest.raises(StoreError, match="symlink"):
        store.put_job("other", job)
    assert not (store.root / "jobs" / "other").exists()


def test_statuses_and_usage(store: DirectoryStore, tmp_path: Path) -> None:
    assert store.statuses() == {}
    assert store.get_status("a") is None
    store.set_status("a", {"status": "queued", "attempts": 0})
    store.claim("b", 3)
    store.set_status("b", {"status": "running", "worker": "w1"}, fence=3)
    found = store.statuses()
    assert sorted(found) == ["a", "b"]
    assert found["a"]["status"] == "queued" and found["b"]["worker"] == "w1"
    assert found["b"]["updated_at"] > 0
    assert store.get_status("b") == found["b"]

    assert store.usage(RUN_ID) == {"bytes": 0, "snapshots": 0}
    run_dir = make_run(tmp_path / "runs")
    store.claim(RUN_ID, 1)
    written = store.save(RUN_ID, run_dir, fence=1)
    snap = store.root / "runs" / RUN_ID / "snap-1"
    assert written == sum(p.stat().st_size for p in snap.rglob("*") if p.is_file())
    used = store.usage(RUN_ID)
    assert used["snapshots"] == 1
    assert written < used["bytes"] < written + 1000  # plus fence, current, lock


def test_a_detached_head_or_a_workspace_without_commits_comes_back_as_it_was(
    store: DirectoryStore, tmp_path: Path
) -> None:
    run_dir = make_run(tmp_path / "runs")
    ws = run_dir / rundir.WORKSPACE_DIR
    gitrepo.run(ws, "checkout", "-q", "--detach", "main")
    empty = tmp_path / "runs" / "empty-run"
    (empty / "spec").mkdir(parents=True)
    gitrepo.init(empty / rundir.WORKSPACE_DIR)
    gitrepo.run(empty / rundir.WORKSPACE_DIR, "symbolic-ref", "HEAD", "refs/heads/darkfactory/e")
    for run_id, path in ((RUN_ID, run_dir), ("empty-run", empty)):
        store.claim(run_id, 1)
        store.save(run_id, path, fence=1)
    other = tmp_path / "other"
    back = store.restore(RUN_ID, other)
    assert back is not None
    assert gitrepo.head(back / rundir.WORKSPACE_DIR) == gitrepo.run(ws, "rev-parse", "main")
    with pytest.raises(subprocess.CalledProcessError):
        gitrepo.run(back / rundir.WORKSPACE_DIR, "symbolic-ref", "-q", "HEAD")
    assert (back / rundir.WORKSPACE_DIR / "README.md").is_file()
    assert not (back / rundir.WORKSPACE_DIR / "wc.py").exists()
    back = store.restore("empty-run", other)
    assert back is not None and (back / "spec").is_dir()
    head = gitrepo.run(back / rundir.WORKSPACE_DIR, "symbolic-ref", "HEAD")
    assert head == "refs/heads/darkfactory/e"
    assert gitrepo.run(back / rundir.WORKSPACE_DIR, "for-each-ref") == ""
    assert rundir.stored_state(back) is None


def test_claims_from_many_processes_at_once_leave_the_highest_fence(
    store: DirectoryStore,
) -> None:
    """The compare-and-write is atomic across processes: the highest fence always wins."""
    for round_ in range(3):
        run_id, start = f"race-{round_}", time.time() + 0.3
        children = {}
        for fence in (5, 3, 8, 1, 7, 2, 6, 4):
            pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    time.sleep(max(0.0, start - time.time()))
                    store.claim(run_id, fence)
                    code = 0
                except StaleFence:
                    code = 3
                finally:
                    os._exit(code)
            children[pid] = fence
        won = []
        for pid, fence in children.items():
            code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
            assert code in (0, 3)
            won += [fence] if code == 0 else []
        assert 8 in won
        assert (store.root / "runs" / run_id / "fence").read_text().strip() == "8"
