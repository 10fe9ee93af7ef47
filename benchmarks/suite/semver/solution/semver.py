"""Semantic Versioning 2.0.0 versions: parse, compare, bump."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, replace
from typing import Any

CORE = re.compile(
    r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-([0-9A-Za-z.-]*))?(?:\+([0-9A-Za-z.-]*))?"
)
IDENTIFIER = re.compile(r"[0-9A-Za-z-]+")
PARTS = ("major", "minor", "patch")


def _identifiers(text: str, what: str, *, numeric_zeros: bool) -> tuple[str, ...]:
    items = tuple(text.split("."))
    for item in items:
        if not IDENTIFIER.fullmatch(item):
            raise ValueError(f"bad {what} identifier {item!r}")
        if numeric_zeros and item.isdigit() and len(item) > 1 and item.startswith("0"):
            raise ValueError(f"numeric {what} identifier {item!r} has a leading zero")
    return items


@functools.total_ordering
@dataclass(frozen=True, eq=False)
class Version:
    """A semantic version; comparisons follow the specification's precedence rules."""

    major: int
    minor: int
    patch: int
    prerelease: tuple[str, ...] = ()
    build: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> Version:
        """The ``Version`` that ``text`` spells; ``ValueError`` if it is not one."""
        match = CORE.fullmatch(text)
        if match is None:
            raise ValueError(f"not a semantic version: {text!r}")
        major, minor, patch, pre, build = match.groups()
        return cls(
            int(major),
            int(minor),
            int(patch),
            _identifiers(pre, "pre-release", numeric_zeros=True) if pre is not None else (),
            _identifiers(build, "build", numeric_zeros=False) if build is not None else (),
        )

    def __str__(self) -> str:
        text = f"{self.major}.{self.minor}.{self.patch}"
        if self.prerelease:
            text += "-" + ".".join(self.prerelease)
        if self.build:
            text += "+" + ".".join(self.build)
        return text

    def _key(self) -> tuple[Any, ...]:
        pre = tuple((0, int(i), "") if i.isdigit() else (1, 0, i) for i in self.prerelease)
        return (self.major, self.minor, self.patch, 0 if self.prerelease else 1, pre)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key() == other._key()

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key() < other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def bump(self, part: str) -> Version:
        """The next ``major``, ``minor`` or ``patch`` version (lower numbers reset to zero)."""
        if part not in PARTS:
            raise ValueError(f"part must be one of {', '.join(PARTS)}, not {part!r}")
        numbers = [self.major, self.minor, self.patch]
        at = PARTS.index(part)
        numbers = [*numbers[:at], numbers[at] + 1, *[0] * (2 - at)]
        return replace(
            self, major=numbers[0], minor=numbers[1], patch=numbers[2], prerelease=(), build=()
        )
