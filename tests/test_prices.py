"""Model prices: ``prices:`` in factory.yaml first, then the bundled genai-prices table
(real lookups, offline), then an unknown price that a cost limit refuses to start with."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from genai_prices import Usage, calc_price

from darkfactory.config import load_config
from darkfactory.errors import ConfigError
from darkfactory.models import ModelPlan
from darkfactory.models.prices import cost, price, table_version
from tests.runhelp import config_with

REPO = Path(__file__).resolve().parent.parent

#: CrewAI model name -> genai-prices' provider id and model, as its own API is asked.
MAPPED = {
    "openai/gpt-4o-mini": ("openai", "gpt-4o-mini"),
    "openai/gpt-5-mini": ("openai", "gpt-5-mini"),
    "anthropic/claude-sonnet-4-5": ("anthropic", "claude-sonnet-4-5"),
    "gemini/gemini-2.5-flash": ("google", "gemini-2.5-flash"),
    "gemini/gemini-2.5-pro": ("google", "gemini-2.5-pro"),
    "groq/llama-3.3-70b-versatile": ("groq", "llama-3.3-70b-versatile"),
    "deepseek/deepseek-chat": ("deepseek", "deepseek-chat"),
}

#: Models the docs name that the table rightly does not know, and why.
NOT_IN_TABLE = {
    "openai/local": "a local OpenAI-compatible server (docs/models.md prices it with prices:)",
    "openai/playbook": "the loopback playbook server, a test tool",
    "openai/house-model-7": "the troubleshooting page's example of an unknown price",
    "openai/gpt-4o-mni": "the model-name check's example of a misspelt name (models.md)",
}

#: Where the docs name models: the provider prefixes Dark Factory documents.
MODEL_NAME = re.compile(
    r"(?<![\w/.-])(?:openai|anthropic|gemini|groq|mistral|deepseek|ollama|ollama_chat|"
    r"hosted_vllm|lm_studio)/[A-Za-z0-9][\w.:/-]*"
)


@pytest.mark.parametrize("model", sorted(MAPPED))
def test_table_prices_match_genai_prices_own_calculation(model: str) -> None:
    provider, ref = MAPPED[model]
    known = price(model)
    assert known is not None, f"{model} has no price"
    # 100k prompt tokens: under any tier's threshold (see the next test); per million.
    own_in = calc_price(Usage(input_tokens=100_000), ref, provider_id=provider).total_price * 10
    own_out = calc_price(Usage(output_tokens=1_000_000), ref, provider_id=provider).total_price
    assert known == (float(own_in), float(own_out))
    assert 0 < known[0] <= known[1]


def test_the_models_issue_16_named_are_priced() -> None:
    # They had no price in the hand-kept table, so --max-cost-usd refused them.
    for model in ("anthropic/claude-sonnet-4-5", "gemini/gemini-2.5-flash", "openai/gpt-5-mini"):
        assert price(model) is not None, model
    assert cost("anthropic/claude-sonnet-4-5", 1_000_000, 1_000_000) == pytest.approx(
        sum(price("anthropic/claude-sonnet-4-5") or ())
    )


def test_tiered_price_is_the_base_rate() -> None:
    # Claude Sonnet 4.5 costs more above 200k prompt tokens; a call is priced at the base.
    base = calc_price(Usage(input_tokens=1000), "claude-sonnet-4-5", provider_id="anthropic")
    over = calc_price(Usage(input_tokens=300_000), "claude-sonnet-4-5", provider_id="anthropic")
    assert float(over.total_price) / 300_000 > float(base.total_price) / 1000  # really tiered
    assert price("anthropic/claude-sonnet-4-5") == (float(base.total_price) * 1000, 15.0)


def test_order_own_prices_then_table_then_free_then_unknown() -> None:
    own = {"anthropic/*": {"input": 1.0, "output": 2.0}, "openai/local": {"input": 0, "output": 0}}
    assert price("anthropic/claude-sonnet-4-5", own) == (1.0, 2.0)  # prices: beats the table
    assert price("openai/local", own) == (0.0, 0.0)
    assert price("openai/gpt-5-mini", own) == price("openai/gpt-5-mini")  # not matched: table
    assert price("ollama/llama3.1") == (0.0, 0.0)
    assert price("scripted:examples/playbooks/wordcount.yaml") == (0.0, 0.0)
    assert price("gpt-4o-mini") == price("openai/gpt-4o-mini")  # a bare name: any provider
    assert price("claude-sonnet-4-5") == price("anthropic/claude-sonnet-4-5")
    # Unknown, never zero: a misspelt model, an unknown provider, a model under another.
    assert price("openai/gpt-4o-mni") is None
    assert price("someprovider/gpt-4o") is None
    assert price("openai/claude-sonnet-4-5") is None
    assert cost("openai/gpt-4o-mni", 10, 10) is None


def _named_models() -> dict[str, list[str]]:
    files = [REPO / ".env.example", REPO / "README.md"]
    files += sorted((REPO / "docs").rglob("*.md")) + sorted((REPO / "config").rglob("*.yaml"))
    files += sorted((REPO / "darkfactory").rglob(".env.example*"))
    found: dict[str, list[str]] = {}
    for path in files:
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for name in MODEL_NAME.findall(line):
                name = name.rstrip(".,:;")
                found.setdefault(name, []).append(f"{path.relative_to(REPO)}:{lineno}")
    return found


def test_every_model_the_docs_and_env_example_name_is_priced() -> None:
    named = _named_models()
    assert "anthropic/claude-sonnet-4-5" in named and "openai/gpt-4o-mini" in named
    unpriced = {m: where for m, where in named.items() if m not in NOT_IN_TABLE and not price(m)}
    assert not unpriced, f"no price for models the docs name: {unpriced}"
    # The names the table does not know stay unknown, as the docs say of them.
    assert all(price(m) is None for m in NOT_IN_TABLE)


def test_a_cost_limit_starts_with_a_table_model_and_refuses_an_unknown_one(
    tmp_path: Path,
) -> None:
    config = load_config(config_with(tmp_path, budget={"max_cost_usd": 1.0}))
    ModelPlan(config, cli_model="anthropic/claude-sonnet-4-5").check_prices()
    ModelPlan(config, cli_model="gemini/gemini-2.5-flash").check_prices()
    with pytest.raises(ConfigError) as refused:
        ModelPlan(config, cli_model="openai/house-model-7").check_prices()
    text = f"{refused.value} {refused.value.hint}"
    assert "'openai/house-model-7'" in text and table_version() in text
    assert "prices: in factory.yaml" in text and "USD per million tokens" in text
    # What the hint says to add works.
    own = load_config(
        config_with(
            tmp_path / "own",
            budget={"max_cost_usd": 1.0},
            prices={"openai/house-model-7": {"input": 0.15, "output": 0.6}},
        )
    )
    ModelPlan(own, cli_model="openai/house-model-7").check_prices()


def test_lookups_are_offline_lazy_and_never_update(tmp_path: Path) -> None:
    """In a fresh process with every socket refused: `--help` does not import genai-prices,
    a free model does not either, a table lookup works, and no updater thread starts."""
    script = textwrap.dedent(
        """
        import socket, sys, threading

        def refuse(*args, **kwargs):
            raise OSError("network used")

        socket.socket.connect = refuse
        socket.create_connection = refuse
        from darkfactory.cli import main
        try:
            main(["--help"])
        except SystemExit:
            pass
        assert "genai_prices" not in sys.modules, "--help imported genai-prices"
        from darkfactory.models.prices import price
        assert price("scripted:x.yaml") == (0.0, 0.0)
        assert "genai_prices" not in sys.modules, "a free model imported genai-prices"
        assert price("anthropic/claude-sonnet-4-5") is not None
        assert threading.active_count() == 1, threading.enumerate()
        from genai_prices import data_snapshot
        assert data_snapshot.get_snapshot().from_auto_update is False
        print("ok")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-2000:]
