"""Run one command as a bounded process tree: the runner every backend shares.

``run_process`` starts ``argv`` in a new session (so it leads its own process group), feeds
it ``stdin``, reads stdout and stderr concurrently (one ``selectors`` loop, no threads) and
caps each at ``output_bytes``: past the cap, or past the wall-clock timeout, the whole
process group is killed with SIGKILL. When the command ends by itself, whatever it left
running in its group is killed too. The leader is only reaped after that kill, so its
process-group id cannot be reused by an unrelated process in between. Given a ``Cgroup``
(``_cgroup.py``) the command was started in, every kill also kills every process of the
cgroup, which a process cannot leave by ``setsid`` or double-forking, and a kill by the
kernel's OOM killer in it is reported as ``"memory"``.

Resource limits are not set with ``preexec_fn`` (unsafe in a threaded program such as a
crew): ``limit_prefix`` returns a small Python shim, run as the first program of the
command, that sets the rlimits, then runs the real argv as its child. When the child
ends, the shim writes the child's exact wait status, peak resident memory and CPU time to
a ``Report`` pipe and ends the same way. It is the backend's job to put the shim where it must act: the local backend in front of the
command, bwrap inside the sandbox (after the namespaces exist, which matters for
RLIMIT_NPROC; see ``bwrap.py``).

Exit codes: a command killed by signal N reports ``128 + N`` (the shell's convention,
which is also what bwrap reports), never a negative number.

Which limit ended a command (``ExecResult.killed``):

* ``"timeout"`` / ``"output"`` / ``"disk"``: we killed it, so this is certain (``"disk"``:
  a ``_scrub.Guard`` found the writable places over the quota; the backend calls its
  ``finish`` after the command).
* ``"cpu"``: SIGXCPU (RLIMIT_CPU soft limit), or SIGKILL after the CPU time was used up.
* ``"file_size"``: SIGXFSZ (RLIMIT_FSIZE). Python ignores SIGXFSZ and gets ``OSError:
  File too large`` instead, which is an ordinary failure of the command.
* ``"memory"``: certain if the kernel's OOM killer killed a process of the command's
  cgroup and the command failed. Otherwise a heuristic, since RLIMIT_AS makes allocations
  fail rather than killing: a Python ``MemoryError`` (or a C ``Cannot allocate memory`` / ``std::bad_alloc`` / ``out
  of memory``) at the end of stderr with a non-zero exit; or death by SIGKILL, SIGSEGV,
  SIGBUS or SIGABRT after the command (or a child it waited for) had used at least half
  the limit (the kernel's OOM killer, or a C program that did not check ``malloc``). A
  program that handles its allocation failure and exits quietly is not detected, and
  RLIMIT_AS counts address space, not memory in use: a program that reserves much more
  than it touches (many threads, some JITs) fails early.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import resource
import selectors
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence

from darkfactory.sandbox._cgroup import Cgroup
from darkfactory.sandbox._scrub import Guard
from darkfactory.sandbox.base import ExecResult, Killed, Limits

#: How long to keep reading after a kill or after the leader exited, for the last bytes.
DRAIN_GRACE_S = 1.0
_CHUNK = 65536

#: The first program of every command: sets the rlimits, then runs the command as its child and reports the child's exact wait status, peak memory
#: and CPU time on the report fd before ending the same way (exit code or signal).
#: argv: <config JSON> -- command...
_SHIM = """\
import json, os, resource, signal, sys
# Python ignores these at startup and an ignored signal stays ignored across exec.
signal.signal(signal.SIGPIPE, signal.SIG_DFL)
signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
c = json.loads(sys.argv[1])
argv = sys.argv[3:]
for name, soft, hard in c["rlimits"]:
    resource.setrlimit(getattr(resource, name), (soft, hard))
os.umask(0o022)
report = c["report_fd"]
pid = os.fork() if report is not None else 0
if pid == 0:
    if report is not None:
        os.close(report)
    try:
        os.execvp(argv[0], argv)
    except OSError as e:
        sys.stderr.write(f"sandbox: cannot execute {argv[0]!r}: {e.strerror}\\n")
        sys.stderr.flush()
        os._exit(126 if isinstance(e, PermissionError) else 127)
for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
    signal.signal(s, signal.SIG_IGN)  # the command decides; a group kill is SIGKILL anyway
_, status, ru = os.wait4(pid, 0)
os.write(report, json.dumps(
    {"status": status, "maxrss_kb": ru.ru_maxrss, "cpu_s": ru.ru_utime + ru.ru_stime}
).encode())
os.close(report)
if os.WIFSIGNALED(status):
    sig = os.WTERMSIG(status)
    signal.signal(sig, signal.SIG_DFL)
    os.kill(os.getpid(), sig)
    os._exit(128 + sig)
os._exit(os.waitstatus_to_exitcode(status))
"""


class Report:
    """The pipe the shim reports the command's wait status and peak memory on."""

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe()

    def started(self) -> None:
        """The child holds its copy now; ours must go, or the pipe never ends."""
        if self.write_fd >= 0:
            os.close(self.write_fd)
            self.write_fd = -1

    def read(self) -> dict[str, float] | None:
        """What the shim reported, or None (it was killed before it could)."""
        os.set_blocking(self.read_fd, False)
        try:
            data = os.read(self.read_fd, 4096)
        except BlockingIOError:
            return None
        try:
            info = json.loads(data)
        except ValueError:
            return None
        return info if isinstance(info, dict) else None

    def __enter__(self) -> Report:
        return self

    def __exit__(self, *exc: object) -> None:
        self.started()
        if self.read_fd >= 0:
            os.close(self.read_fd)
            self.read_fd = -1


_MEMORY_TEXT = re.compile(
    r"^MemoryError\b|Cannot allocate memory|std::bad_alloc|\bout of memory\b",
    re.MULTILINE | re.IGNORECASE,
)
_MEMORY_SIGNALS = {signal.SIGKILL, signal.SIGSEGV, signal.SIGBUS, signal.SIGABRT}


def limit_prefix(
    python: str,
    limits: Limits,
    *,
    nproc: int | None,
    report: Report | None = None,
) -> list[str]:
    """argv to put in front of a command so it runs under ``limits``.

    ``nproc`` is the RLIMIT_NPROC to set (None: leave it). ``python`` must be runnable
    where the prefix runs (inside the sandbox for bwrap). With ``report``, the shim stays
    as the command's parent and reports how it ended (pass ``report`` to ``run_process``
    too); without, it ``exec``s the command.
    """
    mem = limits.memory_mb * 1024 * 1024
    fsize = limits.file_size_mb * 1024 * 1024
    rlimits: list[tuple[str, int, int]] = [
        ("RLIMIT_AS", mem, mem),
        # Soft limit raises SIGXCPU; the hard one (a second later) is a SIGKILL backstop.
        ("RLIMIT_CPU", limits.cpu_s, limits.cpu_s + 1),
        ("RLIMIT_FSIZE", fsize, fsize),
        ("RLIMIT_CORE", 0, 0),
    ]
    if nproc is not None:
        rlimits.append(("RLIMIT_NPROC", nproc, nproc))
    config = json.dumps(
        {
            "rlimits": rlimits,
            "report_fd": report.write_fd if report is not None else None,
        }
    )
    return [python, "-I", "-S", "-c", _SHIM, config, "--"]


def minimal_env(path: str, workdir: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The only environment a command gets: nothing of the host's leaks in."""
    env = {
        "PATH": path,
        "HOME": "/tmp",
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONPATH": workdir,
    }
    if extra:
        env.update(extra)
    return env


def run_process(
    argv: Sequence[str],
    *,
    timeout: float,
    limits: Limits,
    env: Mapping[str, str],
    cwd: str | None = None,
    stdin: str | None = None,
    pass_fds: Sequence[int] = (),
    report: Report | None = None,
    cgroup: Cgroup | None = None,
    guard: Guard | None = None,
) -> ExecResult:
    """Run ``argv`` to completion or to a limit; never raises for the command's failure.

    With ``cgroup``, ``argv`` must enter it before anything else (``Cgroup.enter_argv``).
    With ``guard``, the command is killed (``"disk"``) when it fills its disk quota.
    """
    start = time.monotonic()
    fds = (*pass_fds, report.write_fd) if report is not None else tuple(pass_fds)
    proc = subprocess.Popen(
        list(argv),
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(env),
        cwd=cwd,
        start_new_session=True,
        close_fds=True,
        pass_fds=fds,
    )
    if report is not None:
        report.started()
    runner = _Runner(proc, limits.output_bytes, stdin, cgroup, guard)
    try:
        runner.pump(deadline=start + timeout)
    except BaseException:  # e.g. KeyboardInterrupt: never leave the group running
        runner.kill()
        runner.reap()
        raise
    finally:
        runner.close()
    status, usage = runner.reap()
    duration = time.monotonic() - start
    exit_code = _exit_code(status)
    stdout, stderr = runner.text()
    info = report.read() if report is not None else None
    peak_kb, cpu_s = float(usage.ru_maxrss), usage.ru_utime + usage.ru_stime
    if info is not None:  # from the shim: the command's own status and peak memory
        exit_code = _exit_code(int(info["status"]))
        peak_kb, cpu_s = float(info["maxrss_kb"]), float(info["cpu_s"])
    # 128 + N is also how a shell reports a child that signal N killed.
    signum = exit_code - 128 if 128 < exit_code < 128 + 65 else None
    oom = cgroup is not None and exit_code != 0 and cgroup.oom_kills() > 0
    killed = runner.killed or ("memory" if oom else None)
    killed = killed or classify(exit_code, signum, stderr, peak_kb, cpu_s, limits)
    return ExecResult(exit_code, stdout, stderr, duration, killed)


def classify(
    exit_code: int,
    sig: int | None,
    stderr: str,
    peak_kb: float,
    cpu_used: float,
    limits: Limits,
) -> Killed | None:
    """Which resource limit ended a command that we did not kill ourselves (see module doc).

    ``sig`` is the signal that ended it, if one did; ``peak_kb`` the largest resident size
    of it (or of a child it waited for); ``cpu_used`` its CPU seconds.
    """
    if sig == signal.SIGXCPU or (sig == signal.SIGKILL and cpu_used >= limits.cpu_s):
        return "cpu"
    if sig == signal.SIGXFSZ:
        return "file_size"
    if exit_code != 0 and _MEMORY_TEXT.search(stderr[-4000:]):
        return "memory"
    if sig in _MEMORY_SIGNALS and peak_kb * 1024 >= limits.memory_mb * 1024 * 1024 // 2:
        return "memory"
    return None


def _exit_code(status: int) -> int:
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


class _Runner:
    """The read/write/kill loop of one process group (and of its cgroup, if any)."""

    def __init__(
        self,
        proc: subprocess.Popen[bytes],
        cap: int,
        stdin: str | None,
        cgroup: Cgroup | None,
        guard: Guard | None = None,
    ) -> None:
        assert proc.stdout is not None and proc.stderr is not None
        self.proc = proc
        self.cgroup = cgroup
        self.guard = guard
        self.pgid = proc.pid  # start_new_session: the leader's pid is the group id
        self.cap = cap
        self.killed: Killed | None = None
        self.exited = False
        self.reaped: tuple[int, resource.struct_rusage] | None = None
        self.sel = selectors.DefaultSelector()
        self.fds = (proc.stdout.fileno(), proc.stderr.fileno())
        self.out = {fd: bytearray() for fd in self.fds}
        self.seen = dict.fromkeys(self.fds, 0)
        for fd in self.fds:
            self.sel.register(fd, selectors.EVENT_READ)
        # A pidfd becomes readable when the leader exits: no polling (Linux >= 5.3).
        self.pidfd: int | None = None
        with contextlib.suppress(OSError, AttributeError):
            self.pidfd = os.pidfd_open(proc.pid)
            self.sel.register(self.pidfd, selectors.EVENT_READ)
        self.pending = memoryview((stdin or "").encode("utf-8"))
        if proc.stdin is not None:
            os.set_blocking(proc.stdin.fileno(), False)
            if self.pending:
                self.sel.register(proc.stdin.fileno(), selectors.EVENT_WRITE)
            else:
                self._close_stdin()

    def pump(self, deadline: float) -> None:
        """Move bytes until the pipes close and the leader exits, or a limit fires."""
        drain_until: float | None = None
        while True:
            now = time.monotonic()
            if not self.exited and self._leader_exited():
                self.exited = True
                self.kill()  # whatever the command left running in its group
            if not self.exited and self.killed is None and now >= deadline:
                self.kill("timeout")
            if not self.exited and self.killed is None and self._over_quota(now):
                self.kill("disk")
            reading = any(fd in self.sel.get_map() for fd in self.fds)
            if self.exited and not reading:
                return
            if drain_until is None and (self.exited or self.killed is not None):
                drain_until = now + DRAIN_GRACE_S
            if drain_until is not None and now >= drain_until:
                # Only a process that escaped the group (possible with the local backend)
                # still holds a pipe: stop reading; reap() waits for the killed leader.
                return
            until = deadline if drain_until is None else drain_until
            poll = 1.0 if self.pidfd is not None else 0.05
            wait = max(0.0, min(until - now, poll if reading else poll / 5))
            if self.guard is not None and drain_until is None:
                wait = min(wait, self.guard.wait(now))
            for key, _ in self.sel.select(wait):
                if key.fd == self.pidfd:
                    self._forget_pidfd()  # the exit itself is seen at the top of the loop
                elif key.events & selectors.EVENT_WRITE:
                    self._write(key.fd)
                else:
                    self._read(key.fd)

    def _over_quota(self, now: float) -> bool:
        return self.guard is not None and self.guard.over_quota(now)

    def _read(self, fd: int) -> None:
        try:
            data = os.read(fd, _CHUNK)
        except BlockingIOError:
            return
        if not data:
            self.sel.unregister(fd)
            return
        self.seen[fd] += len(data)
        buf = self.out[fd]
        room = self.cap - len(buf)
        if room > 0:
            buf += data[:room]
        if self.seen[fd] > self.cap and self.killed is None and not self.exited:
            self.kill("output")

    def _write(self, fd: int) -> None:
        try:
            n = os.write(fd, self.pending[:_CHUNK])
        except BlockingIOError:
            return
        except OSError:  # EPIPE: the command does not read (all of) its input
            self._close_stdin()
            return
        self.pending = self.pending[n:]
        if not self.pending:
            self._close_stdin()

    def _close_stdin(self) -> None:
        stdin = self.proc.stdin
        if stdin is None or stdin.closed:
            return
        with contextlib.suppress(KeyError, ValueError):
            self.sel.unregister(stdin.fileno())
        with contextlib.suppress(OSError):
            stdin.close()

    def _forget_pidfd(self) -> None:
        if self.pidfd is not None:
            with contextlib.suppress(KeyError, ValueError):
                self.sel.unregister(self.pidfd)
            os.close(self.pidfd)
            self.pidfd = None

    def _leader_exited(self) -> bool:
        """True once the leader is a zombie. Not reaped (WNOWAIT): its pgid stays ours."""
        return os.waitid(os.P_PID, self.proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None

    def kill(self, why: Killed | None = None) -> None:
        """SIGKILL the whole group; only while the leader is alive or a zombie (no pid reuse).

        And every process of the cgroup, wherever it moved its session or group.
        """
        if why is not None and self.killed is None:
            self.killed = why
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pgid, signal.SIGKILL)
        if self.cgroup is not None:
            self.cgroup.kill()

    def reap(self) -> tuple[int, resource.struct_rusage]:
        """Reap the leader: the last step, after every kill of its group."""
        if self.reaped is None:
            if not self.exited and self.killed is None:
                self.kill()  # pump() always ends with one of the two; never leak a group
            _, status, usage = os.wait4(self.proc.pid, 0)
            self.proc.returncode = _exit_code(status)
            self.reaped = (status, usage)
        return self.reaped

    def text(self) -> tuple[str, str]:
        out, err = (bytes(self.out[fd]).decode("utf-8", errors="replace") for fd in self.fds)
        return out, err

    def close(self) -> None:
        self._forget_pidfd()
        self.sel.close()
        self._close_stdin()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
