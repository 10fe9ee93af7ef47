"""YAML loading that remembers where every key and item came from.

``load_yaml`` returns plain Python data plus a ``Locations`` map from key paths
(``("agents", "developer", "tools", 2)``) to 1-based line numbers, so validation errors can
name the line. Syntax errors become ``InputError`` with the line and column.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from darkfactory.errors import InputError

KeyPath = tuple[str | int, ...]


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


def parse_yaml(
    text: str, *, file: str | Path, error: type[InputError] = InputError
) -> tuple[Any, Locations]:
    """Parse YAML text; raise ``error`` naming ``file`` and the line on a syntax error."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        col = f" (column {mark.column + 1})" if mark is not None else ""
        problem = exc.problem or exc.context or "invalid YAML"
        raise error(
            f"invalid YAML{col}: {problem}",
            file=file,
            line=line,
            hint="fix the YAML syntax at that line (indentation, a missing ':' or an unclosed quote are common causes)",
        ) from None
    except yaml.YAMLError as exc:
        raise error(f"invalid YAML: {exc}", file=file) from None
    locs = Locations()
    if node is not None:
        _walk(node, (), locs)
    return data, locs


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
