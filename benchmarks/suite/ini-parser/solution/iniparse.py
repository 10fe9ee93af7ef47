"""INI text to nested dictionaries: ``{section: {key: value}}``."""

from __future__ import annotations

import re

COMMENT = (";", "#")
SEPARATOR = re.compile(r"[=:]")


class ParseError(ValueError):
    """The text is not valid INI; ``line`` is the 1-based line number."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(f"line {line}: {reason}")
        self.line = line


def parse(text: str) -> dict[str, dict[str, str]]:
    """The sections of ``text``, each a dict of lower-case keys to values."""
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith(COMMENT):
            continue
        if line.startswith("["):
            if not line.endswith("]"):
                raise ParseError(number, f"a section header must end with ']': {line!r}")
            name = line[1:-1].strip()
            if not name:
                raise ParseError(number, "the section name is empty")
            current = sections.setdefault(name, {})
            continue
        match = SEPARATOR.search(line)
        if match is None:
            raise ParseError(number, f"not a section, a key or a comment: {line!r}")
        key = line[: match.start()].strip().lower()
        if not key:
            raise ParseError(number, "the key is empty")
        if current is None:
            raise ParseError(number, f"key {key!r} comes before any section")
        current[key] = line[match.end() :].strip()
    return sections
