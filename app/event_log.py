"""The event store's notification log read as published case-event messages (relay, rebuild, replay)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Sequence
from uuid import UUID

from eventsourcing.persistence import Notification

from app.application import CaseApplication
from domain.case import Case
from infra.messages import CASE_EVENT_TOPIC_PREFIX, CaseEventMessage, case_event_message


class CaseEventLog:
    """Reads case events in log order and converts them to ``CaseEventMessage``."""

    def __init__(self, app: CaseApplication, *, cache_size: int = 100_000) -> None:
        self.app = app
        self.cache_size = cache_size
        self._case_numbers: OrderedDict[UUID, str] = OrderedDict()

    def head(self) -> int:
        """Position of the newest notification (0 for an empty store)."""
        return self.app.recorder.max_notification_id() or 0

    def read(self, after: int, limit: int) -> tuple[list[CaseEventMessage], int]:
        """Up to ``limit`` notifications after ``after``: their case events, and the last position read."""
        notifications = self.app.recorder.select_notifications(
            start=after, limit=limit, inclusive_of_start=False
        )
        messages = [
            self._message(self.app.mapper.to_domain_event(n), n.id)
            for n in notifications
            if n.topic.startswith(CASE_EVENT_TOPIC_PREFIX)
        ]
        return messages, notifications[-1].id if notifications else after

    def read_all(
        self, after: int = 0, until: int | None = None, batch: int = 10_000
    ) -> Iterator[tuple[list[CaseEventMessage], int]]:
        """Batches of the log after ``after`` up to ``until`` (default: the head when called)."""
        until = self.head() if until is None else until
        position = after
        while position < until:
            messages, position = self.read(position, min(batch, until - position))
            yield messages, position

    def history(self, case_id: UUID) -> list[CaseEventMessage]:
        """One case's events with their log positions."""
        recorder = self.app.recorder
        with recorder.datastore.get_connection() as conn, conn.cursor() as cursor:
            cursor.execute(
                f"SELECT originator_id, originator_version, topic, state, notification_id AS id "
                f"FROM {recorder.events_table_name} WHERE originator_id = %s ORDER BY originator_version",
                (case_id,),
            )
            stored = [Notification(**row) for row in cursor.fetchall()]
        return [self._message(self.app.mapper.to_domain_event(item), item.id) for item in stored]

    def _message(self, event: Case.Event, position: int) -> CaseEventMessage:
        return case_event_message(event, self._case_number(event), position)

    def _case_number(self, event: Case.Event) -> str:
        case_id = event.originator_id
        if isinstance(event, Case.ApplicationSubmitted):
            number = event.case_number
        elif case_id in self._case_numbers:
            self._case_numbers.move_to_end(case_id)
            return self._case_numbers[case_id]
        else:
            first: Sequence[object] = self.app.recorder.select_events(case_id, lte=1)
            number = self.app.mapper.to_domain_event(first[0]).case_number  # type: ignore[arg-type]
        self._case_numbers[case_id] = number
        if len(self._case_numbers) > self.cache_size:
            self._case_numbers.popitem(last=False)
        return number
