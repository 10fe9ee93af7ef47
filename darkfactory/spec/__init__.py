"""Spec intake: every supported format becomes one ``Spec``."""

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
