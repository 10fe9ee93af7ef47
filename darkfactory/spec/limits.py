"""The limits every spec is checked against before (or while) it is parsed.

A spec is input from a person or another program, so it is bounded like any input: a file
too big, a binary file, nesting too deep or YAML aliases that expand without end is a
``SpecError`` naming the file (and the line where known), never a hang, a ``MemoryError``
or a ``RecursionError``. docs/spec-formats.md lists these limits.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from darkfactory.errors import SpecError
from darkfactory.yamlio import KeyPath

#: The largest spec file read, in bytes (checked with ``stat`` before the file is read).
#: Also the largest test file a ticket or a test-suite spec names.
MAX_SPEC_BYTES = 2_000_000
#: The deepest nesting of mappings and lists a JSON or YAML spec may have. Real OpenAPI
#: documents and JSON Schemas stay under 20; the libraries that check them recurse.
MAX_DEPTH = 64
#: The most values (mappings, lists and scalars) a YAML spec may expand to, each use of a
#: YAML alias counted again: a few lines of aliases can otherwise expand to billions.
MAX_VALUES = 1_000_000
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


def check_yaml_shape(text: str, *, file: Path) -> None:
    """Raise a SpecError if YAML ``text`` nests too deeply or its aliases expand too far.

    Reads the YAML event stream, which needs no recursion, so this is safe before the
    (recursive) composer runs. Syntax errors are left to the parser, which reports them
    with their line and column; a character YAML refuses is reported here, with its line.
    """
    try:
        for event, depth, values in _yaml_shape(text):
            mark = event.start_mark
            where = f" (column {mark.column + 1})" if mark is not None else ""
            line = mark.line + 1 if mark is not None else None
            if depth > MAX_DEPTH:
                raise SpecError(
                    f"nested too deeply{where}: more than {MAX_DEPTH} levels of mappings and lists",
                    file=file,
                    line=line,
                    hint="a spec this deep is not written by hand; flatten it or use $ref",
                )
            if values > MAX_VALUES:
                raise SpecError(
                    f"the YAML expands to more than {MAX_VALUES:,} values{where} "
                    "(its aliases, *name, repeat what their anchors, &name, hold)",
                    file=file,
                    line=line,
                    hint="write the repeated parts out, or refer to them with $ref",
                )
    except _RecursiveAlias as exc:
        mark = exc.event.start_mark
        where = f" (column {mark.column + 1})" if mark is not None else ""
        raise SpecError(
            f"the YAML alias *{exc.event.anchor} is used inside its own anchor "
            f"&{exc.event.anchor}{where}, so the value would contain itself without end",
            file=file,
            line=mark.line + 1 if mark is not None else None,
            hint="a value cannot contain itself: write the nested part out",
        ) from None
    except yaml.reader.ReaderError as exc:
        line, column = _line_column(text, exc.position)
        raise SpecError(
            f"invalid YAML (column {column}): character {exc.character!r} is not allowed in YAML",
            file=file,
            line=line,
            hint="remove the control character, or save the file as UTF-8 text",
        ) from None
    except yaml.YAMLError:
        return  # the parser reports it with its line and column


class _RecursiveAlias(Exception):
    def __init__(self, event: yaml.AliasEvent) -> None:
        super().__init__(event.anchor)
        self.event = event


def _yaml_shape(text: str) -> Iterator[tuple[yaml.Event, int, int]]:
    """Each YAML event with the nesting depth and the expanded number of values so far."""
    sizes: dict[str, int] = {}  # anchor -> expanded number of values
    stack: list[list[Any]] = []  # per open collection: [anchor, values inside]
    total = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.CollectionStartEvent):
            stack.append([event.anchor, 1])
            total += 1
        elif isinstance(event, yaml.CollectionEndEvent):
            anchor, count = stack.pop()
            if anchor is not None:
                sizes[anchor] = count
            if stack:
                stack[-1][1] += count
        elif isinstance(event, yaml.ScalarEvent):
            if event.anchor is not None:
                sizes[event.anchor] = 1
            if stack:
                stack[-1][1] += 1
            total += 1
        elif isinstance(event, yaml.AliasEvent):
            if any(anchor == event.anchor for anchor, _ in stack):
                raise _RecursiveAlias(event)
            count = sizes.get(str(event.anchor), 1)
            if stack:
                stack[-1][1] += count
            total += count
        yield event, len(stack), total


def _line_column(text: str, position: int) -> tuple[int, int]:
    before = text[:position]
    return before.count("\n") + 1, position - (before.rfind("\n") + 1) + 1


def too_deep(data: Any) -> KeyPath | None:
    """The key path of a mapping or list nested more than ``MAX_DEPTH`` levels deep, if any.

    The top-level mapping is level 1. Walks without recursion.
    """
    stack: list[tuple[Any, KeyPath]] = [(data, ())]
    while stack:
        value, path = stack.pop()
        if isinstance(value, dict | list) and len(path) >= MAX_DEPTH:
            return path
        if isinstance(value, dict):
            stack += [(v, (*path, str(k))) for k, v in value.items()]
        elif isinstance(value, list):
            stack += [(v, (*path, i)) for i, v in enumerate(value)]
    return None


def lone_surrogate(data: Any) -> KeyPath | None:
    """The key path of a string (or key) holding a lone surrogate, if any (no recursion).

    JSON ``"\\ud800"`` and YAML ``"\\ud800"`` escapes decode to half of a UTF-16 pair,
    which is not a character: nothing could write it out as UTF-8 later.
    """
    stack: list[tuple[Any, KeyPath]] = [(data, ())]
    while stack:
        value, path = stack.pop()
        if isinstance(value, str):
            if not _is_utf8(value):
                return path
        elif isinstance(value, dict):
            for k, v in value.items():
                key_path = (*path, str(k))
                if isinstance(k, str) and not _is_utf8(k):
                    return key_path
                stack.append((v, key_path))
        elif isinstance(value, list):
            stack += [(v, (*path, i)) for i, v in enumerate(value)]
    return None


def _is_utf8(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def non_finite(data: Any) -> KeyPath | None:
    """The key path of a NaN or infinite number, if any (no recursion).

    JSON has no NaN or Infinity (Python's json module and YAML's ``.nan``/``.inf`` accept
    them); an OpenAPI document or a JSON Schema holding one cannot be checked or written
    back as JSON.
    """
    stack: list[tuple[Any, KeyPath]] = [(data, ())]
    while stack:
        value, path = stack.pop()
        if isinstance(value, float) and not math.isfinite(value):
            return path
        if isinstance(value, dict):
            stack += [(v, (*path, str(k))) for k, v in value.items()]
        elif isinstance(value, list):
            stack += [(v, (*path, i)) for i, v in enumerate(value)]
    return None
