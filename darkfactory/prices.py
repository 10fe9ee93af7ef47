"""What a model call cost, from the maintained table in ``prices.yaml``.

An unknown model's cost is ``None`` (unknown), never zero.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml

PRICES_FILE = Path(__file__).with_name("prices.yaml")


@cache
def _table() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(PRICES_FILE.read_text(encoding="utf-8"))
    return data


def price(model: str) -> tuple[float, float] | None:
    """(input, output) USD per million tokens, or None when the price is unknown."""
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


def cost(model: str | None, prompt_tokens: int, completion_tokens: int) -> float | None:
    p = price(model or "")
    if p is None:
        return None
    return (prompt_tokens * p[0] + completion_tokens * p[1]) / 1_000_000
