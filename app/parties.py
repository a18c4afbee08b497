"""Use cases on the registry of design institutes and contractors (参建单位名录), sharing the case store.

Each registry command is saved with its ``CommandReceipt`` in one transaction, like a case command: a
command id has exactly one outcome, a repeat returns it. Party events live in the case application's
event store but are not case events, so the relay does not publish them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, ClassVar, cast
from uuid import UUID

from eventsourcing.persistence import IntegrityError

from app.application import CaseApplication, CommandOutcome, ConcurrentUpdateError
from domain.commands import receipt_id_for
from domain.errors import RuleViolationError
from domain.hashchain import canonical
from domain.parties import Party, PartyQualification, party_uuid_for
from domain.receipts import CommandReceipt
from domain.vocabulary import Actor

PARTY_REGISTERED_TOPIC = f"{Party.Registered.__module__}:{Party.Registered.__qualname__}"


@dataclass(frozen=True, kw_only=True)
class PartyCommand:
    """Base of registry commands: which party, which command, who, when, why."""

    command_id: str
    party_id: str
    actor: Actor
    occurred_at: datetime
    reason: str = ""

    creates_party: ClassVar[bool] = False

    @property
    def command_type(self) -> str:
        return type(self).__name__

    def fingerprint(self) -> str:
        content = {"type": self.command_type, **canonical(dataclasses.asdict(self))}
        encoded = json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(encoded.encode()).hexdigest()

    def provenance(self, recorded_at: datetime) -> dict[str, Any]:
        return {
            "actor": self.actor,
            "occurred_at": self.occurred_at,
            "recorded_at": recorded_at,
            "command_id": self.command_id,
            "reason": self.reason,
        }


@dataclass(frozen=True, kw_only=True)
class RegisterParty(PartyCommand):
    """登记参建单位."""

    kind: str
    name: str
    level: str
    expires_on: date
    creates_party: ClassVar[bool] = True


@dataclass(frozen=True, kw_only=True)
class RenewQualification(PartyCommand):
    """资质延续."""

    level: str
    expires_on: date


@dataclass(frozen=True, kw_only=True)
class SuspendParty(PartyCommand):
    """暂停参建单位 (reason)."""


class PartyRegistry:
    """Register, renew and suspend parties; read them back. Shares ``app``'s store and transactions."""

    def __init__(self, app: CaseApplication) -> None:
        self.app = app

    def execute(self, command: PartyCommand, *, retries: int = 5) -> CommandOutcome:
        """Run one registry command; a repeated command id returns its first outcome. A concurrent change
        of the same party makes the command be decided again on its new state, ``retries`` times."""
        receipt_id = receipt_id_for(command.command_id)
        earlier = self.app._find_receipt(receipt_id)
        if earlier is not None:
            return self._repeat(earlier, command)
        recorded_at = self.app._clock()
        party: Party | None = None
        try:
            party = self._decide(command, recorded_at)
            receipt = self._receipt(command, recorded_at, party=party)
        except RuleViolationError as error:
            party = None
            receipt = self._receipt(command, recorded_at, rule=error.rule, message=error.message)
        try:
            if party is not None:
                self.app.save(party, receipt)
            else:
                self.app.save(receipt)
        except IntegrityError:
            again = self.app._find_receipt(receipt_id)
            if again is not None:
                return self._repeat(again, command)
            if retries <= 0:
                raise ConcurrentUpdateError(
                    f"party {command.party_id} kept changing under command {command.command_id}; retry it"
                ) from None
            return self.execute(command, retries=retries - 1)
        return CommandOutcome.from_receipt(receipt, repeated=False)

    def get(self, party_id: str) -> Party | None:
        """The party's current state read from the store (None when not registered)."""
        return self._fold(party_uuid_for(party_id))

    def _fold(self, party_uuid: UUID) -> Party | None:
        party: Party | None = None
        for event in self.app.events.get(party_uuid):
            party = cast(Party.Event, event).mutate(party)
        return party

    def qualification(self, party_id: str) -> PartyQualification | None:
        return self.app.party_qualification(party_id)

    def all(self) -> list[Party]:
        """Every registered party, ordered by party id."""
        recorder = self.app.recorder
        with recorder.datastore.get_connection() as conn, conn.cursor() as cursor:
            table = recorder.events_table_name
            cursor.execute(
                f"SELECT originator_id FROM {table} WHERE topic = %s",  # noqa: S608 — our table name
                (PARTY_REGISTERED_TOPIC,),
            )
            ids = [row["originator_id"] for row in cursor.fetchall()]
        parties = [party for party in map(self._fold, ids) if party is not None]
        return sorted(parties, key=lambda p: p.party_id)

    def _decide(self, command: PartyCommand, recorded_at: datetime) -> Party:
        existing = self.get(command.party_id.strip()) if command.party_id.strip() else None
        if isinstance(command, RegisterParty):
            if existing is not None:
                raise RuleViolationError(
                    "PARTY_ALREADY_REGISTERED", f"party {command.party_id} is registered already"
                )
            return Party.register(
                party_id=command.party_id,
                kind=command.kind,
                name=command.name,
                level=command.level,
                expires_on=command.expires_on,
                **command.provenance(recorded_at),
            )
        if existing is None:
            raise RuleViolationError("PARTY_NOT_REGISTERED", f"no registered party {command.party_id!r}")
        if isinstance(command, RenewQualification):
            existing.renew(
                level=command.level, expires_on=command.expires_on, **command.provenance(recorded_at)
            )
        elif isinstance(command, SuspendParty):
            existing.suspend(**command.provenance(recorded_at))
        else:
            raise TypeError(f"not a registry command: {command.command_type}")
        return existing

    @staticmethod
    def _receipt(
        command: PartyCommand,
        recorded_at: datetime,
        *,
        party: Party | None = None,
        rule: str | None = None,
        message: str = "",
    ) -> CommandReceipt:
        return CommandReceipt.record(
            receipt_id_for(command.command_id),
            recorded_at,
            command_id=command.command_id,
            command_type=command.command_type,
            case_number=command.party_id,
            fingerprint=command.fingerprint(),
            accepted=party is not None,
            rule=rule,
            message=message,
            case_version=party.version if party is not None else None,
            event_types=[type(e).__name__ for e in party.pending_events] if party is not None else [],
        )

    @staticmethod
    def _repeat(receipt: CommandReceipt, command: PartyCommand) -> CommandOutcome:
        outcome = CommandOutcome.from_receipt(receipt, repeated=True)
        if receipt.fingerprint != command.fingerprint():
            return dataclasses.replace(
                outcome,
                accepted=False,
                rule="COMMAND_ID_REUSED",
                message=f"command id {command.command_id} was already used for a different command",
                case_version=None,
                event_types=(),
            )
        return outcome
