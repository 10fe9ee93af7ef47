"""Spec intake: every supported format becomes one ``Spec``."""

from darkfactory.spec.model import AcceptanceTest, Requirement, SourceRef, Spec

__all__ = ["AcceptanceTest", "Requirement", "SourceRef", "Spec"]
