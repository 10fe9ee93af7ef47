"""The code tools on a generated 50,000-line Python repository: median time per call.

    python benchmarks/repo_tools.py [--lines 50000] [--runs 7] [--keep DIR]

Generates a deterministic repository (packages of modules with classes, methods and
functions that import each other, tests, a 5,000-line module, a README, a .git and a
.venv that the tools must skip), then times each tool's ``_run`` in this process and
prints a Markdown table of medians: wall time, and CPU time (this process and the
search's matching process), which a loaded machine does not inflate. The target for each
call is under 1 s.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(HERE))

from darkfactory.tools import repo_map  # noqa: E402
from darkfactory.tools.edit_file import EditFileTool  # noqa: E402
from darkfactory.tools.read_file import ReadFileTool  # noqa: E402
from darkfactory.tools.repo_map import RepoMapTool  # noqa: E402
from darkfactory.tools.search_code import SearchCodeTool  # noqa: E402
from darkfactory.workspace.context import RunContext  # noqa: E402

WORDS = ("order", "invoice", "customer", "account", "ledger", "report", "parser", "token")


def _module(
    rng: random.Random, pkg: str, mod: str, others: list[tuple[str, str, str]]
) -> tuple[str, str]:
    """One module of about 230 lines that uses a few other modules' names, and the name of
    its first class."""
    lines = [f'"""{pkg}.{mod}: generated for the repo tools benchmark."""', ""]
    lines.append("from __future__ import annotations")
    lines.append("")
    used = rng.sample(others, min(3, len(others)))
    for other_pkg, other_mod, other_cls in used:
        lines.append(f"from app.{other_pkg}.{other_mod} import {other_cls}, {other_mod}_helper")
    lines.append("")
    first = ""
    for c in range(3):
        noun = rng.choice(WORDS)
        cls = f"{noun.title()}{mod.title()}{c}"
        first = first or cls
        lines += ["", "", f"class {cls}:", f'    """A {noun} of {mod}."""', ""]
        lines += [
            "    def __init__(self, name: str, size: int = 0) -> None:",
            "        self.name = name",
            "        self.size = size",
        ]
        for m in range(5):
            verb = rng.choice(("load", "save", "check", "merge", "split", "render"))
            lines += [
                "",
                f"    def {verb}_{noun}_{m}(self, value: int, *, strict: bool = False) -> int:",
                f'        """{verb.title()} the {noun}."""',
                "        total = self.size",
                "        for i in range(value):",
                "            if strict and i % 7 == 0:",
                "                total -= i",
                "            else:",
                "                total += i * 2",
                "        return total",
            ]
    for f in range(6):
        lines += [
            "",
            "",
            f"def {mod}_func_{f}(items: list[str], limit: int = 10) -> dict[str, int]:",
            f'    """Count the first {{limit}} items ({f})."""',
            "    counts: dict[str, int] = {}",
            "    for item in items[:limit]:",
            "        counts[item] = counts.get(item, 0) + 1",
            "    return counts",
        ]
    lines += ["", "", f"def {mod}_helper(x: int) -> int:", "    return x + 1"]
    lines += ["", "", "def build() -> list[object]:"]
    lines += [f"    return [{c}('x'), {m}_helper(1)]" for _, m, c in used[:1]] or ["    return []"]
    return "\n".join(lines) + "\n", first


def generate(root: Path, total_lines: int = 50_000, seed: int = 7) -> int:
    """Write the repository under ``root``; the number of Python lines written."""
    rng = random.Random(seed)
    written = 0
    big = [f"def big_function_{i}(x: int) -> int:\n    return x * {i}\n\n" for i in range(1666)]
    # One line on which a backtracking pattern like (a+)+$ takes exponential time.
    big_text = '"""A long module."""\n\nPADDING = "' + "a" * 40 + '!"\n\n' + "".join(big)
    (root / "app").mkdir(parents=True)
    (root / "app" / "__init__.py").write_text("")
    (root / "app" / "big.py").write_text(big_text)
    written += big_text.count("\n")
    modules: list[tuple[str, str, str]] = []
    p = 0
    while written < total_lines:
        pkg = f"pkg{p:02d}"
        (root / "app" / pkg).mkdir()
        (root / "app" / pkg / "__init__.py").write_text("")
        for m in range(12):
            mod = f"mod{p:02d}_{m:02d}"
            text, cls = _module(rng, pkg, mod, modules)
            (root / "app" / pkg / f"{mod}.py").write_text(text)
            modules.append((pkg, mod, cls))
            written += text.count("\n")
            if m % 4 == 0:
                test = (
                    f"from app.{pkg}.{mod} import {mod}_func_0\n\n\n"
                    f"def test_{mod}() -> None:\n"
                    f"    assert {mod}_func_0(['a', 'a']) == {{'a': 2}}\n"
                )
                (root / "tests").mkdir(exist_ok=True)
                (root / "tests" / f"test_{mod}.py").write_text(test)
                written += test.count("\n")
            if written >= total_lines:
                break
        p += 1
    (root / "README.md").write_text("# Generated\n\nA repository for the benchmark.\n")
    (root / ".git" / "objects").mkdir(parents=True)
    (root / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    site = root / ".venv" / "lib" / "python3.11" / "site-packages" / "dep"
    site.mkdir(parents=True)
    for i in range(200):
        (site / f"m{i}.py").write_text("def helper():\n    return 1\n" * 50)
    return written


def _cpu_s() -> float:
    """CPU seconds of this process and its finished children (search_code's matcher)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def medians(
    fn: Callable[[], object], runs: int, before: Callable[[], None] | None = None
) -> tuple[float, float]:
    """Median wall and CPU seconds of ``fn()`` over ``runs`` calls."""
    wall, cpu = [], []
    for _ in range(runs):
        if before is not None:
            before()
        start, start_cpu = time.perf_counter(), _cpu_s()
        fn()
        wall.append(time.perf_counter() - start)
        cpu.append(_cpu_s() - start_cpu)
    return statistics.median(wall), statistics.median(cpu)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--keep", type=Path, help="generate the repository here and keep it")
    args = parser.parse_args(argv)
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="df-repo-tools-") as tmp:
        root = args.keep or Path(tmp) / "repo"
        lines = generate(root, args.lines)
        files = sum(1 for _ in root.rglob("*.py")) - 200  # not the .venv's
        ctx = RunContext(workspace=root)
        rmap, search = RepoMapTool(ctx=ctx), SearchCodeTool(ctx=ctx)
        read, edit = ReadFileTool(ctx=ctx), EditFileTool(ctx=ctx)
        flip = iter(range(10**6))

        def edit_big() -> None:
            n = next(flip)
            old, new = ("x * 1200\n", "x * 1200  # edited\n")[:: 1 if n % 2 == 0 else -1]
            out = edit._run(path="app/big.py", old_text=old, new_text=new)
            assert out.startswith("Edited"), out

        cases: list[tuple[str, Callable[[], object], Callable[[], None] | None]] = [
            ("repo_map, cold (every file parsed)", rmap._run, repo_map._cache.clear),
            ("repo_map, warm (parse cache)", rmap._run, None),
            ("repo_map, max_chars=20000, warm", lambda: rmap._run(max_chars=20_000), None),
            ("search_code 'def load_\\w+_3'", lambda: search._run(pattern=r"def load_\w+_3"), None),
            (
                "search_code, ignore_case, glob 'test_*.py', context=2",
                lambda: search._run(
                    pattern="ASSERT", ignore_case=True, glob="test_*.py", context=2
                ),
                None,
            ),
            ("search_code, no match", lambda: search._run(pattern="no_such_name_anywhere"), None),
            (
                "read_file app/big.py lines 2500-2600",
                lambda: read._run(path="app/big.py", start_line=2500, end_line=2600),
                None,
            ),
            ("read_file app/big.py, no range (head)", lambda: read._run(path="app/big.py"), None),
            ("edit_file app/big.py, one unique match", edit_big, None),
        ]
        rows = []
        for label, fn, before in cases:
            fn()  # warm-up (imports); the cold case clears its cache before each run
            rows.append((label, *medians(fn, args.runs, before)))
        start = time.perf_counter()
        bad = search._run(pattern=r"(a+)+$")
        catastrophic = time.perf_counter() - start
    print(
        f"Repository: {lines} lines of Python in {files} files (plus a README, .git and a "
        f".venv of 200 modules that the tools skip); median of {args.runs} runs, in this "
        f"process; load average at the start: {load:.1f}, {os.cpu_count()} CPUs.\n"
    )
    print("| call | wall, median | CPU, median |")
    print("|---|---:|---:|")
    for label, wall, cpu in rows:
        print(f"| {label} | {wall * 1000:.0f} ms | {cpu * 1000:.0f} ms |")
    print(f"| search_code '(a+)+$' (catastrophic), stopped after | {catastrophic:.2f} s | |")
    print(f"\n'(a+)+$' answered: {bad.splitlines()[0][:200]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
