"""The event store's notification log read as published case-event messages (relay, rebuild, replay).

One read path serves the relay, ``yekuo projections rebuild``, what-if and the audit API. It reads the
stored events table in pages with plain SQL and decodes each record's JSON with orjson **straight into the
canonical field values** a ``CaseEventMessage`` carries, instead of building a domain event object through
eventsourcing's generic transcoder and then flattening it again with ``canonical``. The result is the same
message, field for field (``tests/integration/test_replay_path.py`` compares both on a generated history):

- the transcodings are the store's: ``datetime_iso``, ``uuid_hex``, ``decimal_str`` and the value objects
  of ``VALUE_TYPES`` (stored as a dict of their fields);
- the upcasting rules are the store's: a record older than its class's ``class_version`` goes through the
  same ``upcast_vN_vN+1`` functions, which therefore must work on JSON-shaped values (they do: they set
  defaults);
- a record the fast decoder does not know (an unregistered ``_type_``), or a store with a cipher or a
  compressor configured, goes through eventsourcing's mapper as before.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from functools import cache
from typing import Any, TypeVar
from uuid import UUID

import orjson
from eventsourcing.persistence import InterfaceError, Notification, OperationalError
from eventsourcing.utils import resolve_topic, retry
from psycopg.rows import tuple_row
from pydantic import BaseModel

from app.application import VALUE_TYPES, CaseApplication
from app.bootstrap import build_case_application
from domain.case import Case
from domain.privacy import mask_personal_data
from infra.messages import (
    _ENVELOPE_FIELDS,
    CASE_EVENT_TOPIC_PREFIX,
    ActorModel,
    CaseEventMessage,
    case_event_message,
    case_event_message_from_fields,
    event_id_for,
)
from infra.settings import Settings


def _canonical_fields(stored: dict[str, Any]) -> dict[str, Any]:
    """``canonical_from_json`` of a decoded record's top-level fields, changing ``stored`` in place (it
    is the decoder's own): scalar fields, most of them, are left as they are."""
    for key, item in stored.items():
        if type(item) in _CONTAINERS:
            stored[key] = canonical_from_json(item)
    return stored


class UnknownTranscodingError(Exception):
    """A stored value whose ``_type_`` the fast decoder does not know (decoded by the mapper instead)."""


def _utc_iso(text: str) -> str:
    if text.endswith("+00:00"):
        return text  # stored from a UTC datetime: already what canonical() gives
    return datetime.fromisoformat(text).astimezone(UTC).isoformat()


_VALUE_OBJECTS = frozenset(value_type.__name__ for value_type in VALUE_TYPES)
_CONTAINERS = (dict, list)
"""What orjson gives besides scalars (str, int, float, bool, None, which are their own canonical form)."""


def canonical_from_json(value: Any) -> Any:
    """The canonical form (``domain.hashchain.canonical``) of a value as eventsourcing's JSON transcoder
    stored it, without building the objects in between."""
    kind = type(value)
    if kind is dict:
        type_name = value.get("_type_")
        if type_name is not None and len(value) == 2 and "_data_" in value:
            data = value["_data_"]
            if type_name == "datetime_iso":
                return _utc_iso(data)
            if type_name in _VALUE_OBJECTS:
                return {
                    key: canonical_from_json(item) if type(item) in _CONTAINERS else item
                    for key, item in data.items()
                }
            if type_name == "uuid_hex":
                return str(UUID(data))
            if type_name == "decimal_str":
                return Decimal(data)
            raise UnknownTranscodingError(type_name)
        return {
            key: canonical_from_json(item) if type(item) in _CONTAINERS else item
            for key, item in value.items()
        }
    if kind is list:
        return [canonical_from_json(item) if type(item) in _CONTAINERS else item for item in value]
    return value


@cache
def _event_class(topic: str) -> type[Case.Event]:
    return resolve_topic(topic)  # type: ignore[no-any-return]


@cache
def _type_name(topic: str) -> str:
    """The type a case event of ``topic`` is published with (its class's name, as resolved by the store)."""
    return _event_class(topic).__name__


def _upcast(event_type: type[Case.Event], fields: dict[str, Any]) -> None:
    """The store's upcasting rule (eventsourcing's ``Mapper.to_domain_event``), on the stored fields."""
    class_version = getattr(event_type, "class_version", 1)
    from_version = fields.pop("class_version", 1)
    while from_version < class_version:
        upcast: Callable[[dict[str, Any]], None] = getattr(
            event_type, f"upcast_v{from_version}_v{from_version + 1}"
        )
        upcast(fields)
        from_version += 1


_UNREAD_ENVELOPE = ("timestamp", "occurred_at", "originator_id", "originator_topic")
"""Stored fields the message takes from elsewhere (the times parsed as stored, the record's columns):
not transcoded. No upcaster reads them (they set payload defaults)."""

_object_setattr = object.__setattr__
_Model = TypeVar("_Model", bound=BaseModel)


def _plain(model: type[BaseModel]) -> bool:
    """Whether ``model_construct`` of ``model`` only sets ``__dict__`` and the fields set (no extras, no
    private attributes, no post-init), so that ``_constructed`` builds the same instance."""
    return (
        model.model_config.get("extra") != "allow"
        and not model.__pydantic_post_init__
        and not model.__private_attributes__
        and not model.__pydantic_root_model__
    )


def _constructed(model: type[_Model], values: dict[str, Any], fields_set: frozenset[str]) -> _Model:
    """What ``model.model_construct(**values)`` gives for ``values`` holding every field in declaration
    order, without its per-field loop (a third of the decoding time)."""
    instance = model.__new__(model)
    _object_setattr(instance, "__dict__", values)
    _object_setattr(instance, "__pydantic_fields_set__", set(fields_set))
    _object_setattr(instance, "__pydantic_extra__", None)
    _object_setattr(instance, "__pydantic_private__", None)
    return instance


_MESSAGE_FIELDS = (
    "schema_", "event_id", "case_id", "case_number", "case_version", "type", "type_version", "occurred_at",
    "recorded_at", "actor", "channel", "reason", "command_id", "payload", "hash", "previous_hash", "position",
)  # fmt: skip
_FAST_CONSTRUCT = (
    _plain(CaseEventMessage)
    and _plain(ActorModel)
    and tuple(CaseEventMessage.model_fields) == _MESSAGE_FIELDS
    and tuple(ActorModel.model_fields) == ("person_id", "name", "department")
)
"""The shortcut holds for the models as they are; a changed model falls back to ``model_construct``."""
_MESSAGE_SET = frozenset(CaseEventMessage.model_fields) - {"schema_"}  # the schema is its default
_ACTOR_SET = frozenset(ActorModel.model_fields)
_SCHEMA = CaseEventMessage.model_fields["schema_"].default


def message_from_fields(
    event_type: type[Case.Event],
    case_id: UUID,
    version: int,
    fields: dict[str, Any],
    case_number: str,
    position: int,
    *,
    occurred_at: datetime,
    recorded_at: datetime,
) -> CaseEventMessage:
    """``infra.messages.case_event_message_from_fields``, field for field, built without
    ``model_construct`` (``tests/integration/test_replay_path.py`` compares the messages)."""
    if not _FAST_CONSTRUCT:
        return case_event_message_from_fields(
            event_type,
            case_id,
            version,
            fields,
            case_number,
            position,
            occurred_at=occurred_at,
            recorded_at=recorded_at,
        )
    actor = fields["actor"]
    payload = mask_personal_data({k: v for k, v in fields.items() if k not in _ENVELOPE_FIELDS})
    values = {
        "schema_": _SCHEMA,
        "event_id": event_id_for(case_id, version),
        "case_id": case_id,
        "case_number": case_number,
        "case_version": version,
        "type": event_type.__name__,
        "type_version": getattr(event_type, "class_version", 1),
        "occurred_at": occurred_at,
        "recorded_at": recorded_at,
        "actor": _constructed(
            ActorModel,
            {"person_id": actor["person_id"], "name": actor["name"], "department": actor["department"]},
            _ACTOR_SET,
        ),
        "channel": fields["channel"],
        "reason": fields["reason"],
        "command_id": fields["command_id"],
        "payload": payload,
        "hash": fields["event_hash"],
        "previous_hash": fields["previous_hash"],
        "position": position,
    }
    return _constructed(CaseEventMessage, values, _MESSAGE_SET)


class CaseEventLog:
    """Reads case events in log order and converts them to ``CaseEventMessage``."""

    def __init__(self, app: CaseApplication, *, cache_size: int = 100_000, fast: bool = True) -> None:
        """``fast=False`` decodes every record through eventsourcing's mapper (the generic path: the
        reference the fast one is tested and measured against)."""
        self.app = app
        self.fast = fast
        self.cache_size = cache_size
        self._case_numbers: OrderedDict[UUID, str] = OrderedDict()

    def head(self) -> int:
        """Position of the newest notification (0 for an empty store)."""
        return self.app.recorder.max_notification_id() or 0

    def read(
        self, after: int, limit: int, types: Collection[str] | None = None
    ) -> tuple[list[CaseEventMessage], int]:
        """Up to ``limit`` notifications after ``after``: their case events (only those whose type is in
        ``types``, when given: the others are not decoded), and the last position read."""
        rows = self._select_page(after, limit)
        if not rows:
            return [], after
        messages = [
            self._decode(position, case_id, version, topic, state)
            for position, case_id, version, topic, state in rows
            if topic.startswith(CASE_EVENT_TOPIC_PREFIX) and (types is None or _type_name(topic) in types)
        ]
        return messages, rows[-1][0]

    # The store's own retry rule for its reads: after a PostgreSQL restart each pooled connection fails
    # once and is dropped, so a few quick retries get a fresh one instead of a back-off per stale connection.
    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def _select_page(self, after: int, limit: int) -> list[tuple[Any, ...]]:
        recorder = self.app.recorder
        with recorder.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as cursor:
            cursor.execute(
                f"SELECT notification_id, originator_id, originator_version, topic, state "
                f"FROM {recorder.events_table_name} WHERE notification_id > %s "
                f"ORDER BY notification_id LIMIT %s",
                (after, limit),
            )
            return cursor.fetchall()

    def read_all(
        self,
        after: int = 0,
        until: int | None = None,
        batch: int = 10_000,
        types: Collection[str] | None = None,
    ) -> Iterator[tuple[list[CaseEventMessage], int]]:
        """Batches of the log after ``after`` up to ``until`` (default: the head when called); with
        ``types``, only events of those types (what-if needs only what the SLA tracker follows)."""
        until = self.head() if until is None else until
        position = after
        while position < until:
            messages, position = self.read(position, min(batch, until - position), types)
            yield messages, position

    def read_cases(
        self, low: UUID | None, high: UUID | None, until: int, batch: int = 10_000
    ) -> Iterator[list[CaseEventMessage]]:
        """Batches of the case events at log positions up to ``until`` of the cases with ``low <= case_id
        < high`` (None: unbounded), **case by case** and each case's in version order (the table's primary
        key order, so a case's events are contiguous and a reader knows when one is complete): what a
        parallel rebuild's worker applies. Per-case projections give the same rows as in log order."""
        after: tuple[UUID, int] = (low or UUID(int=0), 0)
        while True:
            rows = self._select_cases(after, high, until, batch)
            if not rows:
                return
            yield [
                self._decode(position, case_id, version, topic, state)
                for position, case_id, version, topic, state in rows
                if topic.startswith(CASE_EVENT_TOPIC_PREFIX)
            ]
            after = (rows[-1][1], rows[-1][2])

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def _select_cases(
        self, after: tuple[UUID, int], high: UUID | None, until: int, limit: int
    ) -> list[tuple[Any, ...]]:
        recorder = self.app.recorder
        bounded = "AND originator_id < %(high)s " if high is not None else ""
        with recorder.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as cursor:
            cursor.execute(
                f"SELECT notification_id, originator_id, originator_version, topic, state "
                f"FROM {recorder.events_table_name} "
                f"WHERE (originator_id, originator_version) > (%(case)s, %(version)s) {bounded}"
                f"AND notification_id <= %(until)s "
                f"ORDER BY originator_id, originator_version LIMIT %(limit)s",
                {"case": after[0], "version": after[1], "high": high, "until": until, "limit": limit},
            )
            return cursor.fetchall()

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
        return [self._message(self._case_event(item), item.id) for item in stored]

    def _message(self, event: Case.Event, position: int) -> CaseEventMessage:
        return case_event_message(event, self._case_number(event), position)

    def _decode(
        self, position: int, case_id: UUID, version: int, topic: str, state: bytes
    ) -> CaseEventMessage:
        """One stored case event as its message: the fast decoder, else eventsourcing's mapper."""
        mapper = self.app.mapper
        if self.fast and mapper.cipher is None and mapper.compressor is None:
            stored = orjson.loads(state)
            try:
                # The envelope's times as stored (their offset kept, as the mapper keeps it); every other
                # field in canonical form.
                occurred_at = datetime.fromisoformat(stored["occurred_at"]["_data_"])
                recorded_at = datetime.fromisoformat(stored["timestamp"]["_data_"])
                for name in _UNREAD_ENVELOPE:
                    stored.pop(name, None)
                fields = _canonical_fields(stored)
            except UnknownTranscodingError:
                pass
            else:
                event_type = _event_class(topic)
                _upcast(event_type, fields)
                submitted = fields["case_number"] if event_type is Case.ApplicationSubmitted else None
                return message_from_fields(
                    event_type,
                    case_id,
                    version,
                    fields,
                    self._case_number_of(case_id, submitted),
                    position,
                    occurred_at=occurred_at,
                    recorded_at=recorded_at,
                )
        notification = Notification(
            id=position, originator_id=case_id, originator_version=version, topic=topic, state=state
        )
        return self._message(self._case_event(notification), position)

    def _case_event(self, stored: Any) -> Case.Event:
        """A stored record through the store's mapper (upcasters and transcodings), as a case event."""
        event = self.app.mapper.to_domain_event(stored)
        if not isinstance(event, Case.Event):
            raise TypeError(f"not a case event in the case store: {type(event).__name__}")
        return event

    def _case_number(self, event: Case.Event) -> str:
        submitted = event.case_number if isinstance(event, Case.ApplicationSubmitted) else None
        return self._case_number_of(event.originator_id, submitted)

    def _case_number_of(self, case_id: UUID, submitted: str | None) -> str:
        """The case number: from the case's ApplicationSubmitted when that is the event at hand, else from
        a bounded cache, else from the case's first stored event."""
        if submitted is None:
            cached = self._case_numbers.get(case_id)
            if cached is not None:
                self._case_numbers.move_to_end(case_id)
                return cached
            first: Sequence[object] = self.app.recorder.select_events(case_id, lte=1)
            event = self._case_event(first[0])
            if not isinstance(event, Case.ApplicationSubmitted):
                raise TypeError(f"case {case_id} does not begin with ApplicationSubmitted")
            submitted = event.case_number
        self._case_numbers[case_id] = submitted
        if len(self._case_numbers) > self.cache_size:
            self._case_numbers.popitem(last=False)
        return submitted


@dataclass(frozen=True)
class CaseRangeReader:
    """``projections.rebuild.ReadCases`` for a parallel rebuild's worker processes (picklable): each call
    builds its own case application on ``database_url`` and reads the range through the fast path."""

    settings: Settings
    database_url: str

    def __call__(self, low: UUID | None, high: UUID | None, until: int) -> Iterator[list[CaseEventMessage]]:
        app = build_case_application(self.settings, self.database_url, create_tables=False)
        try:
            yield from CaseEventLog(app).read_cases(low, high, until)
        finally:
            app.close()
