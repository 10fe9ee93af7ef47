"""toolz imports without its deprecated ``toolz.compatibility`` shim.

Each check runs in a fresh interpreter: the test session has imported toolz already, and
a module warns only when it is first imported.
"""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = "toolz, toolz.curried, toolz.sandbox, tlz"


def python(*args):
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def test_toolz_imports_with_deprecation_warnings_as_errors():
    run = python("-W", "error::DeprecationWarning", "-c", f"import {PACKAGES}")
    assert run.returncode == 0, run.stderr


def test_importing_toolz_does_not_import_the_compatibility_module():
    run = python(
        "-c",
        f"import sys, {PACKAGES}; print(sorted(m for m in sys.modules if m.endswith('compatibility')))",
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"


def test_toolz_works_with_deprecation_warnings_as_errors():
    code = (
        "import warnings\n"
        "warnings.simplefilter('error', DeprecationWarning)\n"
        "import toolz\n"
        "from toolz.curried import map, filter, reduce\n"
        "assert list(toolz.map(abs, [-1, 2])) == [1, 2]\n"
        "assert list(toolz.filter(None, [0, 1])) == [1]\n"
        "assert toolz.merge_with(sum, {1: 1}, {1: 2}) == {1: 3}\n"
        "assert list(toolz.interleave([[1, 2], [3]])) == [1, 3, 2]\n"
        "assert toolz.reduce(lambda a, b: a + b, [1, 2, 3]) == 6\n"
    )
    run = python("-c", code)
    assert run.returncode == 0, run.stderr
