"""The registry of design institutes and contractors (设计单位/施工单位名录) as event-sourced aggregates.

A party (参建单位) is registered once under its unified social credit code (统一社会信用代码), with its
kind, name, qualification level and the date its qualification expires. Its qualification can be renewed
and the party can be suspended (暂停). A case's design submission, mid-inspection request and completion
report name the party doing the work; the application service reads the party's ``PartyQualification``
and passes it to the case, and ``check_named_party`` decides whether that party may do that step.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate

from domain.calendar import SHANGHAI
from domain.errors import RuleViolationError
from domain.vocabulary import LABELS, Actor, LabelledEnum

PARTY_ID_NAMESPACE = uuid5(NAMESPACE_URL, "urn:yekuo:party")


def party_uuid_for(party_id: str) -> UUID:
    """Party ids (credit codes) are unique because the aggregate's id is derived from them."""
    return uuid5(PARTY_ID_NAMESPACE, party_id)


class PartyKind(LabelledEnum):
    """Kind of outside party: design institute (设计单位) or construction contractor (施工单位)."""

    DESIGN_INSTITUTE = "DESIGN_INSTITUTE"
    CONTRACTOR = "CONTRACTOR"


LABELS.update({PartyKind.DESIGN_INSTITUTE: "设计单位", PartyKind.CONTRACTOR: "施工单位"})

QUALIFICATION_LEVELS: dict[PartyKind, dict[str, str]] = {
    PartyKind.DESIGN_INSTITUTE: {
        "GRADE_A": "设计资质甲级",
        "GRADE_B": "设计资质乙级",
        "GRADE_C": "设计资质丙级",
    },
    PartyKind.CONTRACTOR: {
        f"CLASS_{n}": f"承装(修、试)电力设施许可证{label}级"
        for n, label in zip(range(1, 6), "一二三四五", strict=True)
    },
}
"""Qualification levels each kind may hold: code → Chinese name of the licence or certificate."""

CONTRACTOR_MAX_KV: dict[str, float | None] = {
    "CLASS_1": None,
    "CLASS_2": 330.0,
    "CLASS_3": 110.0,
    "CLASS_4": 35.0,
    "CLASS_5": 10.0,
}
"""The highest supply voltage each contractor licence class may build for (承装(修、试)电力设施许可证
管理办法: 一级 any voltage, 二级 330 kV, 三级 110 kV, 四级 35 kV, 五级 10 kV and below). Design
certificate grades are not matched to voltages yet."""


def voltage_kv(text: str) -> float | None:
    """A supply voltage such as ``10kV`` or ``380V`` in kV (None when it cannot be read)."""
    cleaned = text.strip().upper().replace(" ", "")
    for unit, scale in (("KV", 1.0), ("V", 0.001)):
        if cleaned.endswith(unit):
            try:
                return float(cleaned[: -len(unit)]) * scale
            except ValueError:
                return None
    return None


@dataclass(frozen=True)
class PartyQualification:
    """What a case needs to know of a party: kind, level, expiry date, and whether it is suspended."""

    party_id: str
    name: str
    kind: PartyKind
    level: str
    expires_on: date
    suspended: bool


def _reject(rule: str, message: str) -> RuleViolationError:
    return RuleViolationError(rule, message)


def check_named_party(
    party_id: str,
    party: PartyQualification | None,
    needed: PartyKind,
    occurred_at: datetime,
    supply_voltage: str = "",
) -> str:
    """The id of the party named for a step of kind ``needed`` at ``occurred_at``, if it may do it.

    No party named ("") is allowed (the customer's own submission, and histories from before the
    registry); a named party must be registered, of the right kind, not suspended, licensed for the
    case's supply voltage (contractors), and qualified on the day (Asia/Shanghai) the step occurred.
    """
    named = party_id.strip()
    if not named:
        return ""
    if party is None or party.party_id != named:
        raise _reject("PARTY_NOT_REGISTERED", f"no registered party {named!r}")
    if party.kind is not needed:
        raise _reject(
            "PARTY_NOT_QUALIFIED",
            f"{party.name} ({named}) is a {party.kind.label}; this step needs a {needed.label}",
        )
    if party.suspended:
        raise _reject("PARTY_SUSPENDED", f"{party.name} ({named}) is suspended")
    limit = CONTRACTOR_MAX_KV.get(party.level) if party.kind is PartyKind.CONTRACTOR else None
    voltage = voltage_kv(supply_voltage)
    if limit is not None and voltage is not None and voltage > limit:
        raise _reject(
            "PARTY_LEVEL_INSUFFICIENT",
            f"{party.name} ({named}) holds {QUALIFICATION_LEVELS[party.kind][party.level]}, "
            f"good for {limit:g} kV and below; this case is supplied at {supply_voltage}",
        )
    day = occurred_at.astimezone(SHANGHAI).date()
    if day > party.expires_on:
        raise _reject(
            "PARTY_QUALIFICATION_EXPIRED",
            f"{party.name} ({named}): qualification expired on {party.expires_on.isoformat()}, "
            f"before {day.isoformat()}",
        )
    return named


def _check_level(kind: PartyKind, level: str) -> str:
    if level not in QUALIFICATION_LEVELS[kind]:
        raise _reject(
            "QUALIFICATION_LEVEL_INVALID",
            f"a {kind.label} holds one of {', '.join(QUALIFICATION_LEVELS[kind])}; not {level!r}",
        )
    return level


def _check_kind(kind: str) -> PartyKind:
    if kind not in PartyKind.__members__:
        raise _reject("PARTY_KIND_UNKNOWN", f"kind {kind!r} is not one of {', '.join(PartyKind)}")
    return PartyKind(kind)


class Party(Aggregate):
    """A registered design institute or contractor (参建单位)."""

    class Event(Aggregate.Event):
        """Base of party events: who recorded it, when it happened, why, and the command."""

        actor: Actor
        occurred_at: datetime
        reason: str
        command_id: str

    class Registered(Event, Aggregate.Created):
        """参建单位已登记."""

        party_id: str
        kind: str
        name: str
        level: str
        expires_on: str

        def apply(self, aggregate: Any) -> None:
            aggregate.party_id = self.party_id
            aggregate.kind_code = self.kind
            aggregate.name = self.name
            aggregate.level = self.level
            aggregate.expires_on_text = self.expires_on
            aggregate.suspended = False

    class QualificationRenewed(Event):
        """资质已延续: a new level and expiry date."""

        level: str
        expires_on: str

        def apply(self, aggregate: Any) -> None:
            aggregate.level = self.level
            aggregate.expires_on_text = self.expires_on

    class Suspended(Event):
        """已暂停承接业务 (reason)."""

        def apply(self, aggregate: Any) -> None:
            aggregate.suspended = True

    if TYPE_CHECKING:
        party_id: str
        kind_code: str
        name: str
        level: str
        expires_on_text: str
        suspended: bool

    @property
    def kind(self) -> PartyKind:
        return PartyKind(self.kind_code)

    @property
    def expires_on(self) -> date:
        return date.fromisoformat(self.expires_on_text)

    def qualification(self) -> PartyQualification:
        return PartyQualification(
            self.party_id, self.name, self.kind, self.level, self.expires_on, self.suspended
        )

    @staticmethod
    def _provenance(actor: Actor, occurred_at: datetime, reason: str, command_id: str) -> dict[str, Any]:
        if occurred_at.tzinfo is None or occurred_at.utcoffset() is None:
            raise _reject("TIMEZONE_REQUIRED", "occurred_at must carry a time zone")
        return {"actor": actor, "occurred_at": occurred_at, "reason": reason, "command_id": command_id}

    @classmethod
    def register(
        cls,
        *,
        party_id: str,
        kind: str,
        name: str,
        level: str,
        expires_on: date,
        actor: Actor,
        occurred_at: datetime,
        recorded_at: datetime,
        command_id: str,
        reason: str = "",
    ) -> Party:
        """登记参建单位: a credit code, a kind, a name and a valid qualification level of that kind."""
        if not party_id.strip():
            raise _reject("PARTY_ID_REQUIRED", "a party is registered under its unified social credit code")
        if not name.strip():
            raise _reject("PARTY_NAME_REQUIRED", "a party needs a name")
        party_kind = _check_kind(kind)
        _check_level(party_kind, level)
        return cls._create(
            cls.Registered,
            id=party_uuid_for(party_id.strip()),
            timestamp=recorded_at,
            party_id=party_id.strip(),
            kind=party_kind.value,
            name=name.strip(),
            level=level,
            expires_on=expires_on.isoformat(),
            **cls._provenance(actor, occurred_at, reason, command_id),
        )

    def renew(
        self,
        *,
        level: str,
        expires_on: date,
        actor: Actor,
        occurred_at: datetime,
        recorded_at: datetime,
        command_id: str,
        reason: str = "",
    ) -> None:
        """资质延续: a level of the party's kind and an expiry date later than the current one."""
        _check_level(self.kind, level)
        if expires_on <= self.expires_on:
            raise _reject(
                "RENEWAL_NOT_LATER",
                f"a renewal must end after the current expiry {self.expires_on.isoformat()}",
            )
        self.trigger_event(
            Party.QualificationRenewed,
            timestamp=recorded_at,
            level=level,
            expires_on=expires_on.isoformat(),
            **self._provenance(actor, occurred_at, reason, command_id),
        )

    def suspend(
        self, *, actor: Actor, occurred_at: datetime, recorded_at: datetime, command_id: str, reason: str
    ) -> None:
        """暂停: the party takes no new steps on any case until further notice; a reason is required."""
        if self.suspended:
            raise _reject("PARTY_ALREADY_SUSPENDED", f"{self.name} is suspended already")
        if not reason.strip():
            raise _reject("REASON_REQUIRED", "a suspension must state a reason")
        self.trigger_event(
            Party.Suspended,
            timestamp=recorded_at,
            **self._provenance(actor, occurred_at, reason, command_id),
        )
