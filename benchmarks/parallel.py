"""Throughput of ``darkfactory bench`` at one and two jobs, and the start-up cost of a run.

Runs the suite (``benchmarks/suite``, the scripted model, the bwrap sandbox by default) with
``--jobs 1`` and ``--jobs 2``, ``--runs`` times each, alternating, through the real command
(``python -m darkfactory bench ... --json``), and takes the median of each: specs per
minute is the number of entries over the bench's elapsed time. Target: at least 1.7x the
throughput at two jobs on a two-core machine. Every run must deliver every entry and pass
every hidden test, or the numbers do not count (exit 1).

Start-up, median of ``--samples`` fresh processes each: a bare interpreter, ``import
darkfactory``, ``import darkfactory.cli`` (the parser every command builds), ``darkfactory
--help``, and ``import crewai`` (what ``run`` needs, for scale); and, from the bench runs'
traces, the time from starting a ``darkfactory run`` process to its first trace record and
to its first LLM call. It also checks that ``import darkfactory``, the CLI parser and
``darkfactory.bench.run`` import none of the heavy packages (CrewAI, LiteLLM, OpenAI, ...) that
only the commands running a crew need (exit 1 if one does).

Usage::

    .venv/bin/python benchmarks/parallel.py [--runs 3] [--samples 10] [--sandbox bwrap]
        [--entry NAME ...] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SUITE = REPO / "benchmarks" / "suite"
TARGET_RATIO = 1.7
#: Top-level packages no command but the crew-running ones may import.
HEAVY = ("crewai", "litellm", "openai", "chromadb", "lancedb", "docker", "openapi_core", "mkdocs")
STARTUP = {
    "bare interpreter (`python -c pass`)": "pass",
    "`import darkfactory`": "import darkfactory",
    "`import darkfactory.cli` and build the parser": (
        "import darkfactory.cli as c; c.build_parser()"
    ),
    "`import crewai` (needed by `run`, for scale)": "import crewai",
}


def median_s(samples: list[float]) -> float:
    return statistics.median(samples) if samples else float("nan")


def timed_process(argv: list[str], samples: int) -> float:
    """Median wall time of ``argv`` as a fresh process (after one warm-up)."""
    subprocess.run(argv, capture_output=True, check=True, cwd=REPO)
    times = []
    for _ in range(samples):
        start = time.perf_counter()
        subprocess.run(argv, capture_output=True, check=True, cwd=REPO)
        times.append(time.perf_counter() - start)
    return median_s(times)


def heavy_imports(code: str) -> list[str]:
    """Heavy top-level packages in ``sys.modules`` after running ``code`` in a fresh process."""
    probe = f"{code}\nimport sys\nprint(' '.join(sorted({{m.split('.')[0] for m in sys.modules}})))"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=REPO
    )
    loaded = set(out.stdout.split())
    return [m for m in HEAVY if m in loaded]


def run_bench(jobs: int, out: Path, args: argparse.Namespace) -> dict[str, Any]:
    suite = args.suite.resolve()
    shown = suite.relative_to(REPO) if suite.is_relative_to(REPO) else suite
    argv = [sys.executable, "-m", "darkfactory", "bench", str(shown), "--model", "scripted"]
    argv += ["--jobs", str(jobs), "--sandbox", args.sandbox, "--out", str(out), "--json"]
    for name in args.entry or []:
        argv += ["--entry", name]
    result = subprocess.run(argv, capture_output=True, text=True, cwd=REPO)
    if result.returncode not in (0, 1):
        raise SystemExit(f"bench failed (exit {result.returncode}):\n{result.stderr[-2000:]}")
    summary: dict[str, Any] = json.loads(result.stdout)
    return summary


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text(encoding="utf-8").split()[:3])
    except OSError:
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=3, help="bench runs per job count (median)")
    p.add_argument("--samples", type=int, default=10, help="processes per start-up figure")
    p.add_argument("--sandbox", default="bwrap", choices=["bwrap", "docker", "local"])
    p.add_argument("--suite", type=Path, default=SUITE)
    p.add_argument("--entry", action="append", default=None, help="only this entry (repeatable)")
    p.add_argument("--out", type=Path, default=None, help="where the bench runs go")
    args = p.parse_args(argv)
    out = args.out or REPO / "runs" / f"parallel-{time.strftime('%Y%m%d-%H%M%S')}"
    started, load_before = time.time(), loadavg()

    heavy = {
        "`import darkfactory`": heavy_imports("import darkfactory"),
        "the CLI parser (`darkfactory --help`)": heavy_imports(
            "import darkfactory.cli as c; c.build_parser()"
        ),
        "`import darkfactory.bench.run`": heavy_imports("import darkfactory.bench.run"),
    }
    startup = {
        label: timed_process([sys.executable, "-c", code], args.samples)
        for label, code in STARTUP.items()
    }
    startup["`darkfactory --help` (process)"] = timed_process(
        [sys.executable, "-m", "darkfactory", "--help"], args.samples
    )

    summaries: dict[int, list[dict[str, Any]]] = {1: [], 2: []}
    for i in range(args.runs):
        for jobs in (1, 2):
            summary = run_bench(jobs, out / f"jobs{jobs}-run{i + 1}", args)
            t = summary["totals"]
            print(
                f"jobs {jobs}, run {i + 1}: {t['passed']}/{t['entries']} passed, "
                f"{t['elapsed_s']:.1f} s, {t['specs_per_min']:.2f} specs/min",
                file=sys.stderr,
                flush=True,
            )
            summaries[jobs].append(summary)

    all_passed = all(
        s["totals"]["passed"] == s["totals"]["entries"] for runs in summaries.values() for s in runs
    )
    rows = {}
    for jobs, runs in summaries.items():
        results = [r for s in runs for r in s["results"]]
        rows[jobs] = {
            "elapsed": median_s([s["totals"]["elapsed_s"] for s in runs]),
            "throughput": median_s([s["totals"]["specs_per_min"] for s in runs]),
            "run_wall": median_s([r["wall_s"] for r in results]),
            "to_start": median_s(
                [r["to_run_start_s"] for r in results if r["to_run_start_s"] is not None]
            ),
            "to_llm": median_s(
                [r["to_first_llm_s"] for r in results if r["to_first_llm_s"] is not None]
            ),
            "each": ", ".join(f"{s['totals']['elapsed_s']:.1f}" for s in runs),
            "entries": runs[0]["totals"]["entries"],
            "passed": f"{sum(s['totals']['passed'] for s in runs)}/"
            f"{sum(s['totals']['entries'] for s in runs)}",
        }
    ratio = rows[2]["throughput"] / rows[1]["throughput"]
    elapsed = time.time() - started
    cmd = ".venv/bin/python benchmarks/parallel.py"
    cmd += f" --runs {args.runs} --samples {args.samples} --sandbox {args.sandbox}"
    cmd += "".join(f" --entry {name}" for name in args.entry or [])
    lines = [
        f"Measured on {time.strftime('%Y-%m-%d (%H:%M UTC', time.gmtime(started))}, "
        f"{elapsed / 60:.0f} min), with:",
        "",
        "```sh",
        cmd,
        "```",
        "",
        f"`{SUITE.relative_to(REPO)}`, {rows[1]['entries']} entries, scripted model, "
        f"{args.sandbox} sandbox; median of {args.runs} bench run(s) per row; "
        f"{os.cpu_count()} CPUs; load average {load_before} before, {loadavg()} after.",
        "",
        "| jobs | elapsed | specs/min | elapsed of each bench run | one run's wall time "
        "| passed (all runs) |",
        "|---|---|---|---|---|---|",
    ]
    for jobs, row in rows.items():
        lines.append(
            f"| {jobs} | {row['elapsed']:.1f} s | {row['throughput']:.2f} | {row['each']} s | "
            f"{row['run_wall']:.1f} s | {row['passed']} |"
        )
    verdict = "met" if ratio >= TARGET_RATIO else "NOT met"
    lines += [
        "",
        f"Throughput at 2 jobs: **{ratio:.2f}x** that at 1 job (target {TARGET_RATIO}x: {verdict}).",
        "",
        "Start-up (median of "
        f"{args.samples} fresh processes; of every run of the benches for the last rows):",
        "",
        "| what | time |",
        "|---|---|",
    ]
    lines += [f"| {label} | {seconds * 1000:.0f} ms |" for label, seconds in startup.items()]
    for jobs in (1, 2):
        lines.append(
            f"| `darkfactory run` process start to its first trace record, {jobs} job(s) "
            f"| {rows[jobs]['to_start']:.2f} s |"
        )
        lines.append(
            f"| `darkfactory run` process start to its first LLM call, {jobs} job(s) "
            f"| {rows[jobs]['to_llm']:.2f} s |"
        )
    lines += ["", "Heavy packages (" + ", ".join(HEAVY) + ") imported by:", ""]
    lines += [f"- {what}: {', '.join(mods) or 'none'}" for what, mods in heavy.items()]
    print("\n".join(lines))
    if not all_passed:
        print("\nnot every entry was delivered with its hidden tests passing", file=sys.stderr)
    return 0 if all_passed and not any(heavy.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
