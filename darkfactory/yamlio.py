"""YAML loading that is safe on any input and remembers where every key and item came from.

Specs, the config files and playbooks are all read here. ``load_yaml``/``parse_yaml``
return plain Python data plus a ``Locations`` map from key paths
(``("agents", "developer", "tools", 2)``) to 1-based line numbers, so validation errors can
name the line.

YAML is input from people and other programs, so it is bounded like any input. Before the
(recursive) parts of PyYAML run, the event stream, which needs no recursion, is checked:
nesting deeper than ``MAX_DEPTH`` (counted through aliases), aliases that expand past
``MAX_VALUES`` values, an alias used inside its own anchor, and characters YAML refuses.
A value PyYAML cannot build (the date ``2024-13-01``, an integer of 5,000 digits) and a
string holding half of a UTF-16 surrogate pair are errors too. Every one of them, and
every syntax error, is raised as the caller's ``InputError`` subclass (``SpecError``,
``ConfigError``, ``PlaybookError``) naming the file, the line and the column: never a
``RecursionError``, a hang or a ``MemoryError``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import yaml

from darkfactory.errors import InputError

KeyPath = tuple[str | int, ...]

#: The deepest nesting of mappings and lists a YAML (or JSON) file may have, a value
#: reached through an alias counted at its full depth. Real OpenAPI documents, JSON
#: Schemas, configs and playbooks stay under 20; the code that reads them recurses.
MAX_DEPTH = 64
#: The most values (mappings, lists and scalars) a YAML file may expand to, each use of
#: an alias counted again: a few lines of aliases can otherwise expand to billions.
MAX_VALUES = 1_000_000


class Locations(dict[KeyPath, int]):
    """Maps a key path to the 1-based line it starts on."""

    def line_of(self, path: Sequence[str | int]) -> int | None:
        """The line of ``path``, or of its nearest ancestor that has one."""
        p = tuple(path)
        while p:
            if p in self:
                return self[p]
            p = p[:-1]
        return self.get((), None)


def load_yaml(path: str | Path, *, error: type[InputError] = InputError) -> tuple[Any, Locations]:
    """Read and parse a YAML file; a missing or unreadable file is an ``error`` naming it."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error("file not found", file=p, hint="check the path") from None
    except IsADirectoryError:
        raise error("is a directory, expected a YAML file", file=p) from None
    except UnicodeDecodeError as exc:
        raise error(f"not UTF-8 text ({exc.reason} at byte {exc.start})", file=p) from None
    return parse_yaml(text, file=p, error=error)


def parse_yaml(
    text: str, *, file: str | Path, error: type[InputError] = InputError
) -> tuple[Any, Locations]:
    """Parse YAML text within the limits; every problem is an ``error`` naming ``file``.

    The data is what ``yaml.safe_load`` gives, except that an escaped UTF-16 surrogate
    pair (``"\\ud83d\\ude00"``, which PyYAML reads as two halves) is joined into its
    character.
    """
    check_yaml_shape(text, file=file, error=error)
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        raise _syntax_error(exc, file=file, error=error) from None
    except _BadValue as exc:
        raise _value_error(exc.node, exc.cause, file=file, error=error) from None
    finally:
        loader.dispose()
    locs = Locations()
    if node is not None:
        _walk(node, (), locs)
    if lone_surrogate(data) is not None:
        data = _join_surrogate_pairs(data)
        check_characters(data, file=file, locs=locs, error=error)
    return data, locs


def yaml_locations(
    text: str, *, file: str | Path, error: type[InputError] = InputError
) -> Locations:
    """Only the ``Locations`` of YAML (or JSON) text: its values are not built or checked."""
    check_yaml_shape(text, file=file, error=error)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise _syntax_error(exc, file=file, error=error) from None
    locs = Locations()
    if node is not None:
        _walk(node, (), locs)
    return locs


def _walk(node: yaml.Node, path: KeyPath, locs: Locations) -> None:
    locs.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.value)
            child = (*path, key)
            locs[child] = key_node.start_mark.line + 1
            _walk(value_node, child, locs)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            child = (*path, i)
            locs[child] = item.start_mark.line + 1
            _walk(item, child, locs)


# -- errors ----------------------------------------------------------------------------


class _Mark(Protocol):
    """A place in the text: PyYAML's ``Mark`` (or its C twin, which events may carry)."""

    line: int
    column: int


class _BadValue(Exception):
    """A node PyYAML could not build a value from (raised with the node, for its place)."""

    def __init__(self, node: yaml.Node, cause: ValueError) -> None:
        super().__init__(str(cause))
        self.node = node
        self.cause = cause


class _Loader(yaml.SafeLoader):
    """``SafeLoader`` that says which node a ``ValueError`` came from."""

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except ValueError as exc:  # the date 2024-13-01, an integer of 5,000 digits
            raise _BadValue(node, exc) from None


def _syntax_error(exc: yaml.YAMLError, *, file: str | Path, error: type[InputError]) -> InputError:
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        return error(
            f"invalid YAML{_column(mark)}: {problem}",
            file=file,
            line=mark.line + 1 if mark is not None else None,
            hint="fix the YAML syntax at that line (indentation, a missing ':' or an unclosed "
            "quote are common causes)",
        )
    return error(f"invalid YAML: {exc}", file=file)


def _value_error(
    node: yaml.Node, cause: ValueError, *, file: str | Path, error: type[InputError]
) -> InputError:
    where = ""
    if isinstance(node, yaml.ScalarNode):
        value = node.value if len(node.value) <= 40 else node.value[:37] + "..."
        where = f" {value!r}"
    reason = str(cause).split("; use sys.set_int_max_str_digits", 1)[0]  # not the user's to set
    return error(
        f"invalid YAML value{where}{_column(node.start_mark)}: {reason}",
        file=file,
        line=node.start_mark.line + 1,
        hint="a value YAML reads as a date or a number must be a valid one; "
        "put it in quotes to make it text",
    )


def _column(mark: _Mark | None) -> str:
    return f" (column {mark.column + 1})" if mark is not None else ""


# -- limits ----------------------------------------------------------------------------


def check_yaml_shape(text: str, *, file: str | Path, error: type[InputError] = InputError) -> None:
    """Raise ``error`` if YAML ``text`` nests too deeply or its aliases expand too far.

    Reads the YAML event stream, which needs no recursion, so this is safe before the
    (recursive) composer runs. Syntax errors are left to the parser, which reports them
    with their line and column; a character YAML refuses is reported here, with its line.
    """
    try:
        for event, depth, values in _yaml_shape(text):
            mark = event.start_mark
            line = mark.line + 1 if mark is not None else None
            if depth > MAX_DEPTH:
                via = (
                    f" through the alias *{event.anchor}"
                    if isinstance(event, yaml.AliasEvent)
                    else ""
                )
                raise error(
                    f"nested too deeply{via}{_column(mark)}: more than {MAX_DEPTH} levels of "
                    "mappings and lists",
                    file=file,
                    line=line,
                    hint="nothing written by hand nests this deep: flatten it",
                )
            if values > MAX_VALUES:
                raise error(
                    f"the YAML expands to more than {MAX_VALUES:,} values{_column(mark)} "
                    "(its aliases, *name, repeat what their anchors, &name, hold)",
                    file=file,
                    line=line,
                    hint="write the repeated parts out instead of repeating aliases of aliases",
                )
    except _RecursiveAlias as exc:
        mark = exc.event.start_mark
        raise error(
            f"the YAML alias *{exc.event.anchor} is used inside its own anchor "
            f"&{exc.event.anchor}{_column(mark)}, so the value would contain itself without end",
            file=file,
            line=mark.line + 1 if mark is not None else None,
            hint="a value cannot contain itself: write the nested part out",
        ) from None
    except yaml.reader.ReaderError as exc:
        line, column = _line_column(text, exc.position)
        raise error(
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
    """Each YAML event with its nesting depth and the expanded number of values so far.

    The depth of an alias is where it is plus how deep its anchor's value goes, so
    ``&a [[...]]`` used inside ``&b [[... *a]]`` inside ``[[... *b]]`` counts in full.
    """
    sizes: dict[str, tuple[int, int]] = {}  # anchor -> (expanded values, levels below)
    stack: list[list[Any]] = []  # per open collection: [anchor, values inside, levels below]
    total = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        depth = len(stack)
        if isinstance(event, yaml.CollectionStartEvent):
            stack.append([event.anchor, 1, 1])
            depth = len(stack)
            total += 1
        elif isinstance(event, yaml.CollectionEndEvent):
            anchor, count, levels = stack.pop()
            if anchor is not None:
                sizes[anchor] = (count, levels)
            if stack:
                stack[-1][1] += count
                stack[-1][2] = max(stack[-1][2], levels + 1)
        elif isinstance(event, yaml.ScalarEvent):
            if event.anchor is not None:
                sizes[event.anchor] = (1, 0)
            if stack:
                stack[-1][1] += 1
            total += 1
        elif isinstance(event, yaml.AliasEvent):
            if any(anchor == event.anchor for anchor, _, _ in stack):
                raise _RecursiveAlias(event)
            count, levels = sizes.get(str(event.anchor), (1, 0))
            if stack:
                stack[-1][1] += count
                stack[-1][2] = max(stack[-1][2], levels + 1)
            depth += levels
            total += count
        yield event, depth, total


def _line_column(text: str, position: int) -> tuple[int, int]:
    before = text[:position]
    return before.count("\n") + 1, position - (before.rfind("\n") + 1) + 1


# -- characters ------------------------------------------------------------------------


def check_characters(
    data: Any, *, file: str | Path, locs: Locations, error: type[InputError] = InputError
) -> None:
    """Raise ``error`` at the line of a string (or key) holding a lone surrogate, if any."""
    path = lone_surrogate(data)
    if path is not None:
        raise error(
            "a lone surrogate: a \\ud800-\\udfff escape without its other half, which "
            "is not a character",
            file=file,
            line=locs.line_of(path),
            key=".".join(str(p) for p in path) or None,
            hint="write the character itself, or escape the whole pair "
            "(\\ud83d\\ude00 for U+1F600)",
        )


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


def _join_surrogate_pairs(value: Any) -> Any:
    """``value`` with every string's UTF-16 surrogate pairs joined into one character."""
    if isinstance(value, str):
        try:
            return value.encode("utf-16-le", "surrogatepass").decode("utf-16-le")
        except UnicodeDecodeError:  # a lone half: check_characters names it
            return value
    if isinstance(value, dict):
        return {_join_surrogate_pairs(k): _join_surrogate_pairs(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_join_surrogate_pairs(v) for v in value]
    return value


# -- pydantic --------------------------------------------------------------------------


def pydantic_errors(
    exc: Any,
    *,
    file: str | Path,
    locs: Locations,
    prefix: KeyPath = (),
    error: type[InputError] = InputError,
) -> InputError:
    """Turn the first error of a pydantic ``ValidationError`` into an ``InputError`` with its line.

    All errors are listed in the message; the line is the first one's.
    """
    errs = exc.errors()
    lines = []
    first_line = None
    first_key = None
    for e in errs:
        loc = tuple(
            x
            for x in (*prefix, *e["loc"])
            if not (isinstance(x, str) and x.startswith("function-"))
        )
        key = ".".join(str(x) for x in loc) or "(top level)"
        line = locs.line_of(loc)
        if first_line is None:
            first_line, first_key = line, key
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key (check its spelling; the docs list every key)"
        lines.append(f"{key} (line {line}): {msg}" if line else f"{key}: {msg}")
    message = (
        lines[0].split(": ", 1)[1] if len(lines) == 1 else "invalid:\n    " + "\n    ".join(lines)
    )
    return error(message, file=file, line=first_line, key=first_key if len(lines) == 1 else None)
