"""The per-case hash chain (哈希链): each event carries its own hash and the hash of the event before it.

The hash covers the event's type, case id, version, recorded-at time and every field as it was stored,
in a canonical JSON form, so an auditor can recompute it from the stored record alone and detect an
event that was altered, removed or reordered.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, date, datetime
from enum import Enum
from typing import Any
from uuid import UUID

GENESIS_HASH = "0" * 64
"""The ``previous_hash`` of a case's first event."""

NOT_HASHED_FIELDS = frozenset(
    {"originator_id", "originator_version", "timestamp", "originator_topic", "event_hash", "class_version"}
)
"""Event attributes that are either hashed separately (id, version, time) or are not content."""


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def field_names(dataclass_type: type) -> tuple[str, ...]:
    """The field names of a dataclass, looked up once per class (``dataclasses.fields`` filters the
    class's fields on every call)."""
    names = _FIELD_NAMES.get(dataclass_type)
    if names is None:
        names = _FIELD_NAMES[dataclass_type] = tuple(f.name for f in dataclasses.fields(dataclass_type))
    return names


def canonical(value: Any) -> Any:
    """A JSON-ready form of ``value`` that is the same before storing and after loading."""
    kind = type(value)
    if kind is str or kind is int or kind is bool or kind is float or value is None:
        return value  # the common case first: this runs for every field of every event
    if kind is dict:
        return {str(key): canonical(item) for key, item in value.items()}
    if kind is list or kind is tuple:
        return [canonical(item) for item in value]
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, Enum):
        return canonical(value.value)
    if hasattr(kind, "__dataclass_fields__"):  # a dataclass instance (a dataclass's own type is ``type``)
        return {name: canonical(getattr(value, name)) for name in field_names(kind)}
    if isinstance(value, Mapping):
        return {str(key): canonical(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [canonical(item) for item in value]
    return value


def event_hash(
    event_type: str, case_id: UUID, version: int, recorded_at: datetime, fields: Mapping[str, Any]
) -> str:
    """SHA-256 over the canonical form of one event; ``fields`` may hold extra keys that are not hashed."""
    content = {name: value for name, value in fields.items() if name not in NOT_HASHED_FIELDS}
    document = {
        "type": event_type,
        "case_id": str(case_id),
        "version": version,
        "recorded_at": canonical(recorded_at),
        "fields": canonical(content),
    }
    encoded = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(encoded.encode("utf-8")).hexdigest()


@dataclasses.dataclass(frozen=True)
class ChainLink:
    """One stored event as the verifier sees it."""

    event_type: str
    version: int
    recorded_at: datetime
    fields: Mapping[str, Any]


@dataclasses.dataclass(frozen=True)
class ChainVerdict:
    """The outcome of verifying a case's chain; ``first_bad_version`` is None when it is intact."""

    events_checked: int
    first_bad_version: int | None
    problem: str | None

    @property
    def intact(self) -> bool:
        return self.first_bad_version is None


def verify_chain(case_id: UUID, links: list[ChainLink]) -> ChainVerdict:
    """Recompute every hash in order; report the first event whose hash, link or position is wrong."""
    previous = GENESIS_HASH
    for expected_version, link in enumerate(links, start=1):
        if link.version != expected_version:
            return ChainVerdict(
                expected_version - 1,
                link.version,
                f"expected version {expected_version}, found {link.version}",
            )
        if link.fields.get("previous_hash") != previous:
            return ChainVerdict(
                expected_version - 1,
                link.version,
                "previous_hash does not match the hash of the event before",
            )
        recomputed = event_hash(link.event_type, case_id, link.version, link.recorded_at, link.fields)
        if link.fields.get("event_hash") != recomputed:
            return ChainVerdict(
                expected_version - 1, link.version, "stored event_hash does not match its recomputed content"
            )
        previous = recomputed
    return ChainVerdict(len(links), None, None)
