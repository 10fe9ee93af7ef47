"""What a model call cost, from the maintained table in ``prices.yaml``.

An unknown model's cost is ``None`` (unknown), never zero. A run's own prices
(``factory.yaml`` ``prices:``, recorded in its trace's ``run_start``) come first.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import yaml

PRICES_FILE = Path(__file__).with_name("prices.yaml")


@cache
def _table() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(PRICES_FILE.read_text(encoding="utf-8"))
    return data


#: A run's own prices: model name or shell-style pattern -> {"input": x, "output": y}.
Extra = Mapping[str, Mapping[str, float]]


def _from_extra(model: str, extra: Extra) -> tuple[float, float] | None:
    entry = extra.get(model) or next(
        (v for k, v in extra.items() if fnmatch.fnmatchcase(model, k)), None
    )
    return None if entry is None else (float(entry["input"]), float(entry["output"]))


def price(model: str, extra: Extra | None = None) -> tuple[float, float] | None:
    """(input, output) USD per million tokens, or None when the price is unknown."""
    if extra:
        own = _from_extra(model, extra)
        if own is not None:
            return own
    table = _table()
    if any(model.startswith(p) for p in table.get("free_prefixes", [])):
        return (0.0, 0.0)
    models: dict[str, dict[str, float]] = table["models"]
    entry = models.get(model)
    if entry is None:
        entry = next((v for k, v in models.items() if k.split("/", 1)[-1] == model), None)
    if entry is None:
        return None
    return (float(entry["input"]), float(entry["output"]))


def cost(
    model: str | None, prompt_tokens: int, completion_tokens: int, extra: Extra | None = None
) -> float | None:
    p = price(model or "", extra)
    if p is None:
        return None
    return (prompt_tokens * p[0] + completion_tokens * p[1]) / 1_000_000
