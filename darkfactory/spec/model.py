"""The one ``Spec`` model every spec format becomes."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

SpecFormat = Literal["text", "markdown", "ticket", "contract", "jsonschema", "testsuite"]


class SourceRef(BaseModel):
    """Where something came from in the spec file (1-based line)."""

    file: str
    line: int | None = None


class Requirement(BaseModel):
    id: str = Field(description="R1, R2, ... in spec order")
    text: str
    source: SourceRef | None = None
    untested_reason: str | None = Field(
        default=None,
        description="why the spec's generated tests cannot prove this requirement "
        "(it is reported as untested, never as passed)",
    )


class AcceptanceTest(BaseModel):
    """One file of the acceptance suite, at ``name`` under the run's ``acceptance/`` dir.

    Most are pytest files; a suite may also carry helper modules, a ``conftest.py`` and
    data files (an OpenAPI document, a JSON Schema). Only ``.py`` files are read for links.
    """

    name: str = Field(description="path under acceptance/, e.g. test_acceptance.py")
    content: str
    source: SourceRef | None = None


TicketKind = Literal["bug", "feature", "tests", "docs", "migrate"]
TICKET_KINDS: tuple[str, ...] = ("bug", "feature", "tests", "docs", "migrate")


class Migration(BaseModel):
    """A ``migrate`` ticket's proof: what must be gone, and what must work, at the end."""

    gone: list[str] = Field(
        default_factory=list,
        description="regular expressions that must match nowhere in the non-test .py files",
    )
    warnings_as_errors: list[str] = Field(
        default_factory=list,
        description="warning categories the suite must pass with as errors (-W error::X)",
    )
    imports: list[str] = Field(
        default_factory=list,
        description="modules that must import cleanly, these warnings as errors",
    )

    def checks(self) -> list[str]:
        """Each check as a sentence (the ticket's requirements when it states none)."""
        return [
            *(f"no match of /{p}/ is left in the code" for p in self.gone),
            *(f"the suite passes with {w} as an error" for w in self.warnings_as_errors),
            *(f"import {m} works, warnings as errors" for m in self.imports),
        ]


class RepoTarget(BaseModel):
    """The existing repository a ticket is about (``repo:`` in a ticket, or ``--repo``)."""

    repo: str = Field(
        description="a path to a git repository, or a git URL; empty: the ticket has keys "
        "for a repository and --repo names it"
    )
    base: str | None = Field(default=None, description="the ref to start from (default: HEAD)")
    kind: TicketKind = "feature"
    failing_tests: list[str] = Field(
        default_factory=list,
        description="test ids that fail at base and must pass (a bug's reproduction)",
    )
    fails_with: list[str] = Field(
        default_factory=list,
        description="a bug ticket: texts the reproduction's failure at base must show (one "
        "of them, e.g. ZeroDivisionError); empty: the exception names the ticket mentions",
    )
    test_command: list[str] | None = Field(
        default=None, description="how the repository runs its tests (argv); None: detected"
    )
    modules: list[str] = Field(
        default_factory=list,
        description="a tests ticket: the modules whose coverage must rise; a docs ticket: "
        "the modules the API reference documents (default: the project's packages)",
    )
    coverage_gain: float = Field(
        default=1.0, description="a tests ticket: percentage points the coverage must rise"
    )
    migration: Migration | None = Field(default=None, description="a migrate ticket's checks")

    def mismatch(self) -> tuple[str, str, str] | None:
        """``(message, key, hint)`` when a key does not fit the kind (checked once it is final:
        ``--kind`` may set it after the ticket was read)."""
        kind, given = self.kind, self.model_fields_set
        if kind == "migrate" and self.migration is None:
            return (
                "a migrate ticket states the check that proves the migration",
                "migration",
                "add migration: with gone: [regex], warnings_as_errors: [DeprecationWarning] "
                "or imports: [module]",
            )
        if self.migration is not None and kind != "migrate":
            return (
                f"migration is for a migrate ticket, and this one's kind is {kind}",
                "migration",
                "remove migration:, or set kind: migrate",
            )
        for key, kinds in (
            ("modules", ("tests", "docs")),
            ("coverage_gain", ("tests",)),
            ("fails_with", ("bug",)),
        ):
            if key in given and kind not in kinds:
                return (
                    f"{key} is for a {' or '.join(kinds)} ticket, and this one's kind is {kind}",
                    key,
                    f"remove {key}, or set kind: {kinds[0]}",
                )
        return None


class Spec(BaseModel):
    format: SpecFormat
    title: str
    summary: str = ""
    requirements: list[Requirement]
    acceptance_tests: list[AcceptanceTest] = Field(default_factory=list)
    contracts: list[dict[str, object]] = Field(default_factory=list)
    source: str = Field(description="path of the spec file (or test-suite directory) as given")
    files_to_create: list[str] = Field(
        default_factory=list,
        description="files the software must have for the acceptance tests to import it, "
        "relative to the project root (e.g. service.py)",
    )
    target: RepoTarget | None = Field(
        default=None, description="the existing repository to change; None: a new project"
    )
    holdout: list[str] = Field(
        default_factory=list,
        description="acceptance tests (file::name) the ticket seals: kept from every agent, "
        "run by verify (a ticket's holdout:; factory.yaml's holdout share otherwise)",
    )
    test_links: dict[str, list[str]] | None = Field(
        default=None,
        description="test key -> requirement ids, when the spec links tests itself (a test "
        "suite spec); None: links come from markers and names in the test files",
    )

    def requirements_text(self) -> str:
        """The requirements as a numbered list for prompts."""
        return "\n".join(f"- {r.id}: {r.text}" for r in self.requirements)
