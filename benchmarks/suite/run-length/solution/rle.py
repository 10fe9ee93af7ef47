"""Run-length encoding of text: ``aaabcc`` <-> ``3a1b2c``. ``python -m rle encode|decode``."""

from __future__ import annotations

import argparse
import itertools
import re
import sys

RUN = re.compile(r"(\d+)(\D)", re.DOTALL)


def encode(text: str) -> str:
    """Each run of one character as its count followed by the character."""
    for i, char in enumerate(text):
        if char.isdecimal():
            raise ValueError(f"cannot encode the digit {char!r} at position {i}")
    return "".join(f"{len(list(run))}{char}" for char, run in itertools.groupby(text))


def decode(data: str) -> str:
    """The text ``encode`` made ``data`` from."""
    parts = []
    at = 0
    while at < len(data):
        match = RUN.match(data, at)
        if match is None:
            raise ValueError(f"malformed data at position {at}: expected a count, then a character")
        count = int(match.group(1))
        if count == 0:
            raise ValueError(f"a count of zero at position {at}")
        parts.append(match.group(2) * count)
        at = match.end()
    return "".join(parts)


def main(argv: list[str] | None = None) -> int:
    """``encode`` or ``decode`` standard input to standard output; 1 on malformed input."""
    parser = argparse.ArgumentParser(prog="rle", description=__doc__)
    parser.add_argument("action", choices=["encode", "decode"])
    args = parser.parse_args(argv)
    text = sys.stdin.read()
    try:
        result = encode(text) if args.action == "encode" else decode(text)
    except ValueError as exc:
        print(f"rle: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
