"""What a model call costs, USD per million tokens: a run's own ``prices:`` first, then the
genai-prices table bundled with the installed package (offline), else unknown (``None``, never zero).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from genai_prices.data_snapshot import DataSnapshot
    from genai_prices.types import TieredPrices

#: Models that cost nothing per token: the scripted model (a test tool), the replay of a
#: recorded run (no model is called) and local servers.
FREE_PREFIXES = ("scripted:", "replay:", "ollama/", "ollama_chat/", "hosted_vllm/", "lm_studio/")

#: A run's own prices: model name or shell-style pattern -> {"input": x, "output": y}.
Extra = Mapping[str, Mapping[str, float]]


def _from_extra(model: str, extra: Extra) -> tuple[float, float] | None:
    entry = extra.get(model) or next(
        (v for k, v in extra.items() if fnmatch.fnmatchcase(model, k)), None
    )
    return None if entry is None else (float(entry["input"]), float(entry["output"]))


@cache
def _snapshot() -> DataSnapshot:
    # Imported here, not at the top: genai-prices takes ~0.2 s to import (its HTTP client
    # and 1.6 MB of price data), which only a run or a report with a hosted model needs.
    from genai_prices.data import providers
    from genai_prices.data_snapshot import DataSnapshot

    # Our own snapshot of the bundled data: an `UpdatePrices` some other library starts in
    # this process cannot swap in downloaded prices, so a cost depends on the version alone.
    return DataSnapshot(providers=providers, from_auto_update=False)


def table_version() -> str:
    """The price table in use, e.g. ``genai-prices 0.2.5``."""
    from genai_prices import __version__

    return f"genai-prices {__version__}"


def _rate(value: Decimal | TieredPrices | None) -> float | None:
    """USD per million tokens; of a tiered price, the base rate (prompts under the first tier)."""
    if value is None:
        return None
    return float(value if isinstance(value, Decimal) else value.base)


@cache
def _table_price(model: str) -> tuple[float, float] | None:
    # CrewAI names a model `provider/model` (`gemini/gemini-2.5-flash`): the prefix is
    # genai-prices' provider id or alias, the rest its model. A bare name: any provider.
    prefix, slash, name = model.partition("/")
    provider_id, ref = (prefix, name) if slash else (None, model)
    try:
        _, info = _snapshot().find_provider_model(ref, None, provider_id, None)
    except LookupError:
        return None
    rates = info.get_prices(datetime.now(UTC))
    prompt, completion = _rate(rates.input_mtok), _rate(rates.output_mtok)
    return None if prompt is None or completion is None else (prompt, completion)


def price(model: str, extra: Extra | None = None) -> tuple[float, float] | None:
    """(input, output) USD per million tokens, or None when the price is unknown."""
    if extra:
        own = _from_extra(model, extra)
        if own is not None:
            return own
    if model.startswith(FREE_PREFIXES):
        return (0.0, 0.0)
    return _table_price(model)


def cost(
    model: str | None, prompt_tokens: int, completion_tokens: int, extra: Extra | None = None
) -> float | None:
    p = price(model or "", extra)
    if p is None:
        return None
    return (prompt_tokens * p[0] + completion_tokens * p[1]) / 1_000_000
