"""Start-up of this tree against a baseline tree: `darkfactory --help`, and a run's first LLM call.

    python benchmarks/startup.py --baseline /path/to/other/checkout [--samples 7]

Both trees run with this interpreter (the same installed dependencies), their own package
first on ``PYTHONPATH``, samples interleaved so machine load hits both alike. Figures:

* ``--help``: wall time of ``python -m darkfactory --help`` (a process);
* first LLM call: from starting ``darkfactory run`` (the example spec, the scripted model,
  bwrap, ``--max-llm-calls 1``) to the ``llm_call`` event in its trace.

Prints a Markdown table of medians and the ratio this tree / baseline.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent


def env_for(tree: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(tree)
    env.update(
        CREWAI_DISABLE_TELEMETRY="true",
        OTEL_SDK_DISABLED="true",
        CREWAI_DISABLE_VERSION_CHECK="true",
    )
    return env


def help_s(tree: Path) -> float:
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "darkfactory", "--help"],
        env=env_for(tree),
        cwd=tree,
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - start


def first_llm_s(tree: Path) -> float:
    with tempfile.TemporaryDirectory(prefix="df-startup-") as tmp:
        started = time.time()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "darkfactory",
                "run",
                str(tree / "examples" / "specs" / "wordcount.yaml"),
                "--model",
                f"scripted:{tree / 'examples' / 'playbooks' / 'wordcount.yaml'}",
                "--sandbox",
                "bwrap",
                "--max-llm-calls",
                "1",
                "--quiet",
                "--out",
                tmp,
            ],
            env=env_for(tree),
            cwd=tree,
            capture_output=True,
            check=False,
        )
        traces = list(Path(tmp).glob("*/trace.jsonl"))
        for line in traces[0].read_text().splitlines() if traces else []:
            record = json.loads(line)
            if record["kind"] == "llm_call":
                return datetime.fromisoformat(record["ts"]).timestamp() - started
    raise RuntimeError(f"no llm_call in the trace of a run of {tree}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--baseline", type=Path, required=True, help="another checkout to compare")
    p.add_argument("--samples", type=int, default=7, help="samples per figure (median)")
    args = p.parse_args()
    trees = {"this tree": HERE, "baseline": args.baseline.resolve()}
    figures: dict[str, dict[str, list[float]]] = {name: {"help": [], "llm": []} for name in trees}
    for _ in range(args.samples):
        for name, tree in trees.items():
            figures[name]["help"].append(help_s(tree))
            figures[name]["llm"].append(first_llm_s(tree))
    load = Path("/proc/loadavg").read_text().split()[:3]
    print(f"{args.samples} samples each, interleaved; load average {' '.join(load)}\n")
    print("| figure | this tree | baseline | ratio |")
    print("|---|---|---|---|")
    for key, label in (("help", "`darkfactory --help`"), ("llm", "run start to first LLM call")):
        mine = statistics.median(figures["this tree"][key])
        base = statistics.median(figures["baseline"][key])
        print(f"| {label} | {mine * 1000:.0f} ms | {base * 1000:.0f} ms | {mine / base:.2f}x |")


if __name__ == "__main__":
    main()
