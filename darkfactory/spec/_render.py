"""Helpers to write generated acceptance-test code: Python literals and test names."""

from __future__ import annotations

import ast
import json
import pprint
import re
from typing import Any


def literal(value: Any, indent: int = 0) -> str:
    """``value`` (JSON data) as Python source that evaluates to it.

    A value with no literal form (a float such as ``inf``) is written as ``json.loads(...)``;
    the module then needs ``import json`` (``needs_json`` says so).
    """
    text = pprint.pformat(value, indent=1, width=96 - indent, sort_dicts=False)
    try:
        same = _same(ast.literal_eval(text), value)
    except (ValueError, SyntaxError):
        same = False
    if not same:
        text = f"json.loads({json.dumps(json.dumps(value))})"
    return text.replace("\n", "\n" + " " * indent)


def needs_json(source: str) -> bool:
    return "json.loads(" in source


def _same(a: Any, b: Any) -> bool:
    """Equal, and of the same JSON types all the way down (``True`` is not ``1``)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def identifier(*parts: str, max_len: int = 80) -> str:
    """``test_get_todos_id_404_missing``-style name from free text parts."""
    words = "_".join(re.sub(r"[^a-z0-9]+", "_", p.lower()).strip("_") for p in parts if p)
    name = re.sub(r"_+", "_", words).strip("_")[:max_len].rstrip("_")
    return name or "case"


def test_name(*parts: str) -> str:
    """``test_<identifier>``, never ``test_r<N>_...`` (that would link requirement R<N>)."""
    name = identifier(*parts)
    if re.match(r"r\d+(?:_|$)", name):
        name = f"that_{name}"
    return f"test_{name}"


class Names:
    """Hands out unique test function names."""

    def __init__(self) -> None:
        self._used: set[str] = set()

    def unique(self, name: str) -> str:
        candidate, n = name, 2
        while candidate in self._used:
            candidate, n = f"{name}_{n}", n + 1
        self._used.add(candidate)
        return candidate


def docstring(text: str) -> str:
    """A one-line docstring for ``text`` (quotes and backslashes made safe)."""
    safe = text.replace("\\", "\\\\").replace('"""', '\\"\\"\\"').replace("\n", " ").strip()
    if safe.endswith('"'):
        safe += " "
    return f'"""{safe}"""'
