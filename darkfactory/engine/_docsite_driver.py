"""Runs INSIDE the sandbox: builds the docs site, or runs one documentation example.

``darkfactory.engine.docs_check`` sends this file's source as ``python -c SOURCE MODE ...``, with the
workspace as the working directory; darkfactory itself is not importable in the sandbox,
so this module uses the standard library only (and mkdocs, as a subprocess).

``build``
    ``python -m mkdocs build --strict`` into a temporary site directory (never the
    workspace), then prints one JSON object: the config file used (``null``: none), mkdocs'
    exit code, its log, and the HTML pages it wrote. The site is deleted afterwards.
``python FILE LINE`` / ``doctest FILE LINE``
    Reads the example from standard input and runs it in a scratch copy of the workspace
    (so an example that writes files changes neither the deliverable nor a later example),
    the copy importable and the working directory. ``python`` runs it as a script compiled
    with ``FILE`` as its file name and its lines numbered as in ``FILE`` (a traceback
    points into the Markdown file); ``doctest`` checks it with ``doctest`` (``ELLIPSIS``
    on). Exit status 0 when it passed.
"""

from __future__ import annotations

import builtins
import doctest
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import traceback

CONFIG_NAMES = ("mkdocs.yml", "mkdocs.yaml")
#: What the build needs in the sandbox's Python: mkdocs, mkdocs-material, mkdocstrings[python].
TOOLING = ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python")
#: Most characters of mkdocs' log passed back (its end is kept).
MAX_LOG_CHARS = 200_000
#: Workspace entries not copied for an example: VCS data, caches, virtualenvs, a built site.
NOT_COPIED = {
    ".git",
    "__pycache__",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
    ".venv",
    "node_modules",
    "site",
}


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:  # a dotted name whose parent is missing
        return False


def build() -> int:
    missing = [m for m in TOOLING if not _importable(m)]
    if missing:
        print(json.dumps({"missing": missing}))
        return 0
    config = next((name for name in CONFIG_NAMES if os.path.isfile(name)), None)
    if config is None:
        print(json.dumps({"config": None}))
        return 0
    site = tempfile.mkdtemp(prefix="darkfactory-site-")
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", config, "-d", site],
            capture_output=True,
            text=True,
            env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        )
        pages = sorted(
            os.path.relpath(os.path.join(d, f), site).replace(os.sep, "/")
            for d, _, files in os.walk(site)
            for f in files
            if f.endswith(".html")
        )
        pages = [p for p in pages if p != "404.html"]
        print(
            json.dumps(
                {
                    "config": config,
                    "exit_code": proc.returncode,
                    "output": (proc.stderr + proc.stdout)[-MAX_LOG_CHARS:],
                    "pages": pages,
                }
            )
        )
    finally:
        shutil.rmtree(site, ignore_errors=True)
    return 0


def _scratch_copy() -> tuple[str, str]:
    """Copy the workspace (the working directory) to a temporary directory; enter it."""
    original = os.getcwd()
    scratch = tempfile.mkdtemp(prefix="darkfactory-example-")
    work = os.path.join(scratch, "workspace")
    shutil.copytree(
        original,
        work,
        symlinks=True,
        ignore=lambda d, names: [n for n in names if n in NOT_COPIED],
    )
    os.chdir(work)
    sys.path[:] = [work] + [p for p in sys.path if p not in ("", original)]
    os.environ["PYTHONPATH"] = work
    return scratch, work


def run_script(source: str, filename: str, line: int) -> int:
    code = compile("\n" * (line - 1) + source, filename, "exec")
    namespace = {"__name__": "__main__", "__builtins__": builtins}
    sys.argv = [filename]
    try:
        exec(code, namespace)
    except SystemExit:
        raise
    except BaseException as exc:
        tb = exc.__traceback__.tb_next if exc.__traceback__ is not None else None
        traceback.print_exception(type(exc), exc, tb)
        return 1
    return 0


def run_doctest(source: str, filename: str, line: int) -> int:
    parser = doctest.DocTestParser()
    test = parser.get_doctest(source, {"__name__": "__main__"}, filename, filename, line - 1)
    runner = doctest.DocTestRunner(verbose=False, optionflags=doctest.ELLIPSIS)
    result = runner.run(test, out=sys.stdout.write)
    if result.attempted == 0:
        print(f"{filename}:{line}: no '>>>' example in the block")
        return 1
    return 1 if result.failed else 0


def main(argv: list[str]) -> int:
    mode = argv[0] if argv else ""
    if mode == "build":
        return build()
    if mode in ("python", "doctest") and len(argv) == 3:
        filename, line = argv[1], int(argv[2])
        source = sys.stdin.read()
        scratch, _ = _scratch_copy()
        try:
            run = run_script if mode == "python" else run_doctest
            return run(source, filename, line)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.chdir("/")
            shutil.rmtree(scratch, ignore_errors=True)
    print(f"usage: build | python FILE LINE | doctest FILE LINE (got {argv!r})", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
