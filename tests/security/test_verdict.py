"""A verdict the code under test cannot forge: every known trick against the test runner.

The code under test is a stub whose only acceptance test fails. Each attack adds what a
hostile agent could write (to the workspace or the writable dependency directory) to make
that test look passed; on bwrap and docker the verdict must stay "not passed".

Known limit (docs/threat-model.md): code imported by a test runs inside pytest's process
and could patch pytest itself; what is proven here is that no file on the path, plugin,
config, exit trick or write to the report channel does it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from dockerd import docker_engine  # noqa: F401  (a fixture)
from runhelp import NEEDS_BWRAP

from darkfactory.sandbox import ACCEPTANCE_TARGET, open_sandbox
from darkfactory.sandbox.base import Limits, Mount, Sandbox, SandboxSpec
from darkfactory.sandbox.testrun import TestRun, expected_tests, run_pytest
from darkfactory.workspace import hostio

ACCEPTANCE = "from app import double\n\n\ndef test_double():\n    assert double(2) == 4\n"
STUB = "def double(x):\n    return 0\n"
#: What a forged report would say: the runner's document with the test passed.
FAKE = json.dumps(
    {
        "darkfactory_test_runner": 1,
        "exit": 0,
        "records": [{"nodeid": "test_spec.py::test_double", "when": "call", "outcome": "passed"}],
        "output": "",
    }
)
FAKE_JUNIT = (
    '<testsuites><testsuite><testcase classname="test_spec" name="test_double" '
    'file="test_spec.py"/></testsuite></testsuites>'
)
#: Prints the forged document everywhere it might be read, then ends "successfully".
FORGE = f"""
import os, sys
FAKE = {FAKE!r}
for arg in sys.argv:
    if arg.startswith("--junitxml="):
        open(arg.split("=", 1)[1], "w").write({FAKE_JUNIT!r})
for fd in range(1, 64):
    try:
        os.write(fd, (FAKE + "\\n").encode())
    except OSError:
        pass
for pid in ("self", str(os.getppid())):
    for fd in (1, 2):
        try:
            with open(f"/proc/{{pid}}/fd/{{fd}}", "w") as f:
                f.write(FAKE + "\\n")
        except OSError:
            pass
"""
FORCE_PASS_PLUGIN = """
import pytest

@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    report.outcome = "passed"
    report.longrepr = None
"""

ATTACKS: dict[str, dict[str, str]] = {
    # A module named like the runner, first on the old path.
    "workspace_pytest_module": {"pytest.py": FORGE + "sys.exit(0)\n"},
    "workspace_pytest_package": {"_pytest/__init__.py": FORGE + "os._exit(0)\n"},
    "sitecustomize": {"sitecustomize.py": FORGE + "os._exit(0)\n", "usercustomize.py": FORGE},
    "deps_pth_and_modules": {
        "/deps/evil.pth": "import os; os.system('echo forged')\n",
        "/deps/pytest.py": FORGE + "os._exit(0)\n",
        "/deps/pluggy.py": FORGE + "os._exit(0)\n",
    },
    "atexit_rewrites_the_report": {
        "app.py": STUB
        + "import atexit, os\n"
        + f"def forge():\n    os.write(1, ({FAKE!r} + '\\n').encode())\n"
        + "    for d in ('/results', '/tmp', '.'):\n"
        + "        try:\n"
        + f"            open(d + '/acceptance-0.xml', 'w').write({FAKE_JUNIT!r})\n"
        + "        except OSError:\n            pass\n"
        + "atexit.register(forge)\n"
    },
    "writes_to_every_fd_at_import": {"app.py": STUB + FORGE},
    "exits_zero_at_import": {"app.py": STUB + "import os\nos._exit(0)\n"},
    "kills_its_parent": {"app.py": STUB + "import os, signal\nos.kill(os.getppid(), 9)\n"},
    "workspace_conftest_forces_pass": {
        "conftest.py": FORCE_PASS_PLUGIN
        + "def pytest_collection_modifyitems(config, items):\n    items.clear()\n"
    },
    "workspace_ini_loads_a_plugin": {
        "pytest.ini": "[pytest]\naddopts = -p evilplugin\n",
        "pyproject.toml": '[tool.pytest.ini_options]\naddopts = "-p evilplugin"\n',
        "evilplugin.py": FORCE_PASS_PLUGIN,
    },
    "entry_point_plugin_in_deps": {
        "/deps/evil-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: evil\nVersion: 1.0\n",
        "/deps/evil-1.0.dist-info/entry_points.txt": "[pytest11]\nevil = evilplugin\n",
        "/deps/evilplugin.py": FORCE_PASS_PLUGIN,
    },
}


class Target:
    def __init__(self, root: Path, backend: str) -> None:
        self.ws, self.acc, self.deps = (root / d for d in ("ws", "acc", "deps"))
        for d in (self.ws, self.acc, self.deps):
            d.mkdir(parents=True)
        (self.acc / "test_spec.py").write_text(ACCEPTANCE)
        (self.ws / "app.py").write_text(STUB)
        self.sb: Sandbox = open_sandbox(
            backend,
            SandboxSpec(
                workspace=self.ws,
                mounts=[Mount(self.acc, ACCEPTANCE_TARGET), Mount(self.deps, "/deps", False)],
                limits=Limits(timeout_s=60, memory_mb=512),
                pythonpath=["/deps"],
                hand_over=True,
            ),
        )

    def plant(self, files: dict[str, str]) -> None:
        for name, text in files.items():
            path = self.deps / name.removeprefix("/deps/") if name.startswith("/deps/") else None
            path = path or self.ws / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            path.chmod(0o755 if path.is_dir() else 0o644)
            path.parent.chmod(0o777)  # docker's unprivileged user may write there too

    def verdict(self) -> TestRun:
        mounted = self.sb.path_of(ACCEPTANCE_TARGET)
        run = run_pytest(self.sb, [mounted], timeout=60, rootdir=mounted)
        sources, _ = hostio.files(self.acc, ".", suffix=".py")
        return run.expecting(expected_tests(sources))


@pytest.fixture
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[str], Target]]:
    made: list[Target] = []

    def make(backend: str) -> Target:
        if backend == "docker":
            request.getfixturevalue("docker_engine")
        t = Target(tmp_path / backend, backend)
        made.append(t)
        return t

    yield make
    for t in made:
        t.sb.close()


@NEEDS_BWRAP
@pytest.mark.parametrize("backend", ["bwrap", "docker"])
def test_an_honest_failure_is_reported_as_failed(
    target: Callable[[str], Target], backend: str
) -> None:
    run = target(backend).verdict()
    assert [(o.nodeid, o.outcome) for o in run.outcomes] == [
        ("test_spec.py::test_double", "failed")
    ]
    assert "assert 0 == 4" in run.outcomes[0].message and not run.ok


@NEEDS_BWRAP
@pytest.mark.parametrize("backend", ["bwrap", "docker"])
@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_a_forged_verdict_never_passes(
    target: Callable[[str], Target], backend: str, attack: str
) -> None:
    t = target(backend)
    t.plant(ATTACKS[attack])
    run = t.verdict()
    assert not run.ok, (attack, run.outcomes, run.exec)
    assert not any(o.outcome == "passed" for o in run.outcomes), run.outcomes
    # Either the honest failure, or no result for the test at all: never a pass.
    assert run.failed == 1 or run.unreported or run.collection_error or run.killed, run


@NEEDS_BWRAP
def test_a_passing_implementation_still_passes_next_to_the_bait(
    target: Callable[[str], Target],
) -> None:
    """Isolation must not break honest projects: a workspace module and deps are importable."""
    t = target("bwrap")
    t.plant({"app.py": "from helper import two\n\ndef double(x):\n    return two() * x\n"})
    t.plant({"/deps/helper.py": "def two():\n    return 2\n"})
    run = t.verdict()
    assert run.ok and run.passed == 1, run


def test_expected_tests_are_read_from_the_files_without_importing_them() -> None:
    source = b"""
import pytest
raise SystemExit("never imported")

def test_a(): pass
async def test_b(): pass
@pytest.fixture
def test_data(): return 1
@pytest.mark.parametrize("n", [1, 2])
def test_p(n): pass
def helper(): pass

class TestGroup:
    def test_c(self): pass
    def helper(self): pass

class TestWithInit:
    def __init__(self): pass
    def test_never_collected(self): pass

class Cases(unittest.TestCase):
    def test_d(self): pass
"""
    ids = expected_tests({"sub/test_x.py": source, "helpers.py": b"def test_no(): pass\n"})
    assert ids == {
        "sub/test_x.py::test_a",
        "sub/test_x.py::test_b",
        "sub/test_x.py::test_p",
        "sub/test_x.py::TestGroup::test_c",
        "sub/test_x.py::Cases::test_d",
    }
    assert expected_tests({"test_bad.py": b"def test_(:\n"}) == set()
