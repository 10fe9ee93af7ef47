"""Spec intake: every supported format becomes one ``Spec``.

Formats (``loader`` says how each is detected): plain text and Markdown (``_prose``), YAML
and front-matter tickets (``_ticket``), OpenAPI contracts (``_openapi``), JSON Schemas
(``_jsonschema``) and existing test suites (``_testsuite``). Links from acceptance tests to
requirements: ``trace``.
"""

from darkfactory.spec.loader import detect_format, load_spec
from darkfactory.spec.model import AcceptanceTest, Requirement, SourceRef, Spec
from darkfactory.spec.trace import requirement_links, requirement_matrix

__all__ = [
    "AcceptanceTest",
    "Requirement",
    "SourceRef",
    "Spec",
    "detect_format",
    "load_spec",
    "requirement_links",
    "requirement_matrix",
]
