"""What a manager's delegation may look like, mended: text for objects, fields renamed,
coworkers named loosely matched to one role. Pure functions (no CrewAI import)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

#: Text kept of one delegation's task, question or context (model-written, untrusted).
MAX_FIELD_CHARS = 8000
#: Text of a coworker's name looked at.
MAX_NAME_CHARS = 200
#: Other names models give the fields; each is moved to the field CrewAI's tool expects.
ALIASES = {
    "coworker": ("co_worker", "agent", "role", "to", "assignee", "worker"),
    "task": ("description", "task_description", "work"),
    "question": ("query",),
    "context": ("details", "background", "info"),
}
#: Keys whose text is the point of an object given where text belongs.
TEXT_KEYS = ("description", "task", "question", "text", "content", "value", "details")
#: Words that say nothing about which coworker is meant ("Senior Developer", "Sr. Dev").
VAGUE = frozenset(
    ("a", "an", "the", "our", "agent", "senior", "sr", "junior", "jr", "lead", "principal", "staff")
)


def words(text: str) -> list[str]:
    return [w for w in re.split(r"[^0-9a-z]+", text.casefold()) if w]


def as_text(value: Any, limit: int = MAX_FIELD_CHARS) -> tuple[str, bool]:
    """``value`` as text, and whether it was something else (an object, a list, a number)."""
    if isinstance(value, str):
        return value[:limit], False
    if value is None:
        return "", False
    if isinstance(value, dict):
        for key in TEXT_KEYS:
            if isinstance(value.get(key), str) and value[key].strip():
                return value[key][:limit], True
    elif isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return "\n".join(value)[:limit], True
    # Parsed from the model's own (bounded) answer, so it is bounded too; cut all the same.
    return json.dumps(value, default=str, ensure_ascii=False)[:limit], True


def mend(args: dict[str, Any], field: str) -> list[str]:
    """Mend a delegation's arguments in place (``field``: task or question); what was mended."""
    fixed = []
    for name, others in ALIASES.items():
        for other in others:
            if other in args and name not in args:
                args[name] = args.pop(other)
                fixed.append(f"{other} -> {name}")
    if "context" not in args:  # CrewAI's tool requires it; nothing to add is fine
        args["context"] = ""
    for name in (field, "context", "coworker"):
        if name not in args:
            continue
        value = args[name]
        if name == "coworker" and isinstance(value, list) and len(value) == 1:
            value = value[0]
        limit = MAX_NAME_CHARS if name == "coworker" else MAX_FIELD_CHARS
        text, was_object = as_text(value, limit)
        if was_object:
            fixed.append(f"{name}: {type(value).__name__} -> text")
        args[name] = text
    return fixed


def match_coworker(given: str, roles: Mapping[str, str]) -> list[str]:
    """The role texts ``given`` may mean (``roles``: role text -> role key).

    An exact match (case, spaces and punctuation folded) of a role text or key wins;
    otherwise each role every telling word of ``given`` begins a word of ("Senior
    Developer", "dev" and "developer" all mean Software Developer).
    """
    asked = words(given[:MAX_NAME_CHARS])
    exact = [r for r, k in roles.items() if asked in (words(r), words(k))]
    if exact:
        return exact
    telling = [w for w in asked if w not in VAGUE]

    def fits(word: str, role_words: list[str]) -> bool:
        return any(w == word or (len(word) >= 3 and w.startswith(word)) for w in role_words)

    return [
        r
        for r, k in roles.items()
        if telling and all(fits(w, [*words(r), *words(k)]) for w in telling)
    ]
