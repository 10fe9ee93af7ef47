"""What the flow needs from the world, as Protocols: the crew, the tests, the docs, a person.

The real ones are ``crew.CrewPhases``, ``verify.SandboxVerifier``,
``docs_check.SandboxDocsChecker`` and ``checkpoints.TerminalProvider``; a test builds the
flow with stand-ins and drives every route in process (``tests/test_flow_routing.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # the result types only; no runtime import (and no cycle)
    from darkfactory.engine.docs_check import DocsCheck
    from darkfactory.engine.verify import VerifyResult


class CrewRunner(Protocol):
    """Runs one phase's task (``config/tasks.yaml``, rendered with ``inputs``) to its end."""

    def run(self, phase: str, inputs: Mapping[str, Any]) -> str: ...


class Verifier(Protocol):
    """Runs the acceptance and unit tests and says what happened to each."""

    def verify(self, round_no: int) -> VerifyResult: ...


class DocsChecker(Protocol):
    """Builds the generated docs strictly and runs their examples."""

    def check(self, round_no: int) -> DocsCheck: ...


class FeedbackProvider(Protocol):
    """CrewAI's ``HumanFeedbackProvider``: a decision as JSON, or ``HumanFeedbackPending``."""

    def request_feedback(self, context: Any, flow: Any) -> str: ...
