"""``darkfactory doctor``: is this machine ready to run the factory, and if not, what to fix.

The checks, in order: the config, each configured model, the sandbox backends, the docs toolchain."""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from darkfactory.cli._common import Subparsers, load_dotenv
from darkfactory.errors import ExitCode, InputError, NoModelConfigured
from darkfactory.sandbox import check_backends

if TYPE_CHECKING:
    from darkfactory.config import Config
    from darkfactory.models import ModelPlan

PING_TOOL = {
    "type": "function",
    "function": {
        "name": "ping",
        "description": "Answers pong. Call it to show that you can call tools.",
        "parameters": {"type": "object", "properties": {}, "required": []},
    },
}
PING_MESSAGES = [
    {
        "role": "user",
        "content": "This is a connectivity check. Call the tool `ping` (it takes no arguments).",
    }
]
DOCS_MODULES = {
    "mkdocs": "mkdocs",
    "material": "mkdocs-material",
    "mkdocstrings": "mkdocstrings[python]",
}


@dataclass
class Check:
    """One line of the doctor's answer."""

    name: str
    status: str  # ok | warn | skip | FAIL
    detail: str
    fix: str = ""


def add_parser(subparsers: Subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "doctor",
        help="check the model, the sandbox and the docs toolchain; say what to fix",
        description="Check that the configured model answers and calls tools (one tiny "
        "call), that a sandbox backend works and that the docs toolchain is installed. "
        "Exit 0 when nothing failed, 2 otherwise.",
    )
    p.add_argument("--config", type=Path, default=None, help="config directory")
    p.add_argument("--model", default=None, help="check this model instead of the configured one")
    p.add_argument(
        "--timeout",
        type=float,
        default=None,
        metavar="S",
        help="seconds the model check may take (default: llm.timeout_s, at most 60)",
    )
    p.add_argument("--json", action="store_true", help="print the checks as JSON")
    return p


def run(args: argparse.Namespace) -> int:
    """Print each check (``ok``, ``warn``, ``skip`` or ``FAIL``, and how to fix it); exit 0 when
    nothing failed (warnings allowed), else 2."""
    load_dotenv()
    checks = run_checks(config_dir=args.config, model=args.model, timeout_s=args.timeout)
    failed = any(c.status == "FAIL" for c in checks)
    if args.json:
        print(json.dumps({"ok": not failed, "checks": [asdict(c) for c in checks]}, indent=2))
    else:
        for c in checks:
            print(f"{c.status:4}  {c.name}: {c.detail}")
            if c.fix:
                print(f"      fix: {c.fix}")
        print("all good" if not failed else "some checks failed: fix them and run doctor again")
    return int(ExitCode.BAD_INPUT if failed else ExitCode.DELIVERED)


def run_checks(
    *, config_dir: Path | None = None, model: str | None = None, timeout_s: float | None = None
) -> list[Check]:
    """Every check, in order (nothing printed)."""
    from darkfactory.config import load_config  # pydantic: not for --help

    try:
        config = load_config(config_dir)
    except InputError as exc:
        return [
            Check("config", "FAIL", str(exc), "fix the file named above"),
            *check_sandbox(None),
            check_docs(),
        ]
    checks = [Check("config", "ok", f"{config.dir} ({len(config.agents)} roles)")]
    checks += check_models(config, model, timeout_s)
    checks += check_sandbox(config)
    checks.append(check_docs())
    return checks


# -- models ------------------------------------------------------------------------------
def check_models(config: Config, cli_model: str | None, timeout_s: float | None) -> list[Check]:
    """One check per distinct model of the config's roles."""
    from darkfactory.models import ModelPlan  # the model layer: not for --help

    plan = ModelPlan(config, cli_model=cli_model)
    by_model: dict[str, list[str]] = {}
    try:
        for role in config.agents:
            by_model.setdefault(plan.model_name(role), []).append(role)
    except NoModelConfigured as exc:
        return [Check("model", "FAIL", exc.message, exc.hint or "")]
    limit = timeout_s or min(config.factory.llm.timeout_s, 60.0)
    return [check_model(plan, name, roles, timeout_s=limit) for name, roles in by_model.items()]


def check_model(plan: ModelPlan, name: str, roles: list[str], *, timeout_s: float) -> Check:
    """Whether model ``name`` answers, and calls tools: one tiny call, no retries (a scripted
    or replay model is skipped: nothing is reached)."""
    from darkfactory.models import check_model_usable, is_provider_model  # not for --help
    from darkfactory.models.secrets import redact_secrets

    label = f"model {name} ({', '.join(roles) if len(roles) < len(plan.config.agents) else 'every role'})"
    if not is_provider_model(name):
        kind = (
            "scripted model (a playbook, not AI)"
            if name.startswith("scripted:")
            else ("replay of a recorded run")
        )
        try:
            plan.llm_for(roles[0])  # the playbook or cassette loads and is valid
        except InputError as exc:
            return Check(label, "FAIL", str(exc), "fix the file named above")
        return Check(label, "skip", f"{kind}: nothing to reach, no tool support to check")
    try:
        check_model_usable(name)
        llm = _provider_llm(plan, name, timeout_s)
    except InputError as exc:
        return Check(label, "FAIL", exc.message, exc.hint or "")
    started = time.monotonic()
    try:
        result = _ping(llm)
    except Exception as exc:
        return _failed(label, name, exc, timeout_s)
    took = time.monotonic() - started
    if isinstance(result, list) and result:
        return Check(label, "ok", f"reachable, answered in {took:.1f}s, calls tools natively")
    if isinstance(result, str) and result.strip():
        if llm.supports_function_calling():
            detail = f"reachable, answered in {took:.1f}s, but did not call the offered tool"
        else:
            detail = (
                f"reachable, answered in {took:.1f}s; CrewAI does not use native tool calls with it"
            )
        return Check(
            label,
            "warn",
            redact_secrets(detail),
            "the agents will use CrewAI's text format for tools (slower, less reliable); "
            "a model with function calling works better",
        )
    return Check(
        label,
        "FAIL",
        f"reachable, but answered with nothing in {took:.1f}s",
        "check that the model name is one the server serves",
    )


def _provider_llm(plan: ModelPlan, name: str, timeout_s: float) -> Any:
    from darkfactory.models.guarded import GuardedLLM, RetryPolicy  # not for --help

    inner = plan._provider_llm(name, timeout_s=timeout_s)
    return GuardedLLM(inner, model=name, policy=RetryPolicy(max_retries=0))


def _ping(llm: Any) -> Any:
    from crewai.events import crewai_event_bus  # CrewAI (seconds): only when a model is called

    from darkfactory.models.secrets import redacted_logs

    # CrewAI prints a panel for a failed call (from its event handlers' threads, hence the
    # flush) and logs the error; the doctor says it better, once, and no key is logged.
    with redacted_logs(), contextlib.redirect_stdout(io.StringIO()):
        try:
            if llm.supports_function_calling():
                return llm.call(PING_MESSAGES, tools=[PING_TOOL])
            return llm.call(PING_MESSAGES)
        finally:
            crewai_event_bus.flush()


def _failed(label: str, name: str, exc: Exception, timeout_s: float) -> Check:
    from darkfactory.models import BASE_URL_ENV_VARS, PROVIDER_KEYS  # not for --help
    from darkfactory.models.faults import classify
    from darkfactory.models.guarded import ProviderError
    from darkfactory.models.secrets import redact_secrets

    reason = exc.reason if isinstance(exc, ProviderError) else None
    if reason is None:
        fault = classify(exc)
        reason = fault.reason if fault is not None else type(exc).__name__
    base_url = next((os.environ[n] for n in BASE_URL_ENV_VARS if os.environ.get(n)), None)
    provider = name.split("/", 1)[0] if "/" in name else "openai"
    keys = " or ".join(PROVIDER_KEYS.get(provider, (f"{provider.upper()}_API_KEY",)))
    if reason == "connection failed":
        where = f"BASE_URL={base_url}" if base_url else f"the {provider} API"
        fix = f"nothing answers at {where}: start the server, or correct BASE_URL"
    elif reason == "timed out":
        fix = f"no answer within {timeout_s:g}s: check the server, or raise llm.timeout_s"
    elif reason in ("HTTP 401", "HTTP 403"):
        fix = f"the provider refused the key: check {keys}"
    elif reason == "HTTP 404":
        fix = f"the provider does not know model {name.split('/', 1)[-1]!r}: check MODEL"
    elif reason == "HTTP 429":
        fix = "rate-limited or out of quota: check your plan, or try again later"
    else:
        fix = "see the error above; docs/troubleshooting.md lists the usual causes"
    detail = redact_secrets(f"not usable ({reason}): {exc}")
    return Check(label, "FAIL", detail[:500], fix)


# -- sandbox and docs --------------------------------------------------------------------
def check_sandbox(config: Config | None) -> list[Check]:
    """The configured backend works (auto: docker or bwrap); the others, for information."""
    image = config.factory.sandbox.image if config is not None else None
    wanted = config.factory.sandbox.backend if config is not None else "auto"
    problems = check_backends(image)
    fixes = {
        "docker": "start the docker engine and build the image: darkfactory sandbox build-image",
        "bwrap": "install bubblewrap: apt-get install bubblewrap",
    }
    checks = []
    for backend, problem in problems.items():
        if backend == "local":
            continue
        if problem is None:
            checks.append(Check(f"sandbox {backend}", "ok", "works"))
            continue
        if wanted == backend:
            checks.append(Check(f"sandbox {backend}", "FAIL", problem, fixes.get(backend, "")))
        else:  # not the configured one: for information
            checks.append(Check(f"sandbox {backend}", "warn", problem))
    if wanted == "auto":
        usable = [b for b in ("docker", "bwrap") if problems.get(b) is None]
        checks.append(
            Check(
                "sandbox auto",
                "ok" if usable else "FAIL",
                f"will use {usable[0]}" if usable else "neither docker nor bwrap works here",
                ""
                if usable
                else "install bubblewrap (apt-get install bubblewrap), or start docker and "
                "build the image: darkfactory sandbox build-image",
            )
        )
    elif wanted == "local":
        checks.append(
            Check(
                "sandbox local",
                "warn",
                "generated code runs as a plain subprocess: no isolation",
                "use bwrap or docker unless you trust the code",
            )
        )
    return checks


def check_docs() -> Check:
    """mkdocs, the material theme and mkdocstrings are importable (the docs check builds)."""
    missing = [pkg for mod, pkg in DOCS_MODULES.items() if importlib.util.find_spec(mod) is None]
    if missing:
        return Check(
            "docs toolchain",
            "FAIL",
            f"not installed: {', '.join(missing)}",
            f"pip install {' '.join(repr(m) for m in missing)} (or pip install -e .)",
        )
    return Check("docs toolchain", "ok", "mkdocs, mkdocs-material and mkdocstrings importable")
