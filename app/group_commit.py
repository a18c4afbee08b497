"""Group commit: commands arriving together from many callers share one database transaction.

Every ``save`` of eventsourcing on PostgreSQL takes a table lock and a commit (an fsync), so concurrent
callers mostly queue for the lock. Here the first waiting caller becomes the leader, takes every command
queued so far (up to ``max_batch``) and runs them through ``CaseApplication.execute_batch``; the others
wait for their outcome. One caller alone pays nothing extra.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from app.application import CaseApplication, CommandOutcome
from domain.commands import Command


@dataclass
class _Slot:
    command: Command
    outcome: CommandOutcome | Exception | None = None
    done: bool = field(default=False)


class GroupCommitter:
    """Thread-safe front of a ``CaseApplication`` that batches concurrent commands."""

    def __init__(self, app: CaseApplication, max_batch: int = 64) -> None:
        self._app = app
        self._max_batch = max_batch
        self._pending: list[_Slot] = []
        self._leader_busy = False
        self._changed = threading.Condition()

    def execute(self, command: Command) -> CommandOutcome:
        """Run ``command`` (possibly in a batch with others) and return its own outcome."""
        slot = _Slot(command)
        with self._changed:
            self._pending.append(slot)
        while True:
            with self._changed:
                while self._leader_busy and not slot.done:
                    self._changed.wait()
                if slot.done:
                    break
                self._leader_busy = True
                batch, self._pending = self._pending[: self._max_batch], self._pending[self._max_batch :]
            self._lead(batch)
        if isinstance(slot.outcome, Exception):
            raise slot.outcome
        assert slot.outcome is not None  # noqa: S101 — set by the leader before done
        return slot.outcome

    def _lead(self, batch: list[_Slot]) -> None:
        try:
            outcomes = self._app.execute_batch([slot.command for slot in batch])
        except Exception as error:
            outcomes = [error] * len(batch)
        with self._changed:
            for slot, outcome in zip(batch, outcomes, strict=True):
                slot.outcome, slot.done = outcome, True
            self._leader_busy = False
            self._changed.notify_all()
