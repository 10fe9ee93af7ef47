"""The keywords of a ``setup.py``'s ``setup()`` call, read with ``ast``: the file never runs.

Only what is static: literals, module-level names bound to literals, and ``a + b`` of lists.
"""

from __future__ import annotations

import ast
from typing import Any


class _NotStatic(Exception):
    pass


def setup_keywords(text: str) -> tuple[dict[str, Any] | None, list[str]]:
    """(the static keywords of every ``setup(...)`` call, the keywords that are not static).

    None for the keywords when ``text`` does not parse.
    """
    try:
        tree = ast.parse(text, filename="setup.py")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None, []
    names: dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name):
                try:
                    names[target.id] = _static(node.value, names)
                except _NotStatic:
                    names.pop(target.id, None)
    found: dict[str, Any] = {}
    unread: list[str] = []
    for call in ast.walk(tree):
        if not (isinstance(call, ast.Call) and _is_setup(call.func)):
            continue
        for kw in call.keywords:
            if kw.arg is None:
                continue
            try:
                found[kw.arg] = _static(kw.value, names)
            except _NotStatic:
                unread.append(kw.arg)
    return found, unread


def _is_setup(func: ast.expr) -> bool:
    return (isinstance(func, ast.Name) and func.id == "setup") or (
        isinstance(func, ast.Attribute) and func.attr == "setup"
    )


def _static(node: ast.expr, names: dict[str, Any]) -> Any:
    """The value of ``node`` if it is a literal, a module-level literal name, or ``a + b``."""
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError):
        pass
    if isinstance(node, ast.Name) and node.id in names:
        return names[node.id]
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _static(node.left, names), _static(node.right, names)
        if isinstance(left, list | tuple) and isinstance(right, list | tuple):
            return [*left, *right]
    raise _NotStatic
