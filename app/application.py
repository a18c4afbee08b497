"""The case application service: load, act, save — atomically, idempotently, retrying concurrent writes.

``CaseApplication`` is an eventsourcing ``Application`` on PostgreSQL. Each command is saved together
with its ``CommandReceipt`` in one transaction, so a command id has exactly one outcome, repeats return
it, and nothing is appended twice. A concurrent write to the same case surfaces as a version conflict;
the command is then re-decided on the fresh state, a bounded number of times.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, cast
from uuid import UUID

import psycopg
import structlog
from eventsourcing.application import AggregateNotFoundError, Application, ProcessingEvent
from eventsourcing.domain import CanMutateAggregate
from eventsourcing.persistence import (
    IntegrityError,
    InterfaceError,
    JSONTranscoder,
    OperationalError,
    Transcoding,
)
from eventsourcing.postgres import PostgresApplicationRecorder
from psycopg.conninfo import conninfo_to_dict
from psycopg.sql import SQL, Composed

from domain.case import Case
from domain.case_values import OpenStage, Pause
from domain.commands import Command, PartyCommand, SubmitApplication, case_id_for, receipt_id_for
from domain.errors import RuleViolationError
from domain.hashchain import ChainLink, ChainVerdict, verify_chain
from domain.parties import Party, PartyQualification, party_uuid_for
from domain.receipts import CommandReceipt
from domain.vocabulary import Actor

log = structlog.get_logger(__name__)

DATABASE_UNAVAILABLE: tuple[type[BaseException], ...] = (
    OperationalError,
    InterfaceError,
    psycopg.OperationalError,
    psycopg.InterfaceError,
)
"""Errors of a database that cannot be reached (restarting, gone); time cures them, retrying now does not."""


class ApplicationError(Exception):
    """Raised when the application service cannot do what was asked; base of its errors."""


class CaseNotFoundError(ApplicationError):
    """Raised when no case has the given case number."""


class ConcurrentUpdateError(ApplicationError):
    """Raised when a case kept changing under a command through every retry; retrying later resolves it."""


@dataclass(frozen=True)
class CommandOutcome:
    """What happened to a command: accepted with the case version it produced, or rejected with the rule."""

    command_id: str
    command_type: str
    case_number: str
    accepted: bool
    rule: str | None
    message: str
    case_version: int | None
    event_types: tuple[str, ...]
    repeated: bool = False

    @classmethod
    def from_receipt(cls, receipt: CommandReceipt, *, repeated: bool) -> CommandOutcome:
        return cls(
            command_id=receipt.command_id,
            command_type=receipt.command_type,
            case_number=receipt.case_number,
            accepted=receipt.accepted,
            rule=receipt.rule,
            message=receipt.message,
            case_version=receipt.case_version,
            event_types=tuple(receipt.event_types),
            repeated=repeated,
        )


class _BatchAbandonedError(Exception):
    """Raised inside a group commit to fall back to running its commands one by one."""


class FrozenDataclassAsDict(Transcoding):
    """Stores a frozen value object as a dict of its fields (used for events and snapshots)."""

    def __init__(self, cls: type[Any]) -> None:
        self.type = cls
        self.name = cls.__name__

    def encode(self, obj: Any) -> dict[str, Any]:
        return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}

    def decode(self, data: dict[str, Any]) -> Any:
        return self.type(**data)


VALUE_TYPES: tuple[type[Any], ...] = (Actor, OpenStage, Pause)
"""Domain value objects that appear in events or case snapshots."""


def postgres_env(database_url: str) -> dict[str, str]:
    """eventsourcing's PostgreSQL settings from a libpq URL (a unix-socket directory works as host)."""
    params = conninfo_to_dict(database_url)
    missing = [key for key in ("host", "dbname") if not params.get(key)]
    if missing:
        raise ApplicationError(f"DATABASE_URL lacks {', '.join(missing)}: {database_url!r}")
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": str(params["dbname"]),
        "POSTGRES_HOST": str(params["host"]),
        "POSTGRES_PORT": str(params.get("port") or 5432),
        "POSTGRES_USER": str(params.get("user") or "postgres"),
        "POSTGRES_PASSWORD": str(params.get("password") or ""),
    }


def _binary_parameters(statement: Composed) -> Composed:
    """``statement`` with its parameters sent in binary, composed once. eventsourcing sends the events to
    store as an array of a composite type in text, which psycopg quotes and escapes with regular
    expressions byte by byte (every event's JSON state included): 6 % of a command's time. The binary
    form copies them. (A composed statement is also composed again on every call.)"""
    return Composed([SQL(statement.as_string().replace("%s", "%b"))])


class CaseApplication(Application[UUID]):
    """Use cases on 业扩 cases: execute commands, read a case, its history, and verify its hash chain."""

    name = "cases"
    recorder: PostgresApplicationRecorder  # always PostgreSQL here (``application_env``)
    env: ClassVar[dict[str, str]] = {
        # Commands mutate the cached case in place under a per-case lock and evict it on any failed save;
        # writes by other processes are caught by the version conflict on save (see ``execute``).
        "AGGREGATE_CACHE_FASTFORWARD": "n",
        "DEEPCOPY_FROM_AGGREGATE_CACHE": "n",
    }
    snapshotting_intervals: ClassVar[dict[type[Any], int]] = {Case: 50}

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        *,
        clock: Callable[[], datetime] | None = None,
        command_retries: int = 5,
    ) -> None:
        super().__init__(env)
        if isinstance(self.recorder, PostgresApplicationRecorder):  # not the unit tests' in-memory one
            self.recorder.sql_invoke_pg_function_insert_events = _binary_parameters(
                self.recorder.sql_invoke_pg_function_insert_events
            )
        self._clock = clock or (lambda: datetime.now(UTC))
        self._command_retries = command_retries
        self._case_locks = [threading.Lock() for _ in range(256)]

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        for value_type in VALUE_TYPES:
            transcoder.register(FrozenDataclassAsDict(value_type))

    # ---- commands ----------------------------------------------------------------------------------

    def execute(self, command: Command) -> CommandOutcome:
        """Run one command; a repeated command id returns its original outcome and appends nothing.

        The fast path is one transaction on the cached case: the receipt's deterministic id makes a repeat
        fail to insert (only then is the earlier receipt read back), and a write by another process makes
        the case's next version conflict (then the case is reloaded and the command decided again).
        """
        receipt_id = receipt_id_for(command.command_id)
        with self._case_lock(command.case_id):
            for attempt in range(self._command_retries + 1):
                case, receipt = self._decide(command, receipt_id, fresh=attempt > 0)
                try:
                    self._save_decided([case] if case else [], receipt.collect_events())
                except IntegrityError:
                    self._forget(command.case_id)
                    earlier = self._find_receipt(receipt_id)
                    if earlier is not None:
                        return self._repeat(earlier, command)
                    log.info(
                        "command.conflict", command_id=command.command_id, case_number=command.case_number
                    )
                    time.sleep(random.uniform(0, 0.002 * (attempt + 1)))  # noqa: S311 — jitter, not secrecy
                    continue
                except BaseException:
                    self._forget(command.case_id)
                    raise
                return CommandOutcome.from_receipt(receipt, repeated=False)
        raise ConcurrentUpdateError(
            f"case {command.case_number} changed under command {command.command_id} "
            f"{self._command_retries + 1} times; retry it"
        )

    def execute_batch(self, commands: list[Command]) -> list[CommandOutcome | Exception]:
        """Run several commands in one transaction (group commit); outcomes in the same order.

        Commands are decided in order, so two commands on one case see each other. Anything unusual — a
        repeated id, a conflict, a rejection on a case the batch already changed, a database error — makes
        the batch fall back to running each command on its own, which is always correct. A database that
        cannot be reached raises (``DATABASE_UNAVAILABLE``) instead: the callers back off and retry.
        """
        ids = [command.command_id for command in commands]
        if len(commands) > 1 and len(set(ids)) == len(ids):
            stripes = sorted({self._stripe(command.case_id) for command in commands})
            with contextlib.ExitStack() as held:
                for stripe in stripes:
                    held.enter_context(self._case_locks[stripe])
                outcomes = self._try_batch(commands)
            if outcomes is not None:
                return list(outcomes)
        return [self._execute_capturing(command) for command in commands]

    def _try_batch(self, commands: list[Command]) -> list[CommandOutcome] | None:
        working: dict[UUID, Case] = {}
        receipts: list[CommandReceipt] = []
        try:
            for command in commands:
                if command.case_id in working and not isinstance(command, SubmitApplication):
                    case, receipt = self._decide(command, receipt_id_for(command.command_id), working=working)
                    if not receipt.accepted:
                        raise _BatchAbandonedError
                else:
                    case, receipt = self._decide(command, receipt_id_for(command.command_id), fresh=False)
                if case is not None:
                    working[case.id] = case
                receipts.append(receipt)
            events = [event for receipt in receipts for event in receipt.collect_events()]
            self._save_decided(list(working.values()), events)
        except Exception as error:
            for case_id in {command.case_id for command in commands}:
                self._forget(case_id)
            if isinstance(error, DATABASE_UNAVAILABLE):
                raise  # each command on its own would only wait out the same outage again
            return None
        return [CommandOutcome.from_receipt(receipt, repeated=False) for receipt in receipts]

    def _save_decided(self, cases: list[Case], receipt_events: Sequence[CanMutateAggregate[UUID]]) -> None:
        """``Application.save`` without its per-object runtime Protocol checks (a tenth of a command's CPU):
        we know exactly what we save — cases (cached after saving) and receipt events (not cached).

        A case whose new events reach a multiple of the snapshot interval is snapshotted as it stands in
        memory once saved, at its new version. (eventsourcing reads the case back from the store and
        replays it to the exact multiple: a database round trip and a replay, 7 % of the commands' time.)
        The saved case is the state the store holds at that version, which the cache relies on as well."""
        processing = ProcessingEvent[UUID]()
        interval = self.snapshotting_intervals.get(Case) if self.snapshots else None
        due: list[Case] = []
        for case in cases:
            events = case.collect_events()
            if interval and any(event.originator_version % interval == 0 for event in events):
                due.append(case)
            processing.events.extend(events)
            processing.aggregates[case.id] = case
        processing.events.extend(receipt_events)
        self._record(processing)
        if self.snapshots is not None and due:
            self.snapshots.put([Case.Snapshot.take(case) for case in due])

    def _execute_capturing(self, command: Command) -> CommandOutcome | Exception:
        try:
            return self.execute(command)
        except Exception as error:
            return error

    def _stripe(self, case_id: UUID) -> int:
        return case_id.int % len(self._case_locks)

    def _case_lock(self, case_id: UUID) -> threading.Lock:
        """Commands on one case run one at a time in this process (cached cases are mutated in place)."""
        return self._case_locks[self._stripe(case_id)]

    def _forget(self, case_id: UUID) -> None:
        """Drop a cached case whose in-memory state may be ahead of, or behind, the store."""
        with contextlib.suppress(KeyError):
            if self.repository.cache is not None:
                self.repository.cache.get(case_id, evict=True)

    def _decide(
        self,
        command: Command,
        receipt_id: UUID,
        *,
        fresh: bool = False,
        working: dict[UUID, Case] | None = None,
    ) -> tuple[Case | None, CommandReceipt]:
        """Apply the command to the case; a broken rule becomes a rejected receipt.

        The cached case may be behind another process's writes; an acceptance would then conflict on save,
        but a rejection would not, so a rejection is confirmed on the case freshly loaded from the store
        (unless the case is a batch's ``working`` copy, whose caller handles rejections itself).
        """
        recorded_at = self._clock()
        try:
            return self._accepted(command, receipt_id, recorded_at, fresh=fresh, working=working)
        except (RuleViolationError, CaseNotFoundError) as first_error:
            error = first_error
        if not fresh and working is None and self.repository.cache is not None:
            self._forget(command.case_id)
            try:
                return self._accepted(command, receipt_id, recorded_at, fresh=True)
            except (RuleViolationError, CaseNotFoundError) as confirmed:
                error = confirmed
        rule = error.rule if isinstance(error, RuleViolationError) else "CASE_NOT_FOUND"
        message = error.message if isinstance(error, RuleViolationError) else str(error)
        return None, self._receipt(
            command, receipt_id, recorded_at, accepted=False, rule=rule, message=message
        )

    def _accepted(
        self,
        command: Command,
        receipt_id: UUID,
        recorded_at: datetime,
        *,
        fresh: bool,
        working: dict[UUID, Case] | None = None,
    ) -> tuple[Case, CommandReceipt]:
        ctx = command.context(recorded_at)
        if isinstance(command, SubmitApplication):
            if fresh and self._case_exists(command.case_id):
                raise RuleViolationError("CASE_NUMBER_TAKEN", f"case {command.case_number} already exists")
            case, already_pending = command.create(ctx), 0
        else:
            case = (working or {}).get(command.case_id) or self._load(command.case_id, command.case_number)
            already_pending = len(case.pending_events)
            if isinstance(command, PartyCommand) and command.party_id.strip():
                command.execute_for(case, ctx, self.party_qualification(command.party_id.strip()))
            else:
                command.execute(case, ctx)
        receipt = self._receipt(
            command,
            receipt_id,
            recorded_at,
            accepted=True,
            rule=None,
            message="",
            case_version=case.version,
            event_types=[type(event).__name__ for event in case.pending_events[already_pending:]],
        )
        return case, receipt

    @staticmethod
    def _receipt(
        command: Command,
        receipt_id: UUID,
        recorded_at: datetime,
        *,
        accepted: bool,
        rule: str | None,
        message: str,
        case_version: int | None = None,
        event_types: list[str] | None = None,
    ) -> CommandReceipt:
        return CommandReceipt.record(
            receipt_id,
            recorded_at,
            command_id=command.command_id,
            command_type=command.command_type,
            case_number=command.case_number,
            fingerprint=command.fingerprint(),
            accepted=accepted,
            rule=rule,
            message=message,
            case_version=case_version,
            event_types=event_types or [],
        )

    def _repeat(self, receipt: CommandReceipt, command: Command) -> CommandOutcome:
        if receipt.fingerprint != command.fingerprint():
            return dataclasses.replace(
                CommandOutcome.from_receipt(receipt, repeated=True),
                accepted=False,
                rule="COMMAND_ID_REUSED",
                message=f"command id {command.command_id} was already used for a different command",
                case_version=None,
                event_types=(),
            )
        return CommandOutcome.from_receipt(receipt, repeated=True)

    def _find_receipt(self, receipt_id: UUID) -> CommandReceipt | None:
        """Read a receipt straight from the store (receipts are write-once; caching them wastes memory)."""
        events = self._stored_events(receipt_id)
        if not events:
            return None
        receipt: CommandReceipt | None = events[0].mutate(None)
        return receipt

    def _case_exists(self, case_id: UUID) -> bool:
        return bool(self.recorder.select_events(case_id, limit=1))

    def _load(self, case_id: UUID, case_number: str) -> Case:
        try:
            case: Case = self.repository.get(case_id)
        except AggregateNotFoundError:
            raise CaseNotFoundError(f"no case {case_number}") from None
        return case

    def party_qualification(self, party_id: str) -> PartyQualification | None:
        """A registered party's qualification read fresh from the store (None when not registered).

        Not from the aggregate cache: another process may have suspended or renewed the party.
        """
        party: Party | None = None
        for event in self._stored_events(party_uuid_for(party_id)):
            party = event.mutate(party)
        return party.qualification() if party is not None else None

    # ---- queries -----------------------------------------------------------------------------------

    def get_case(self, case_number: str) -> Case:
        """The current state of a case (a copy: the cached case belongs to the command path)."""
        case_id = case_id_for(case_number)
        with self._case_lock(case_id):
            case = copy.deepcopy(self._load(case_id, case_number))
        for newer in self._stored_events(case_id, gt=case.version):  # written by other processes
            mutated = newer.mutate(case)
            if mutated is None:  # eventsourcing's mutate gives None only for a discarded aggregate
                raise CaseNotFoundError(f"no case {case_number}")
            case = mutated
        return case

    def history(self, case_number: str) -> list[Case.Event]:
        """Every event of a case, oldest first (older event versions upcast)."""
        events = self._stored_events(case_id_for(case_number))
        if not events:
            raise CaseNotFoundError(f"no case {case_number}")
        return cast("list[Case.Event]", events)  # a case's originator id holds only case events

    def _stored_events(self, originator_id: UUID, gt: int | None = None) -> list[CanMutateAggregate[UUID]]:
        """One aggregate's stored events. The event store types them as bare ``DomainEventProtocol``; all
        this application stores are aggregate events (cases, parties, receipts), which can mutate."""
        return cast("list[CanMutateAggregate[UUID]]", list(self.events.get(originator_id, gt=gt)))

    def receipt(self, command_id: str) -> CommandOutcome | None:
        """The recorded outcome of a command id, if it was ever executed."""
        found = self._find_receipt(receipt_id_for(command_id))
        return CommandOutcome.from_receipt(found, repeated=True) if found else None

    def verify(self, case_number: str) -> ChainVerdict:
        """Recompute the case's hash chain from the stored records as they are in the database."""
        case_id = case_id_for(case_number)
        stored = self.recorder.select_events(case_id)
        if not stored:
            raise CaseNotFoundError(f"no case {case_number}")
        links = [self._chain_link(record.topic, record.originator_version, record.state) for record in stored]
        return verify_chain(case_id, links)

    def _chain_link(self, topic: str, version: int, state: bytes) -> ChainLink:
        fields: dict[str, Any] = self.mapper.transcoder.decode(state)
        recorded_at = fields.get("timestamp")
        if not isinstance(recorded_at, datetime):
            recorded_at = datetime.min.replace(tzinfo=UTC)
        return ChainLink(topic.rpartition(":")[2], version, recorded_at, fields)
