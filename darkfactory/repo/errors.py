"""Why a repository cannot be worked on: each an ``InputError`` (exit code 2) saying what to do.

A user's repository is refused before any run directory exists; the message names the
repository, the ref, the file or the config key, and the hint how to go on.
"""

from __future__ import annotations

from darkfactory.errors import InputError


class RepoError(InputError):
    """The repository, its base ref or its size rules out a run on it."""


class NotAPythonProject(RepoError):
    """No Python project in the repository, or it is mostly another language."""


class RepoSettingsError(RepoError):
    """The repository's ``.darkfactory.yaml`` is invalid."""


class EnvironmentFailed(RepoError):
    """The repository's dependencies could not be downloaded as wheels or installed."""
