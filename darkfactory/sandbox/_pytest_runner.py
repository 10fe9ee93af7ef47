"""The test runner inside the sandbox: pytest in a child, its verdict relayed by a parent.

Run as ``python -I -c <this file's text> CONFIG_JSON`` (``testrun.run_pytest``), so neither
the working directory nor any ``PYTHON*`` variable is on the path at start. The parent
never imports workspace code: it forks, makes itself non-dumpable (the child may not open
its ``/proc`` entries), and is the only process that holds the command's stdout. The child
imports pytest and its plugins first, then puts the workspace on the path, runs the tests,
and sends each report down a pipe; it ends with ``os._exit`` so no ``atexit`` hook of the
code under test runs. The parent prints one JSON document: the outcomes and the output,
then ends as pytest ended (``128 + N`` for signal N), so the sandbox sees a pytest that a
limit killed (the OOM killer, RLIMIT_CPU) as it would see any other command.

``-I`` ignores ``PYTHONHASHSEED``, so a suite whose parametrized ids come from a set would
get different ids in every process (and a baseline would see false regressions): the
runner first re-executes itself once, still without any ``PYTHON*`` variable but the seed
(``-s -P``: no user site, no unsafe path), with ``PYTHONHASHSEED=0``. With ``coverage`` in
the config the child measures line coverage (coverage.py, started before the workspace is
importable) and relays coverage.py's JSON report.
"""

import contextlib
import json
import os
import selectors
import sys
import time

CONFIG = json.loads(sys.argv[1])
#: Where the re-executed runner finds the sandbox's PYTHONPATH (never read at start-up).
PATH_VAR = "DARKFACTORY_RUNNER_PYTHONPATH"


def fixed_hash_seed():
    """Re-execute once with ``PYTHONHASHSEED=0`` (module doc); returns only if already fixed."""
    if not sys.flags.hash_randomization:
        return
    with open("/proc/self/cmdline", "rb") as f:
        argv = [a.decode() for a in f.read().split(b"\0")[:-1]]
    code = argv[argv.index("-c") + 1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONHASHSEED"] = "0"
    if "PYTHONPATH" in os.environ:
        env[PATH_VAR] = os.environ["PYTHONPATH"]
    os.execve(sys.executable, [sys.executable, "-s", "-P", "-c", code, sys.argv[1]], env)


MAX_OUTPUT = 64 * 1024
MAX_MESSAGE = 4000
MAX_MESSAGES = 400 * 1024


def child(report_fd, output_fd):
    os.dup2(output_fd, 1)
    os.dup2(output_fd, 2)
    os.close(output_fd)
    sys.stdout = os.fdopen(1, "w", buffering=1, closefd=False)
    sys.stderr = os.fdopen(2, "w", buffering=1, closefd=False)
    import importlib.metadata
    import pkgutil

    import _pytest
    import pytest

    # Every part of pytest is loaded before the workspace is on the path: none can be shadowed.
    for mod in pkgutil.walk_packages(_pytest.__path__, "_pytest."):
        with contextlib.suppress(Exception):  # an optional part without its dependency
            __import__(mod.name)
    plugins = []
    for ep in importlib.metadata.entry_points(group="pytest11"):
        try:
            __import__(ep.module)
            plugins += ["-p", ep.module]
        except Exception as exc:  # an installed plugin that cannot load: say so, run without
            print(f"darkfactory: pytest plugin {ep.module} not loaded: {exc!r}", file=sys.stderr)
    cov = _coverage(CONFIG.get("coverage"))  # imported before the workspace, like pytest
    os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"  # none found from workspace paths
    sys.dont_write_bytecode = True  # -I ignores PYTHONDONTWRITEBYTECODE: no .pyc in the workspace
    path = os.environ.pop(PATH_VAR, os.environ.get("PYTHONPATH", ""))
    if path:
        os.environ["PYTHONPATH"] = path  # for the processes the tests start
    sys.path[:0] = [p for p in path.split(os.pathsep) if p]
    out = os.fdopen(report_fd, "w", buffering=1)

    class Relay:
        def pytest_collectreport(self, report):
            if report.failed:
                send({"collect_error": report.nodeid, "message": report.longreprtext})

        def pytest_collection_finish(self, session):
            send({"collected": len(session.items)})

        def pytest_runtest_logreport(self, report):
            send(
                {
                    "nodeid": report.nodeid,
                    "when": report.when,
                    "outcome": report.outcome,
                    "xfail": hasattr(report, "wasxfail"),
                    "duration": report.duration,
                    "message": report.longreprtext if report.failed else _skip_reason(report),
                }
            )

    def send(record):
        out.write(json.dumps(record) + "\n")

    if cov is not None:
        cov.start()
    code = pytest.main([*plugins, *CONFIG["args"]], plugins=[Relay()])
    if cov is not None:
        cov.stop()
        send({"coverage": _coverage_report(cov)})
    out.flush()
    sys.stdout.flush()
    os._exit(int(code))


def _coverage(options):
    if not options:
        return None
    import coverage

    return coverage.Coverage(
        data_file=None,
        config_file=False,
        source=options.get("source") or None,
        source_pkgs=options.get("source_pkgs") or None,
        omit=options.get("omit") or None,
    )


def _coverage_report(cov):
    """coverage.py's JSON report (per file: statements, missing), or why there is none."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        target = os.path.join(tmp, "coverage.json")
        try:
            with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
                cov.json_report(outfile=target)
        except Exception as exc:  # coverage.py's NoDataError: nothing of the source ran
            return {"error": f"{type(exc).__name__}: {exc}"}
        with open(target, encoding="utf-8") as f:
            doc = json.load(f)
    files = {
        name: {
            "statements": data["summary"]["num_statements"],
            "covered": data["summary"]["covered_lines"],
            "missing": data["missing_lines"][:2000],
        }
        for name, data in doc.get("files", {}).items()
    }
    return {"files": files, "totals": doc.get("totals", {})}


def _skip_reason(report):
    if report.skipped and isinstance(report.longrepr, tuple) and len(report.longrepr) == 3:
        return str(report.longrepr[2]).removeprefix("Skipped: ")
    return ""


def _non_dumpable():
    """PR_SET_DUMPABLE 0: a process of the same user may not open our /proc fds."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(4, 0, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE, 0) failed")


def parent():
    _non_dumpable()
    report_r, report_w = os.pipe()
    output_r, output_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(report_r)
        os.close(output_r)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        try:
            child(report_w, output_w)
        except BaseException:  # the runner itself broke: say how, on the output pipe
            import traceback

            traceback.print_exc()
            sys.stderr.flush()
        finally:
            os._exit(70)
    os.close(report_w)
    os.close(output_w)
    records, output, lines = [], bytearray(), bytearray()
    budget = MAX_MESSAGES
    sel = selectors.DefaultSelector()
    sel.register(report_r, selectors.EVENT_READ)
    sel.register(output_r, selectors.EVENT_READ)
    status = None
    drain_until = None
    while sel.get_map():
        if status is None:
            done, st = os.waitpid(pid, os.WNOHANG)
            if done:
                status, drain_until = st, time.monotonic() + 1.0
        if drain_until is not None and time.monotonic() > drain_until:
            break  # a process the tests started still holds a pipe: stop reading
        for key, _ in sel.select(0.2):
            data = os.read(key.fd, 65536)
            if not data:
                sel.unregister(key.fd)
                continue
            if key.fd == output_r:
                output += data
                del output[:-MAX_OUTPUT]
                continue
            lines += data
            *complete, rest = lines.split(b"\n")
            lines = bytearray(rest)
            for line in complete:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                message = str(record.get("message", ""))
                if len(message) > MAX_MESSAGE:
                    message = (
                        message[: MAX_MESSAGE // 3] + "\n[...]\n" + message[-MAX_MESSAGE // 2 :]
                    )
                budget -= len(message)
                record["message"] = message if budget > 0 else message[:200]
                records.append(record)
    if status is None:
        _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    code = code if code >= 0 else 128 - code
    result = {
        "darkfactory_test_runner": 1,
        "exit": code,
        "records": records,
        "output": output.decode("utf-8", "replace"),
    }
    os.write(1, (json.dumps(result) + "\n").encode())
    # As pytest ended, never 0 for a failure: the sandbox reads a limit's kill (an OOM kill
    # counts only for a command that failed) from how the command ended.
    os._exit(code)


fixed_hash_seed()
parent()
