"""The log `crewai log-tasks-outputs` reads is a courtesy: a store that fails loses the log,
never the run."""

from __future__ import annotations

import sqlite3

import pytest
from crewai.memory.storage import kickoff_task_outputs_storage as storage
from crewai.utilities.errors import DatabaseOperationError

from darkfactory.engine.task_log import TaskOutputLog


class _Crew:
    def __init__(self) -> None:
        self.tasks: list[object] = []


def test_a_store_that_cannot_be_written_loses_only_the_log(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def locked(self: object) -> list[dict[str, object]]:
        raise DatabaseOperationError("database is locked", sqlite3.OperationalError("locked"))

    monkeypatch.setattr(storage.KickoffTaskOutputsSQLiteStorage, "load", locked)
    log = TaskOutputLog()
    with log.kept(_Crew()):  # type: ignore[arg-type]
        finished = True
    assert finished


def test_the_kickoffs_own_error_is_not_hidden_by_the_log(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def locked(self: object) -> list[dict[str, object]]:
        raise DatabaseOperationError("database is locked", sqlite3.OperationalError("locked"))

    monkeypatch.setattr(storage.KickoffTaskOutputsSQLiteStorage, "load", locked)
    with pytest.raises(RuntimeError, match="the phase failed"), TaskOutputLog().kept(_Crew()):  # type: ignore[arg-type]
        raise RuntimeError("the phase failed")
