"""The one ``Spec`` model every spec format becomes."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

SpecFormat = Literal["text", "markdown", "ticket"]


class SourceRef(BaseModel):
    """Where something came from in the spec file (1-based line)."""

    file: str
    line: int | None = None


class Requirement(BaseModel):
    id: str = Field(description="R1, R2, ... in spec order")
    text: str
    source: SourceRef | None = None


class AcceptanceTest(BaseModel):
    """One acceptance-test file. ``name`` is its path under the run's ``acceptance/`` dir."""

    name: str = Field(description="file name, e.g. test_acceptance.py")
    content: str
    source: SourceRef | None = None


class Spec(BaseModel):
    format: SpecFormat
    title: str
    summary: str = ""
    requirements: list[Requirement]
    acceptance_tests: list[AcceptanceTest] = Field(default_factory=list)
    contracts: list[dict[str, object]] = Field(default_factory=list)
    source: str = Field(description="path of the spec file as given")

    def requirements_text(self) -> str:
        """The requirements as a numbered list for prompts."""
        return "\n".join(f"- {r.id}: {r.text}" for r in self.requirements)
