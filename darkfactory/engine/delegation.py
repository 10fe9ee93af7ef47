"""The manager's delegations, guarded: arguments normalised, repeats refused, loops stopped.

``DelegationGuard`` watches one kickoff through CrewAI's tool and model-call hooks;
``run_delegating`` runs a phase once more when its manager answered without delegating.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from darkfactory.crews.delegation import MAX_NAME_CHARS, match_coworker, mend, words
from darkfactory.crews.texts import texts
from darkfactory.engine.state import Escalate
from darkfactory.reporting.trace import ASK_TOOL, DELEGATE_TOOL

#: Text of the manager's answer or task quoted in a reason or a trace event.
MAX_QUOTE_CHARS = 500
#: The same delegation (coworker and task) may run twice in a phase; the third is refused.
MAX_REPEATS = 2

#: The manager's tools (CrewAI's sanitized names) and the field holding the work asked for.
MODES = {DELEGATE_TOOL: ("delegate", "task"), ASK_TOOL: ("ask", "question")}

#: What the manager reads (``darkfactory.delegation`` in crews/prompts.json; short: every
#: refusal is in its prompt from then on). Keys are the ``delegation_refused`` reasons, and
#: ``stopped`` (a stuck phase's last tool result) and ``no_delegation`` (the reminder).
SAY = texts(
    "delegation",
    (
        "unknown_coworker",
        "ambiguous_coworker",
        "missing_task",
        "repeated",
        "limit_reached",
        "stopped",
        "no_delegation",
    ),
)


class DelegationStuck(Escalate):
    """The manager delegated more than ``max_delegations_per_phase`` times in one phase."""


class NoDelegation(Escalate):
    """The manager answered a phase twice without delegating to any coworker."""


class DelegationGuard:
    """Reviews each delegation of one kickoff's manager before CrewAI runs it.

    ``roles`` maps each coworker's role text to its role key; ``emit`` writes a trace
    event. Every delegation and question counts, refused ones too. The ``limit``-th is
    refused unrun, telling the manager to give its final answer; one more sets ``stuck``
    (the next model call is aborted). So a phase that loops ends after ``limit + 1``
    manager calls and ``limit - 1`` answers: ``2 * limit`` calls with one-call answers.
    ``delegated`` counts delegations that went to a coworker.
    """

    def __init__(
        self, *, phase: str, roles: Mapping[str, str], limit: int, emit: Callable[..., None]
    ) -> None:
        self.phase = phase
        self.roles = dict(roles)
        self.limit = limit
        self.emit = emit
        self.attempts = 0
        self.delegated = 0
        self.stuck: DelegationStuck | None = None
        self._seen: Counter[tuple[str, str, str]] = Counter()
        self._refusals: dict[int, str] = {}

    @property
    def role_list(self) -> str:
        return ", ".join(self.roles)

    def review(self, tool: str, args: dict[str, Any]) -> str | None:
        """Normalise ``args`` in place; None lets the call run, else the manager's error."""
        mode, field = MODES[tool]
        self.attempts += 1
        fixed = mend(args, field)
        given = str(args.get("coworker", ""))[:MAX_NAME_CHARS]
        text = str(args.get(field, ""))
        if self.attempts > self.limit:
            reason = (
                f"stuck: the manager delegated {self.attempts} times in phase {self.phase} "
                f"(max_delegations_per_phase={self.limit}) without finishing it; a person "
                f"should look. Its last delegation, to {given!r}: {text[:MAX_QUOTE_CHARS]!r}"
            )
            self.stuck = DelegationStuck(reason)
            self.emit("delegation_stuck", attempts=self.attempts, limit=self.limit, reason=reason)
            return SAY["stopped"].format(limit=self.limit)
        if self.attempts == self.limit:
            message = SAY["limit_reached"].format(limit=self.limit)
            return self._refuse(mode, "limit_reached", given, message)
        matches = match_coworker(given, self.roles)
        if len(matches) != 1:
            why = "unknown_coworker" if not matches else "ambiguous_coworker"
            message = SAY[why].format(
                given=given, matches=" or ".join(matches), roles=self.role_list
            )
            return self._refuse(mode, why, given, message)
        role = matches[0]
        if role != given:
            fixed.append(f"coworker {given!r} -> {role!r}")
            args["coworker"] = role
        if not text.strip():
            message = SAY["missing_task"].format(field=field, roles=self.role_list)
            return self._refuse(mode, "missing_task", given, message)
        key = (mode, role, " ".join(words(text)))
        self._seen[key] += 1
        if self._seen[key] > MAX_REPEATS:
            message = SAY["repeated"].format(n=self.attempts, limit=self.limit, role=role)
            return self._refuse(mode, "repeated", given, message)
        if fixed:
            self.emit("delegation_normalised", mode=mode, coworker=role, fixed=fixed)
        if mode == "delegate":
            self.delegated += 1
        return None

    def _refuse(self, mode: str, why: str, given: str, message: str) -> str:
        self.emit(
            "delegation_refused", mode=mode, reason=why, coworker=given, attempt=self.attempts
        )
        return message

    @contextlib.contextmanager
    def watching(self, manager: Any) -> Iterator[None]:
        """Install the hooks for one kickoff of the crew whose manager is ``manager``."""
        from crewai.hooks import (
            register_after_tool_call_hook,
            register_before_llm_call_hook,
            register_before_tool_call_hook,
            unregister_after_tool_call_hook,
            unregister_before_llm_call_hook,
            unregister_before_tool_call_hook,
        )
        from crewai.hooks.dispatch import HookAborted

        def before_tool(context: Any) -> bool | None:
            if context.agent is not manager or context.tool_name not in MODES:
                return None
            refusal = self.review(context.tool_name, context.tool_input)
            if refusal is None:
                return None
            # CrewAI answers a blocked call with a fixed text; after_tool puts ours instead.
            self._refusals[id(context.tool_input)] = refusal
            return False

        def after_tool(context: Any) -> str | None:
            return self._refusals.pop(id(context.tool_input), None)

        def before_llm(context: Any) -> None:
            if self.stuck is not None:
                raise HookAborted(str(self.stuck), source="darkfactory.engine.delegation")

        register_before_llm_call_hook(before_llm)
        register_before_tool_call_hook(before_tool)
        register_after_tool_call_hook(after_tool)
        try:
            yield
        finally:
            unregister_after_tool_call_hook(after_tool)
            unregister_before_tool_call_hook(before_tool)
            unregister_before_llm_call_hook(before_llm)


def run_delegating(
    phase: str,
    roles: Mapping[str, str],
    emit: Callable[..., None],
    kickoff: Callable[[str], tuple[str, DelegationGuard]],
) -> str:
    """Run a phase (``kickoff(reminder)``); once more with a reminder if nothing was delegated.

    A second answer without a delegation raises ``NoDelegation`` quoting it.
    """
    answer, guard = kickoff("")
    if guard.delegated:
        return answer
    emit("no_delegation", attempt=1, answer=answer[:MAX_QUOTE_CHARS])
    answer, guard = kickoff(SAY["no_delegation"].format(roles=", ".join(roles)))
    if guard.delegated:
        return answer
    emit("no_delegation", attempt=2, answer=answer[:MAX_QUOTE_CHARS])
    raise NoDelegation(
        f"the manager answered phase {phase} twice without delegating to a coworker; a "
        f"person should look. Its answer: {answer[:MAX_QUOTE_CHARS]!r}"
    )
