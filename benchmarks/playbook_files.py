"""What both playbook generators share: their command line, and writing or checking the files."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from darkfactory.bench.run import PLAYBOOK_FILE


def main(
    argv: list[str] | None,
    *,
    description: str,
    suite: Path,
    dirs: Callable[[Path], list[Path]],
    render: Callable[[Path], str],
    script: str,
) -> int:
    """Write (or with ``--check`` only compare) ``playbook.yaml`` of every directory."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--check", action="store_true", help="only check that the playbooks are current")
    p.add_argument("--suite", type=Path, default=suite, help="the suite directory")
    p.add_argument("names", nargs="*", help="entries to write (default: every entry)")
    args = p.parse_args(argv)
    stale = []
    for entry in dirs(args.suite):
        if args.names and entry.name not in args.names:
            continue
        text = render(entry)
        target = entry / PLAYBOOK_FILE
        current = target.read_text(encoding="utf-8") if target.is_file() else None
        if current == text:
            continue
        if args.check:
            stale.append(entry.name)
        else:
            target.write_text(text, encoding="utf-8")
            print(f"wrote {target.relative_to(args.suite)}")
    if stale:
        print(f"stale playbooks (run {script}): {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0
