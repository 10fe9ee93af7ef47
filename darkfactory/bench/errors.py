"""The bench's one error: a suite or command line it will not run (exit code 2)."""

from __future__ import annotations

from darkfactory.errors import InputError


class BenchError(InputError):
    """The suite or the bench command line is wrong (exit code 2, nothing is run)."""
