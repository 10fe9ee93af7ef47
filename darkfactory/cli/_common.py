"""What every command shares: reading ``.env``."""

from __future__ import annotations

from pathlib import Path


def load_dotenv() -> None:
    """Read ``.env`` from the working directory (never overriding the real environment)."""
    from dotenv import load_dotenv as _load  # python-dotenv, as CrewAI reads it

    _load(Path.cwd() / ".env", override=False)
