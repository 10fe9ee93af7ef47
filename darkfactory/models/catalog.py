"""Whether a provider has a model of that name: asked once per provider and run, before any work.

``ModelCatalog.check`` answers from the provider's model list (``GET /models`` of an
OpenAI-compatible API) or its model lookup (Anthropic, Gemini: aliases resolve there).
"""

from __future__ import annotations

import difflib
import http.client
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from darkfactory.errors import InputError
from darkfactory.models.secrets import redact_secrets

#: Seconds one request to a provider's model list may take.
CHECK_TIMEOUT_S = 5.0
#: Where each provider's API is when no ``BASE_URL`` says otherwise (tests point them at 127.0.0.1).
API_URLS: dict[str, str] = {
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com/v1",
    "gemini": "https://generativelanguage.googleapis.com/v1beta",
    "deepseek": "https://api.deepseek.com/v1",
    "openrouter": "https://openrouter.ai/api/v1",
    "groq": "https://api.groq.com/openai/v1",
    "ollama": "http://localhost:11434/v1",
    "hosted_vllm": "http://localhost:8000/v1",
}
#: The ``anthropic-version`` header of Anthropic's API.
ANTHROPIC_VERSION = "2023-06-01"
#: CrewAI's prefixes for the same provider.
ALIASES = {"claude": "anthropic", "google": "gemini", "ollama_chat": "ollama"}
#: Providers with an OpenAI-compatible ``GET /models``, and the variables that hold their key.
OPENAI_COMPATIBLE: dict[str, tuple[str, ...]] = {
    "openai": ("OPENAI_API_KEY",),
    "deepseek": ("DEEPSEEK_API_KEY",),
    "openrouter": ("OPENROUTER_API_KEY",),
    "groq": ("GROQ_API_KEY",),
    "ollama": (),
    "hosted_vllm": (),
}


class UnknownModel(InputError):
    """The provider answered, and it has no model of that name."""


@dataclass(frozen=True)
class NameCheck:
    """What the provider said about one model name."""

    model: str
    #: True: it has the model; False: it has not; None: not known (``note`` says why).
    known: bool | None
    #: Where it was asked and what it answered, or why it could not be asked.
    note: str
    #: The provider's names closest to ``model``, as model strings (``openai/gpt-4o-mini``).
    close: tuple[str, ...] = ()
    #: False: the provider was not asked (not a provider's model, or no known way to ask).
    asked: bool = True


def http_get(url: str, headers: Mapping[str, str], timeout_s: float) -> tuple[int, Any]:
    """(HTTP status, the body as JSON or None); ``OSError`` when nothing answers."""
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise ValueError(f"not an http(s) URL: {url}")
    request = urllib.request.Request(url, headers={"Accept": "application/json", **headers})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        return status, json.loads(raw or b"null")
    except ValueError:
        return status, None


class _NotChecked(Exception):
    """The list could not be had; the text says why."""


@dataclass
class ModelCatalog:
    """The model lists of the providers a run uses, each fetched at most once."""

    timeout_s: float = CHECK_TIMEOUT_S
    api_urls: Mapping[str, str] = field(default_factory=lambda: dict(API_URLS))
    _lists: dict[str, list[str] | _NotChecked] = field(default_factory=dict)

    def check(self, model: str, *, base_url: str | None = None) -> NameCheck:
        """Whether the provider of ``model`` (a CrewAI model string) has it; ``base_url``:
        the server every model is reached at (``BASE_URL``), if one is set."""
        prefix, name = model.split("/", 1) if "/" in model else ("", model)
        provider = ALIASES.get(prefix, prefix) if prefix else _bare_provider(name)
        if provider in OPENAI_COMPATIBLE:
            return self._check_listed(model, provider, name, base_url)
        if base_url:
            where = f"BASE_URL={_shown(base_url)}"
            return NameCheck(model, None, f"{where} serves {provider}", asked=False)
        if provider in ("anthropic", "gemini"):
            return self._check_looked_up(model, provider, name)
        return NameCheck(model, None, f"no known model list for {provider}", asked=False)

    # -- OpenAI-compatible: the list ------------------------------------------------------
    def _check_listed(
        self, model: str, provider: str, name: str, base_url: str | None
    ) -> NameCheck:
        base = base_url or self.api_urls[provider]
        if provider == "ollama":  # its own address, OpenAI-compatible under /v1
            base = _v1(base_url or os.environ.get("OLLAMA_HOST") or base)
        url = f"{base.rstrip('/')}/models"
        keys = OPENAI_COMPATIBLE[provider]
        key = next((os.environ[k] for k in keys if os.environ.get(k)), None)
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        try:
            names = self._list(url, headers, lambda body: _ids(body, "data", "id"))
        except _NotChecked as why:
            return NameCheck(model, None, str(why))
        if not names:
            return NameCheck(model, None, f"GET {_shown(url)} lists no models")
        if name in names or (provider == "ollama" and f"{name}:latest" in names):
            return NameCheck(model, True, f"listed by GET {_shown(url)}")
        return self._unknown(model, name, names, f"GET {_shown(url)} lists {len(names)} models")

    # -- Anthropic and Gemini: a lookup (aliases resolve), the list for close names --------
    def _check_looked_up(self, model: str, provider: str, name: str) -> NameCheck:
        base = self.api_urls[provider].rstrip("/")
        one_url = f"{base}/models/{urllib.parse.quote(name)}"
        if provider == "anthropic":
            key = os.environ.get("ANTHROPIC_API_KEY", "")
            headers = {"x-api-key": key, "anthropic-version": ANTHROPIC_VERSION}
            list_url, items, field_name = f"{base}/models?limit=1000", "data", "id"
        else:
            key = os.environ.get("GEMINI_API_KEY") or os.environ.get("GOOGLE_API_KEY") or ""
            headers = {"x-goog-api-key": key}
            list_url, items, field_name = f"{base}/models?pageSize=1000", "models", "name"
        try:
            status, _ = self._fetch(one_url, headers)
        except _NotChecked as why:
            return NameCheck(model, None, str(why))
        where = f"GET {_shown(one_url)} answered HTTP {status}"
        if 200 <= status < 300:
            return NameCheck(model, True, f"found by GET {_shown(one_url)}")
        if status != 404:  # 400 (Gemini's bad key), 401, 403, 429, 5xx: it could not say
            return NameCheck(model, None, where)
        try:
            names = self._list(
                list_url,
                headers,
                lambda body: [n.removeprefix("models/") for n in _ids(body, items, field_name)],
            )
        except _NotChecked:
            names = []  # it has no such model; only the suggestions are missing
        return self._unknown(model, name, names, where)

    # -- plumbing -------------------------------------------------------------------------
    def _fetch(self, url: str, headers: Mapping[str, str]) -> tuple[int, Any]:
        try:
            return http_get(url, headers, self.timeout_s)
        # Unreachable, refused, timed out, cut off, a bad URL: the provider did not say.
        except (OSError, ValueError, http.client.HTTPException) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise _NotChecked(redact_secrets(f"GET {_shown(url)} failed: {reason}")) from None

    def _list(
        self, url: str, headers: Mapping[str, str], parse: Callable[[Any], list[str]]
    ) -> list[str]:
        if url not in self._lists:
            try:
                status, body = self._fetch(url, headers)
                if status != 200:
                    raise _NotChecked(f"GET {_shown(url)} answered HTTP {status}")
                self._lists[url] = parse(body)
            except _NotChecked as why:
                self._lists[url] = why
        found = self._lists[url]
        if isinstance(found, _NotChecked):
            raise found
        return found

    @staticmethod
    def _unknown(model: str, name: str, names: list[str], where: str) -> NameCheck:
        prefix = model[: len(model) - len(name)]
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
        return NameCheck(model, False, where, tuple(f"{prefix}{c}" for c in close))


def _bare_provider(name: str) -> str:
    """The provider CrewAI picks for a name without a prefix (its own guess, simplified)."""
    if name.startswith("claude"):
        return "anthropic"
    if name.startswith("gemini"):
        return "gemini"
    return "openai"


def _v1(url: str) -> str:
    """An Ollama address as its OpenAI-compatible API (``http://host:11434`` -> ``.../v1``)."""
    if "://" not in url:
        url = f"http://{url}"
    return url if url.rstrip("/").endswith("/v1") else url.rstrip("/") + "/v1"


def _ids(body: Any, items: str, key: str) -> list[str]:
    entries = body.get(items) if isinstance(body, dict) else None
    if not isinstance(entries, list):
        raise _NotChecked("the model list is not in the expected form")
    return [str(e[key]) for e in entries if isinstance(e, dict) and e.get(key)]


def _shown(url: str) -> str:
    """``url`` as a message shows it: no user or password (a ``BASE_URL`` may hold one), no
    query."""
    parts = urllib.parse.urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))
