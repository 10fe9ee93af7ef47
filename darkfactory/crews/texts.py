"""``prompts.json``, read once: the CrewAI texts it replaces and Dark Factory's own texts for
the models (``darkfactory``: protocol notes, delegation errors, the fix task's measurements)."""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from darkfactory.errors import ConfigError

#: In CrewAI's prompt-file format (``translations/en.json``), plus the key ``OURS``.
PROMPT_FILE = Path(__file__).with_name("prompts.json")
#: The key of Dark Factory's own texts; every other key is a kind of CrewAI's texts.
OURS = "darkfactory"


@functools.cache
def prompt_file() -> dict[str, Any]:
    """``prompts.json`` as read (once per process)."""
    try:
        data = json.loads(PROMPT_FILE.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ConfigError(f"not valid JSON: {exc}", file=PROMPT_FILE) from None
    if not isinstance(data, dict):
        raise ConfigError("must be a JSON object of kinds of texts", file=PROMPT_FILE)
    return data


def pick(
    data: Mapping[str, Any], group: str, keys: tuple[str, ...], *, file: Path
) -> dict[str, str]:
    """The texts ``keys`` of ``data[OURS][group]``; a missing or non-text one is a ConfigError."""
    ours = data.get(OURS)
    found = ours.get(group) if isinstance(ours, dict) else None
    texts = found if isinstance(found, dict) else {}
    missing = [k for k in keys if not isinstance(texts.get(k), str)]
    if missing:
        raise ConfigError(
            f"no text for {', '.join(missing)}",
            file=file,
            key=f"{OURS}.{group}",
            hint=f"{OURS}.{group} needs a text for each of: {', '.join(keys)}",
        )
    return {k: texts[k] for k in keys}


@functools.cache
def texts(group: str, keys: tuple[str, ...]) -> Mapping[str, str]:
    """Dark Factory's texts ``keys`` of ``group`` in ``prompts.json`` (all present, or an error)."""
    return MappingProxyType(pick(prompt_file(), group, keys, file=PROMPT_FILE))
