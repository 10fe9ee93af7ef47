"""The limits every spec is checked against before (or while) it is parsed.

A spec is input from a person or another program, so it is bounded like any input: a file
too big, a binary file, nesting too deep or YAML aliases that expand without end is a
``SpecError`` naming the file (and the line where known), never a hang, a ``MemoryError``
or a ``RecursionError``. docs/spec-formats.md lists these limits.

The YAML limits (``MAX_DEPTH``, ``MAX_VALUES``) are ``darkfactory.yamlio``'s, which
checks every YAML file Dark Factory reads (specs, config files, playbooks); the JSON
checks here use the same depth.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from darkfactory.errors import SpecError
from darkfactory.yamlio import MAX_DEPTH as MAX_DEPTH
from darkfactory.yamlio import MAX_VALUES as MAX_VALUES
from darkfactory.yamlio import KeyPath

#: The largest spec file read, in bytes (checked with ``stat`` before the file is read).
#: Also the largest test file a ticket or a test-suite spec names.
MAX_SPEC_BYTES = 2_000_000
#: Leading bytes of common binary formats, to name the kind of file in the error.
BINARY_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"%PDF-", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive (or an Office document)"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"\x7fELF", "an executable (ELF)"),
)
#: How many leading bytes are looked at for a NUL byte (as git and grep do).
BINARY_SNIFF_BYTES = 8192

_TEXT_HINT = "a spec is UTF-8 text: give the spec file itself, not a picture or an archive"


def check_size(path: Path, *, what: str = "the spec file") -> None:
    """Raise a SpecError if the file at ``path`` is bigger than ``MAX_SPEC_BYTES``."""
    try:
        size = path.stat().st_size
    except OSError:
        return  # reading it says what is wrong
    if size > MAX_SPEC_BYTES:
        raise too_big(path, size, what=what)


def too_big(path: Path, size: int | None, *, what: str = "the spec file") -> SpecError:
    """The SpecError for a file over ``MAX_SPEC_BYTES`` (``size`` None: size unknown)."""
    got = f"{size:,} bytes, " if size is not None else ""
    return SpecError(
        f"{what} is too big: {got}more than the limit of {MAX_SPEC_BYTES:,} bytes "
        f"({MAX_SPEC_BYTES // 1_000_000} MB)",
        file=path,
        hint="a spec is written by people: split it, or leave out generated data "
        "(large examples, vendored schemas)",
    )


def check_not_binary(data: bytes, *, file: Path) -> None:
    """Raise a SpecError if ``data`` looks like a binary file rather than text."""
    for signature, kind in BINARY_SIGNATURES:
        if data.startswith(signature):
            raise SpecError(f"a binary file ({kind}), not a text spec", file=file, hint=_TEXT_HINT)
    nul = data.find(b"\x00", 0, BINARY_SNIFF_BYTES)
    if nul >= 0:
        utf16 = data.startswith((b"\xff\xfe", b"\xfe\xff"))
        raise SpecError(
            f"a binary file, not a text spec (a NUL byte at byte {nul})",
            file=file,
            line=data[:nul].count(b"\n") + 1,
            hint="save the spec as UTF-8 text (it looks like UTF-16)" if utf16 else _TEXT_HINT,
        )


def walk(data: Any) -> Iterator[tuple[Any, KeyPath]]:
    """Every value of parsed JSON/YAML data with its key path, depth first, no recursion.

    A container deeper than ``MAX_DEPTH`` is yielded but not entered.
    """
    stack: list[tuple[Any, KeyPath]] = [(data, ())]
    while stack:
        value, path = stack.pop()
        yield value, path
        if len(path) >= MAX_DEPTH:
            continue
        if isinstance(value, dict):
            stack += [(v, (*path, str(k))) for k, v in value.items()]
        elif isinstance(value, list):
            stack += [(v, (*path, i)) for i, v in enumerate(value)]


def too_deep(data: Any) -> KeyPath | None:
    """The key path of a mapping or list nested more than ``MAX_DEPTH`` levels deep, if any.

    The top-level mapping is level 1.
    """
    return next(
        (
            path
            for value, path in walk(data)
            if isinstance(value, dict | list) and len(path) >= MAX_DEPTH
        ),
        None,
    )


def non_finite(data: Any) -> KeyPath | None:
    """The key path of a NaN or infinite number, if any.

    JSON has no NaN or Infinity (Python's json module and YAML's ``.nan``/``.inf`` accept
    them); an OpenAPI document or a JSON Schema holding one cannot be checked or written
    back as JSON.
    """
    return next(
        (
            path
            for value, path in walk(data)
            if isinstance(value, float) and not math.isfinite(value)
        ),
        None,
    )
