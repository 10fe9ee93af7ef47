"""Playbooks: the script a scripted model follows (a test and rehearsal tool, not AI).

A playbook is a YAML file::

    version: 1
    description: what this rehearsal shows
    roles:
      manager:                      # a key of config/agents.yaml
        - delegate: {to: architect, task: "Write DESIGN.md", context: "..."}
        - answer: "The design is done."
      architect:
        - tool: write_file
          args: {path: DESIGN.md, content: "..."}
          expect: "Write DESIGN.md"   # optional: the prompt must contain this text
        - answer: "DESIGN.md written."

Each role has an ordered list of steps; each time an agent with that role asks the model,
the next step is played. A step is exactly one of:

- ``tool: NAME`` with ``args: {...}``: call a tool the agent has;
- ``delegate: {to: ROLE, task: TEXT, context: TEXT}``: the manager delegates to a coworker
  (``to`` is a role key such as ``developer``, or the role's text);
- ``ask: {to: ROLE, question: TEXT, context: TEXT}``: the manager asks a coworker;
- ``answer: TEXT``: the agent's final answer;
- ``raw: TEXT``: this exact text as the model's reply, parsed or not (robustness tests:
  garbage, a misspelt tool, broken JSON).

Optional keys on any step: ``thought`` (text shown as the model's reasoning), ``expect``
(a string, or list of strings, that the prompt must contain — a rehearsal fails loudly when
the pipeline did not hand the agent what the playbook expected) and ``delay_s`` (seconds
the model takes to answer, to rehearse a slow provider, budgets on time, or a kill).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from darkfactory.errors import PlaybookError
from darkfactory.yamlio import load_yaml, pydantic_errors


class Delegation(BaseModel):
    model_config = ConfigDict(extra="forbid")
    to: str = Field(description="the coworker: a role key of agents.yaml or the role's text")
    task: str
    context: str = ""


class Question(BaseModel):
    model_config = ConfigDict(extra="forbid")
    to: str
    question: str
    context: str = ""


class Step(BaseModel):
    """One scripted model answer."""

    model_config = ConfigDict(extra="forbid")
    tool: str | None = None
    args: dict[str, Any] = Field(default_factory=dict)
    delegate: Delegation | None = None
    ask: Question | None = None
    answer: str | None = None
    raw: str | None = None
    thought: str | None = None
    expect: str | list[str] | None = None
    delay_s: float = Field(default=0.0, ge=0, le=600)
    #: The finish reason the call reports, e.g. ``content_filter`` (a provider's refusal).
    finish_reason: str | None = Field(default=None, max_length=40)

    @model_validator(mode="after")
    def _exactly_one(self) -> Step:
        kinds = [
            k for k in ("tool", "delegate", "ask", "answer", "raw") if getattr(self, k) is not None
        ]
        if len(kinds) != 1:
            raise ValueError(
                "a step needs exactly one of tool, delegate, ask, answer, raw"
                + (f" (found {', '.join(kinds)})" if kinds else "")
            )
        if self.args and self.tool is None:
            raise ValueError("'args' goes with 'tool'")
        return self

    @property
    def kind(self) -> Literal["tool", "delegate", "ask", "answer", "raw"]:
        for k in ("tool", "delegate", "ask", "answer", "raw"):
            if getattr(self, k) is not None:
                return k  # type: ignore[return-value,unused-ignore]
        raise AssertionError("validated step has a kind")

    @property
    def expectations(self) -> list[str]:
        if self.expect is None:
            return []
        return [self.expect] if isinstance(self.expect, str) else list(self.expect)


class Playbook(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: Literal[1] = 1
    description: str = ""
    roles: dict[str, list[Step]]
    #: Where the playbook was read from (not part of the file).
    path: str = Field(default="", exclude=True)


def load_playbook(path: str | Path, *, roles: set[str] | None = None) -> Playbook:
    """Read and validate a playbook; errors name the file, the step and its line.

    ``roles``: the role keys of agents.yaml; a playbook role outside it is an error.
    """
    data, locs = load_yaml(path, error=PlaybookError)
    if not isinstance(data, dict):
        raise PlaybookError(
            "a playbook is a mapping with a 'roles' key",
            file=path,
            hint="see docs/models.md#playbooks for the format",
        )
    try:
        book = Playbook.model_validate(data)
    except ValidationError as exc:
        raise pydantic_errors(exc, file=path, locs=locs, error=PlaybookError) from None
    book.path = str(path)
    if roles is not None:
        for name in book.roles:
            if name not in roles:
                raise PlaybookError(
                    f"unknown role {name!r}",
                    file=path,
                    line=locs.line_of(("roles", name)),
                    key=f"roles.{name}",
                    hint=f"roles are the keys of config/agents.yaml: {', '.join(sorted(roles))}",
                )
    return book
