"""Which model plays which role.

Precedence, highest first: ``--model`` on the command line, a role's ``llm:`` in
``agents.yaml``, ``MODEL`` (or ``MODEL_NAME`` / ``OPENAI_MODEL_NAME``) from ``.env`` or the
environment, ``model:`` in ``factory.yaml``.

Model strings are CrewAI's (``openai/gpt-4o-mini``, ``anthropic/claude-...``,
``ollama/llama3.1``) plus our own ``scripted:PATH`` (a playbook: a test and rehearsal
tool, not AI).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from darkfactory.errors import NoModelConfigured

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
LOCAL_KEY_PLACEHOLDER = "unused-by-local-server"

NO_MODEL_HINT = (
    "set MODEL and the provider's key in .env or the environment "
    "(e.g. MODEL=openai/gpt-4o-mini and OPENAI_API_KEY=...), or point at a local server "
    "(MODEL=ollama/llama3.1 with BASE_URL=http://localhost:11434); "
    "to see the factory work without a model, run `darkfactory rehearse` "
    "(a scripted model plays the roles)"
)


def env_model() -> str | None:
    for name in MODEL_ENV_VARS:
        if os.environ.get(name):
            return os.environ[name]
    return None


def check_model_usable(model: str) -> None:
    """Refuse at once, with what to set, a hosted model whose key is missing."""
    if model.startswith("scripted:"):
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
    _instances: dict[str, Any] = field(default_factory=dict)

    def model_name(self, role: str) -> str:
        if self.cli_model:
            return self.cli_model
        role_llm = self.config.agents[role].llm
        model = role_llm or env_model() or self.config.factory.model
        if not model:
            raise NoModelConfigured("no model is configured", hint=NO_MODEL_HINT)
        return model

    def check(self) -> None:
        """Fail fast, before any work, if some role has no usable model."""
        for role in self.config.agents:
            check_model_usable(self.model_name(role))

    @property
    def scripted(self) -> Any | None:
        """The scripted model of this run, if it uses one."""
        for inst in self._instances.values():
            if getattr(inst, "llm_type", None) == "scripted":
                return inst
        return None

    def tokens_used(self) -> int:
        """Tokens all of this run's models reported (or estimated) so far, in this process."""
        return sum(
            inst.get_token_usage_summary().total_tokens
            for inst in self._instances.values()
            if hasattr(inst, "get_token_usage_summary")
        )

    def llm_for(self, role: str) -> Any:
        name = self.model_name(role)
        if name not in self._instances:
            self._instances[name] = self._build(name)
        return self._instances[name]

    def _build(self, name: str) -> Any:
        if name.startswith("scripted:"):
            from darkfactory.llms.playbook import load_playbook
            from darkfactory.llms.scripted import ScriptedLLM

            book = load_playbook(name.removeprefix("scripted:"), roles=set(self.config.agents))
            role_keys = {a.role: key for key, a in self.config.agents.items()}
            return ScriptedLLM(book, role_keys)
        from crewai import LLM

        base_url = next((os.environ[n] for n in BASE_URL_ENV_VARS if os.environ.get(n)), None)
        kwargs: dict[str, Any] = {"model": name, "timeout": 600}
        if base_url:
            kwargs["base_url"] = base_url
            provider = name.split("/", 1)[0] if "/" in name else "openai"
            if provider == "openai" and not os.environ.get("OPENAI_API_KEY"):
                # An OpenAI-compatible local server needs no key, but the client insists.
                kwargs["api_key"] = LOCAL_KEY_PLACEHOLDER
        try:
            return LLM(**kwargs)
        except ImportError as exc:
            raise NoModelConfigured(
                f"model {name!r} cannot be used: {exc}",
                hint="install the provider's extra (e.g. pip install 'crewai[anthropic]'), or "
                "for an OpenAI-compatible local server (llama.cpp, LM Studio, vLLM) use "
                "MODEL=openai/<model> with BASE_URL=http://host:port/v1",
            ) from None
