"""Which model plays which role.

Precedence, highest first: ``--model`` on the command line, a role's ``llm:`` in
``agents.yaml``, ``MODEL`` (or ``MODEL_NAME`` / ``OPENAI_MODEL_NAME``) from ``.env`` or the
environment, ``model:`` in ``factory.yaml``.

Model strings are CrewAI's (``openai/gpt-4o-mini``, ``anthropic/claude-...``,
``ollama/llama3.1``) plus our own ``scripted:PATH`` (a playbook: a test and rehearsal
tool, not AI) and ``replay:PATH`` (a cassette recorded with ``--record``).

Before a run, each model's key is checked (``check``) and its name asked of its provider
(``check_names``, ``darkfactory.models.catalog``).

A provider's model is built with factory.yaml's ``llm:`` timeout and no client retries,
behind a ``GuardedLLM`` that retries, traces each retry, counts it against the budget and
ends the run clearly when the provider stays down (``darkfactory.models.guarded``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from darkfactory.errors import ConfigError, NoModelConfigured
from darkfactory.models.catalog import ModelCatalog, NameCheck, UnknownModel
from darkfactory.models.secrets import LOCAL_KEY_PLACEHOLDER

if TYPE_CHECKING:
    from darkfactory.config import Config

MODEL_ENV_VARS = ("MODEL", "MODEL_NAME", "OPENAI_MODEL_NAME")
BASE_URL_ENV_VARS = ("BASE_URL", "OPENAI_API_BASE", "OPENAI_BASE_URL", "API_BASE")

#: Provider prefix -> the environment variables that can hold its key (any one will do).
PROVIDER_KEYS: dict[str, tuple[str, ...]] = {
    "openai": ("OPENAI_API_KEY",),
    "anthropic": ("ANTHROPIC_API_KEY",),
    "gemini": ("GEMINI_API_KEY", "GOOGLE_API_KEY"),
    "groq": ("GROQ_API_KEY",),
    "mistral": ("MISTRAL_API_KEY",),
    "deepseek": ("DEEPSEEK_API_KEY",),
}
#: Providers that run locally and need no key.
LOCAL_PROVIDERS = ("ollama", "ollama_chat", "hosted_vllm")
#: A local server with an OpenAI-compatible API (llama.cpp's server, LM Studio, vLLM) can be
#: used as ``openai/<model>`` with BASE_URL set; no key is needed then.

NO_MODEL_HINT = (
    "set MODEL and the provider's key in .env or the environment "
    "(e.g. MODEL=openai/gpt-4o-mini and OPENAI_API_KEY=...), or point at a local server "
    "(MODEL=ollama/llama3.1 with BASE_URL=http://localhost:11434); "
    "to see the factory work without a model, run `darkfactory rehearse` "
    "(a scripted model plays the roles)"
)


def base_url() -> str | None:
    """The server every role's model is reached at (``BASE_URL`` or the like), if one is set."""
    return next((os.environ[n] for n in BASE_URL_ENV_VARS if os.environ.get(n)), None)


def is_provider_model(model: str) -> bool:
    """A real model reached through a provider (not ``scripted:`` or ``replay:``)."""
    return not model.startswith(("scripted:", "replay:"))


def check_model_usable(model: str) -> None:
    """Refuse at once, with what to set, a hosted model whose key is missing."""
    if not is_provider_model(model):
        return
    provider = model.split("/", 1)[0] if "/" in model else "openai"
    if provider in LOCAL_PROVIDERS:
        return
    if any(os.environ.get(n) for n in BASE_URL_ENV_VARS) and provider == "openai":
        return  # an OpenAI-compatible local server
    keys = PROVIDER_KEYS.get(provider)
    if keys and not any(os.environ.get(k) for k in keys):
        raise NoModelConfigured(
            f"model {model!r} needs {' or '.join(keys)}, which is not set",
            hint=f"add {keys[0]}=... to .env or the environment; or {NO_MODEL_HINT}",
        )


@dataclass
class ModelPlan:
    """Resolves the model of each role once per run and shares instances between roles."""

    config: Config
    cli_model: str | None = None
    #: Record every exchange of the run to this cassette (``--record``).
    record: Path | None = None
    _instances: dict[str, Any] = field(default_factory=dict)
    _recorder: Any = None
    _cassettes: dict[str, Any] = field(default_factory=dict)
    _catalog: ModelCatalog | None = None

    def model_name(self, role: str) -> str:
        return self.model_source(role)[0]

    def model_source(self, role: str) -> tuple[str, str]:
        """The model of ``role`` and where it was set (``--model``, ``MODEL``, a file's key)."""
        if self.cli_model:
            return self.cli_model, "--model"
        if self.config.agents[role].llm:
            return str(self.config.agents[role].llm), f"agents.yaml {role}.llm"
        for name in MODEL_ENV_VARS:
            if os.environ.get(name):
                return os.environ[name], name
        if self.config.factory.model:
            return self.config.factory.model, "factory.yaml model"
        raise NoModelConfigured("no model is configured", hint=NO_MODEL_HINT)

    def function_calling_model(self, role: str) -> str | None:
        """The role's ``function_calling_llm``; ``--model`` sets every model, so drops it."""
        return None if self.cli_model else self.config.agents[role].function_calling_llm

    def role_models(self) -> list[tuple[str, str]]:
        """Each role with each model it may call: its own, then its function-calling one."""
        pairs = []
        for role in self.config.agents:
            pairs.append((role, self.model_name(role)))
            if (helper := self.function_calling_model(role)) is not None:
                pairs.append((role, helper))
        return pairs

    def check(self) -> None:
        """Fail fast, before any work, if some role has no usable model."""
        for _, model in self.role_models():
            check_model_usable(model)

    def check_names(self) -> list[NameCheck]:
        """Ask each provider whether it has the model names of this run (``UnknownModel``
        when one has not); each list is fetched once. ``scripted:`` and ``replay:`` are
        not asked, nor anything when ``llm.check_model`` is off."""
        if self._catalog is None:
            self._catalog = ModelCatalog()
        sources: dict[str, list[str]] = {}
        roles: dict[str, list[str]] = {}
        for role in self.config.agents:
            name, source = self.model_source(role)
            if source not in sources.setdefault(name, []):
                sources[name].append(source)
            roles.setdefault(name, []).append(role)
        checks = []
        for name in sources:
            if not is_provider_model(name):
                checks.append(NameCheck(name, None, "not a provider's model", asked=False))
            elif not self.config.factory.llm.check_model:
                checks.append(NameCheck(name, None, "llm.check_model is false", asked=False))
            else:
                checks.append(self._catalog.check(name, base_url=base_url()))
        unknown = [c for c in checks if c.known is False]
        if unknown:
            raise UnknownModel(
                "; ".join(
                    f"model {c.model!r} ({self._who(roles[c.model])}, set by "
                    f"{' and '.join(sources[c.model])}) is not one the provider has: {c.note}"
                    for c in unknown
                ),
                hint=" ".join(
                    f"did you mean {' or '.join(c.close)}?"
                    if c.close
                    else f"no name close to {c.model!r} is listed."
                    for c in unknown
                )
                + " A server that answers to any name: set llm.check_model: false in "
                "factory.yaml.",
            )
        return checks

    @property
    def scripted(self) -> Any | None:
        """The scripted model of this run, if it uses one."""
        for inst in self._instances.values():
            inner = getattr(inst, "inner", inst)
            if getattr(inner, "llm_type", None) == "scripted":
                return inner
        return None

    def fatal(self) -> Exception | None:
        """The error that ended a provider model's use in this run (``GuardedLLM.fatal``)."""
        return next(
            (f for inst in self._instances.values() if (f := getattr(inst, "fatal", None))),
            None,
        )

    def tokens_used(self) -> int:
        """Tokens all of this run's models reported (or estimated) so far, in this process."""
        return sum(
            inst.get_token_usage_summary().total_tokens
            for inst in self._instances.values()
            if hasattr(inst, "get_token_usage_summary")
        )

    def prices(self) -> dict[str, dict[str, float]]:
        """The run's own prices (``factory.yaml`` ``prices:``), as ``darkfactory.models.prices`` takes them."""
        return {k: v.model_dump() for k, v in self.config.factory.prices.items()}

    def cost_used(self) -> float | None:
        """US dollars this run's models have cost so far in this process (None: unknown)."""
        from darkfactory.models.prices import cost

        total, prices = 0.0, self.prices()
        for key, inst in self._instances.items():
            if not hasattr(inst, "get_token_usage_summary"):
                continue
            usage = inst.get_token_usage_summary()
            model = key.split("#", 1)[0]
            usd = cost(model, usage.prompt_tokens, usage.completion_tokens, prices)
            if usd is None:
                return None
            total += usd
        return total

    def check_prices(self) -> None:
        """A cost limit needs every role's price: say which model lacks one, and how to add it."""
        from darkfactory.models.prices import price, table_version

        for role, model in self.role_models():
            if price(model, self.prices()) is None:
                raise ConfigError(
                    f"budget.max_cost_usd is set but the price of model {model!r} "
                    f"(role {role}) is unknown: neither prices: in factory.yaml nor "
                    f"{table_version()} knows it",
                    file=self.config.dir / "factory.yaml",
                    hint=(
                        f"add it under prices: in factory.yaml (e.g. prices: {{{model!r}: "
                        f"{{input: 0.15, output: 0.60}}}}, USD per million tokens, from the "
                        f"provider's price list); or drop the cost limit"
                    ),
                )

    def _who(self, roles: list[str]) -> str:
        return "every role" if len(roles) == len(self.config.agents) else "role " + ", ".join(roles)

    def llm_for(self, role: str) -> Any:
        name = self.model_name(role)
        # A replay answers each role from the same cassette, with that role's recorded
        # capabilities (native tool calls or text), so it gets one instance per role.
        key = f"{name}#{role}" if name.startswith("replay:") else name
        if key not in self._instances:
            self._instances[key] = self._build(name, role)
        return self._instances[key]

    def function_calling_llm_for(self, role: str) -> Any | None:
        """The role's function-calling model (shared like ``llm_for``'s), if it has one."""
        name = self.function_calling_model(role)
        if name is None:
            return None
        if name not in self._instances:
            self._instances[name] = self._build(name, role)
        return self._instances[name]

    def bind_run(self, *, run_dir: Path, run_id: str, trace: Any, budget: Any) -> None:
        """Connect the models to a started run: retries traced and budgeted, recording on.

        ``trace`` is the run's ``Trace``, ``budget`` its ``BudgetMeter``; each retry is
        checked against the budget like a call (``HookAborted`` when it is exhausted).
        """
        from darkfactory.models.cassette import Normaliser
        from darkfactory.models.guarded import GuardedLLM, RetryEvent

        normaliser = Normaliser.for_run(run_dir, run_id)

        def on_retry(event: RetryEvent) -> None:
            from crewai.hooks.dispatch import HookAborted

            from darkfactory.models.budget import BudgetExhausted

            try:
                budget.check()
            except BudgetExhausted as exc:
                raise HookAborted(str(exc), source="darkfactory.models.budget") from exc
            trace.write(
                "llm_retry",
                role=event.role,
                model=event.model,
                attempt=event.attempt,
                max_retries=event.max_retries,
                reason=event.reason,
                wait_s=event.wait_s,
                error=event.detail,
            )

        for inst in self._instances.values():
            if isinstance(inst, GuardedLLM):
                inst.observe(on_retry)
        for cassette in self._cassettes.values():
            cassette.normaliser = normaliser
        if self._recorder is not None:
            roles = {}
            for key, agent in self.config.agents.items():
                llm = self.llm_for(key)
                roles[agent.role] = {
                    "key": key,
                    "model": self.model_name(key),
                    "function_calling": bool(llm.supports_function_calling()),
                    "stop_words": bool(llm.supports_stop_words()),
                    "context_window": int(llm.get_context_window_size()),
                }
            self._recorder.start(roles=roles, normaliser=normaliser, run_id=run_id)

    def close(self) -> None:
        """Finish the run's recording, if any."""
        if self._recorder is not None:
            self._recorder.close()

    def _build(self, name: str, role: str) -> Any:
        from darkfactory.models.guarded import GuardedLLM, RetryPolicy

        if name.startswith("replay:"):
            from darkfactory.models.cassette import Cassette
            from darkfactory.models.replay import ReplayLLM

            path = name.removeprefix("replay:")
            if path not in self._cassettes:
                self._cassettes[path] = Cassette.load(path)
            inst: Any = ReplayLLM(self._cassettes[path], self.config.agents[role].role)
        elif name.startswith("scripted:"):
            from darkfactory.models.playbook import load_playbook
            from darkfactory.models.scripted import ScriptedLLM

            book = load_playbook(name.removeprefix("scripted:"), roles=set(self.config.agents))
            role_keys = {a.role: key for key, a in self.config.agents.items()}
            inst = ScriptedLLM(book, role_keys)
        else:
            settings = self.config.factory.llm
            provider = self._provider_llm(name, timeout_s=settings.timeout_s)
            policy = RetryPolicy(
                max_retries=settings.max_retries,
                backoff_s=settings.retry_backoff_s,
                max_wait_s=settings.retry_max_wait_s,
                # A client without a timeout of its own gets ours from a watchdog.
                watchdog_s=None if _client_has_timeout(provider) else settings.timeout_s,
            )
            return GuardedLLM(provider, model=name, policy=policy, recorder=self._recording())
        if self.record is not None and not name.startswith("replay:"):
            return GuardedLLM(inst, model=name, policy=None, recorder=self._recording())
        return inst

    def _recording(self) -> Any:
        if self.record is None:
            return None
        if self._recorder is None:
            from darkfactory.models.cassette import Recorder

            self._recorder = Recorder(self.record)
        return self._recorder

    def _provider_llm(self, name: str, *, timeout_s: float) -> Any:
        """CrewAI's LLM for ``name``: our timeout, no client retries (the guard retries)."""
        from crewai import LLM

        server = base_url()
        kwargs: dict[str, Any] = {"model": name}
        if server:
            kwargs["base_url"] = server
            provider = name.split("/", 1)[0] if "/" in name else "openai"
            if provider == "openai" and not os.environ.get("OPENAI_API_KEY"):
                # An OpenAI-compatible local server needs no key, but the client insists.
                kwargs["api_key"] = LOCAL_KEY_PLACEHOLDER
        try:
            llm = LLM(**kwargs)
            if _client_has_timeout(llm):
                # Set where the provider's client is built (OpenAI, Anthropic, Azure and
                # the OpenAI-compatible ones: Ollama, vLLM, ...), so build it again.
                llm = LLM(**kwargs, timeout=timeout_s, max_retries=0)
            return llm
        except ImportError as exc:
            raise NoModelConfigured(
                f"model {name!r} cannot be used: {exc}",
                hint="install the provider's extra (e.g. pip install 'crewai[anthropic]'), or "
                "for an OpenAI-compatible local server (llama.cpp, LM Studio, vLLM) use "
                "MODEL=openai/<model> with BASE_URL=http://host:port/v1",
            ) from None


def _client_has_timeout(llm: Any) -> bool:
    """Whether CrewAI's client for this provider takes ``timeout`` and ``max_retries``."""
    fields = type(llm).model_fields
    return "timeout" in fields and "max_retries" in fields
