"""Every phase's task output where ``crewai log-tasks-outputs`` reads them (CrewAI's kickoff
store), not only the last phase's: CrewAI empties that store at each kickoff."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from crewai import Crew, Task


class TaskOutputLog:
    """The run's task outputs so far, written back to CrewAI's store after each kickoff.

    A resumed run starts a new log: it lists the phases since it resumed.
    """

    def __init__(self) -> None:
        #: (task, its output as CrewAI stored it, the kickoff's inputs), in the order run.
        self._kept: list[tuple[Task, dict[str, Any], dict[str, Any]]] = []

    @contextmanager
    def kept(self, crew: Crew) -> Iterator[None]:
        """Around ``crew.kickoff()``: afterwards the store holds this run's phases, this one
        last (the tasks it finished, if it raised)."""
        try:
            yield
        finally:
            self._write_back(crew)

    def _write_back(self, crew: Crew) -> None:
        """Only the log ``crewai log-tasks-outputs`` shows: a store that cannot be written (a
        read-only home, a database another run holds) loses that log, never the run (its
        record is trace.jsonl)."""
        from crewai.utilities.errors import DatabaseOperationError

        with suppress(DatabaseOperationError):
            self._rewrite(crew)

    def _rewrite(self, crew: Crew) -> None:
        # The store's file is CrewAI's own: the project folder's (or CREWAI_STORAGE_DIR).
        from crewai.memory.storage.kickoff_task_outputs_storage import (
            KickoffTaskOutputsSQLiteStorage,
        )

        store = KickoffTaskOutputsSQLiteStorage()
        tasks = {str(task.id): task for task in crew.tasks}
        # What this kickoff stored; rows of any other kickoff are not this run's.
        for row in store.load():
            task = tasks.get(row["task_id"])
            if task is not None:
                self._kept.append((task, row["output"], row["inputs"]))
        store.delete_all()
        for index, (task, output, inputs) in enumerate(self._kept):
            store.add(task, output, index, inputs=inputs)
