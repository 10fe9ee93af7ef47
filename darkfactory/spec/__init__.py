"""Spec intake: every supported format becomes one ``Spec``.

Formats (``loader`` says how each is detected): plain text and Markdown (``_prose``), YAML
and front-matter tickets (``_ticket``), OpenAPI contracts (``_openapi``), JSON Schemas
(``_jsonschema``) and existing test suites (``_testsuite``). Any of them may target an
existing repository (``Spec.target``: a ticket's ``repo:`` keys, or ``--repo``). Links from acceptance tests to
requirements: ``trace``.
"""

from darkfactory.spec.loader import detect_format, load_spec
from darkfactory.spec.model import (
    TICKET_KINDS,
    AcceptanceTest,
    RepoTarget,
    Requirement,
    SourceRef,
    Spec,
)
from darkfactory.spec.trace import requirement_links, requirement_matrix

__all__ = [
    "TICKET_KINDS",
    "AcceptanceTest",
    "RepoTarget",
    "Requirement",
    "SourceRef",
    "Spec",
    "detect_format",
    "load_spec",
    "requirement_links",
    "requirement_matrix",
]
