"""A key-value store in a JSON file: ``python -m kvstore [--db FILE] COMMAND ...``."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path


class StoreError(Exception):
    """The db file cannot be used as a store."""


def load(path: Path) -> dict[str, str]:
    """The store in ``path``; a missing file is an empty store."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise StoreError(f"cannot read {path}: {exc.strerror}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise StoreError(f"{path} is not JSON: {exc.msg} (line {exc.lineno})") from None
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise StoreError(f"{path} is not a JSON object of strings")
    return data


def save(path: Path, data: dict[str, str]) -> None:
    """Write the store atomically (a temporary file renamed over ``path``)."""
    directory = path.resolve().parent
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh, ensure_ascii=False, indent=2, sort_keys=True)
    os.replace(tmp, path)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kvstore", description="A key-value store in a JSON file."
    )
    parser.add_argument("--db", type=Path, default=Path("kv.json"), help="the store's file")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("set", help="store VALUE under KEY")
    p.add_argument("key")
    p.add_argument("value")
    sub.add_parser("get", help="print the value of KEY").add_argument("key")
    sub.add_parser("delete", help="remove KEY").add_argument("key")
    sub.add_parser("list", help="print KEY=VALUE lines").add_argument("--prefix", default="")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; 0 on success, 1 for a missing key, 2 for a broken store."""
    args = build_parser().parse_args(argv)
    try:
        data = load(args.db)
    except StoreError as exc:
        print(f"kvstore: {exc}", file=sys.stderr)
        return 2
    if args.command == "set":
        data[args.key] = args.value
        save(args.db, data)
    elif args.command == "list":
        for key in sorted(k for k in data if k.startswith(args.prefix)):
            print(f"{key}={data[key]}")
    elif args.key not in data:
        print(f"kvstore: no key {args.key}", file=sys.stderr)
        return 1
    elif args.command == "get":
        print(data[args.key])
    else:
        del data[args.key]
        save(args.db, data)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
