"""Intake consumer (接入): commands from integrating systems on ``yekuo.intake.v1`` → the case application.

Each batch of messages (``take_events``) goes through ``IntakeProcessor.process``: a message over the size
limit is dead-lettered unread; one that does not decode or validate as an ``IntakeEnvelope`` is
dead-lettered with the reason; the source system is authorised by ``infra/source_systems``; the command
is built by ``app.command_payloads.build_command`` (message id = command id, channel = the source
system's); the valid commands of the batch run through ``CaseApplication.execute_batch`` (one group
commit). Then one result per message goes to ``yekuo.intake-results.v1`` and dead letters to
``yekuo.intake.dlq.v1``, and only then does faust acknowledge the batch.

"Outcome durable before the offset commit" means: a command's receipt (its outcome) is committed in
PostgreSQL, with the events it appended, before its result is published, and its result is delivered
(acks=all) before its offset can be committed. A kill -9 at any moment therefore redelivers at most
messages whose offsets were not committed; running them again finds their receipts (``repeated``) and
publishes the same outcome again, so no effect is doubled — the results topic may carry an outcome twice,
always the same one (consumers of results deduplicate by message id). Authorisation refusals and invalid
messages write nothing, and are decided again identically.

Transient database errors (the database restarting, a case that kept changing) are retried with a
bounded backoff; nothing is acknowledged meanwhile. A database outage is an ``Outage`` of ``postgres``
(``consumers/backoff.py``): one warning when it starts, one line when it ends, and the process's readiness
file ``STATE_DIR/health/intake-<group>-<pid>.json`` says not ready while it lasts. A broker outage is an
``Outage`` of ``kafka``, noticed by ``BrokerProbe``; results not acknowledged are sent again. After a
restart that lost the broker's data, the intake recreates its topics, drops (does not acknowledge) a
batch that was in flight when the group forgot its member, and reads partitions without a committed
offset from their beginning (docs/reliability.md). The consumer never stops on bad input.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

import faust
import structlog
from aiokafka import errors as aiokafka_errors
from faust.types import EventT
from kafka import KafkaAdminClient
from pydantic import ValidationError

from app.application import CaseApplication, CommandOutcome, ConcurrentUpdateError
from app.command_payloads import (
    InvalidCommandError,
    build_command,
    command_class,
)
from consumers import faust_transport
from consumers.backoff import (
    STALE_AFTER,
    TRANSIENT_BROKER_ERRORS,
    TRANSIENT_DATABASE_ERRORS,
    Health,
    Outage,
)
from domain.commands import Command
from domain.vocabulary import Actor
from infra.database_errors import DATABASE_UNREACHABLE
from infra.intake_messages import (
    IntakeDeadLetter,
    IntakeEnvelope,
    IntakeResult,
    mask_text,
    masked_original,
    now_utc,
)
from infra.kafka_admin import ensure_topics
from infra.settings import INTAKE_DLQ_TOPIC, INTAKE_RESULTS_TOPIC, INTAKE_TOPIC, Settings
from infra.source_systems import SourceSystems

log = structlog.get_logger("yekuo.intake")

INTAKE_GROUP = "yekuo-intake"
DLQ_KEEP_BYTES = 4096
"""How much of an oversize message the dead letter keeps."""

INTAKE_TOPICS = (INTAKE_TOPIC, INTAKE_RESULTS_TOPIC, INTAKE_DLQ_TOPIC)
BROKER_PROBE_SECONDS = 1.0
"""How often the intake asks the broker for its topics (its readiness for ``kafka``)."""
SEND_ERRORS: tuple[type[BaseException], ...] = (*TRANSIENT_BROKER_ERRORS, aiokafka_errors.KafkaError)

TRANSIENT_ERRORS: tuple[type[Exception], ...] = (*DATABASE_UNREACHABLE, ConcurrentUpdateError)
"""What a batch backs off from and tries again: the database unreachable, or a case that kept changing."""


@dataclass(frozen=True)
class Received:
    """One message as delivered by the broker."""

    value: bytes | None
    key: bytes | None
    partition: int
    offset: int
    topic: str = INTAKE_TOPIC


@dataclass
class Decided:
    """What to publish for one received message: its result and/or its dead letter (in input order)."""

    key: bytes
    result: IntakeResult | None = None
    dead_letter: IntakeDeadLetter | None = None


@dataclass
class IntakeCounters:
    """What the processor has seen; read by tests and logged."""

    messages: int = 0
    accepted: int = 0
    refused: int = 0
    invalid: int = 0
    dead_letters: int = 0
    dead_letters_by_rule: dict[str, int] = field(default_factory=dict)
    retries: int = 0


class IntakeProcessor:
    """Decides the outcome of each intake message; runs commands through the case application."""

    def __init__(
        self,
        app: CaseApplication,
        source_systems: SourceSystems,
        *,
        max_message_bytes: int,
        consumer: str = INTAKE_GROUP,
        clock: Callable[[], datetime] = now_utc,
        sleep: Callable[[float], None] = time.sleep,
        max_delay: float = 5.0,
        outage: Outage | None = None,
    ) -> None:
        self.app = app
        self.source_systems = source_systems
        self.max_message_bytes = max_message_bytes
        self.consumer = consumer
        self.clock = clock
        self.sleep = sleep
        self.max_delay = max_delay
        self.outage = outage
        self.counters = IntakeCounters()

    # ---- one batch ------------------------------------------------------------------------------------

    def process(self, batch: Sequence[Received]) -> list[Decided]:
        """The result and/or dead letter of every message of ``batch``, in order.

        Returns only after every accepted or refused command's receipt is committed in PostgreSQL.
        """
        now = self.clock()
        decided: list[Decided] = []
        pending: list[tuple[Decided, Received, IntakeEnvelope, Command]] = []
        for item in batch:
            self.counters.messages += 1
            one, command = self._prepare(item, now)
            decided.append(one)
            if command is not None:
                envelope, built = command
                pending.append((one, item, envelope, built))
        outcomes = self._execute([built for *_, built in pending])
        for (one, item, envelope, _), outcome in zip(pending, outcomes, strict=True):
            if isinstance(outcome, CommandOutcome):
                one.result = self._result_of(item, envelope, outcome, now)
            else:  # not a rule, not transient: a defect or data the domain cannot take; dead-letter it
                reason = f"command failed: {outcome!r}"
                one.result = self._invalid(item, envelope, "PROCESSING_FAILED", reason, now)
                one.dead_letter = self._dead_letter(
                    item, "PROCESSING_FAILED", reason, envelope.message_id, now
                )
        for one in decided:
            self._count(one)
        return decided

    def _prepare(
        self, item: Received, now: datetime
    ) -> tuple[Decided, tuple[IntakeEnvelope, Command] | None]:
        raw = item.value or b""
        key = item.key or b""
        if len(raw) > self.max_message_bytes:
            reason = f"message of {len(raw)} bytes exceeds the limit of {self.max_message_bytes} bytes"
            return Decided(
                key, dead_letter=self._dead_letter(item, "MESSAGE_TOO_LARGE", reason, None, now)
            ), None
        try:
            envelope = IntakeEnvelope.from_bytes(raw, now)
        except ValidationError as error:
            reason = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'message'}: {e['msg']}"
                for e in error.errors(include_url=False, include_context=False, include_input=False)
            )
            message_id = _readable_message_id(raw)
            rule = "UNDECODABLE" if _is_json_error(error) else "INVALID_ENVELOPE"
            letter = self._dead_letter(item, rule, mask_text(reason), message_id, now)
            one = Decided(key, dead_letter=letter)
            if message_id is not None:
                one.result = IntakeResult(
                    message_id=message_id,
                    outcome="INVALID",
                    case_number=None,
                    command_type=None,
                    source_system=None,
                    rule=rule,
                    message=letter.reason,
                    partition=item.partition,
                    offset=item.offset,
                    decided_at=now,
                )
            return one, None
        key = envelope.case_number.encode()
        try:
            command_class(envelope.type)
        except InvalidCommandError as error:
            return self._invalid_decided(item, envelope, "UNKNOWN_COMMAND_TYPE", str(error), now), None
        source = self.source_systems.get(envelope.source_system)
        if source is None:
            message = f"source system {envelope.source_system!r} is not registered"
            return Decided(
                key, result=self._refused(item, envelope, "SOURCE_NOT_AUTHORISED", message, now)
            ), None
        if not source.may_send(envelope.type):
            message = f"source system {source.name} ({source.label}) may not send {envelope.type}"
            return Decided(
                key, result=self._refused(item, envelope, "COMMAND_NOT_AUTHORISED", message, now)
            ), None
        try:
            actor = Actor(envelope.actor.person_id, envelope.actor.name, envelope.actor.department)
            command = build_command(
                envelope.type,
                envelope.payload,
                command_id=envelope.message_id,
                case_number=envelope.case_number,
                actor=actor,
                occurred_at=envelope.occurred_at,
                channel=source.channel.value,
                reason=envelope.reason,
            )
        except (InvalidCommandError, TypeError, ValueError) as error:
            return self._invalid_decided(item, envelope, "INVALID_PAYLOAD", str(error), now), None
        return Decided(key), (envelope, command)

    def _execute(self, commands: list[Command]) -> list[CommandOutcome | Exception]:
        """``execute_batch``, re-running commands that met a transient error until they have an outcome."""
        outcomes: list[CommandOutcome | Exception | None] = [None] * len(commands)
        todo = list(range(len(commands)))
        delay = 0.2
        while todo:
            try:
                results = self.app.execute_batch([commands[i] for i in todo])
            except TRANSIENT_ERRORS as error:
                results = [error] * len(todo)
            again = []
            database_error: BaseException | None = None
            for index, result in zip(todo, results, strict=True):
                if isinstance(result, TRANSIENT_ERRORS):
                    again.append(index)
                    if isinstance(result, TRANSIENT_DATABASE_ERRORS):
                        database_error = result
                else:
                    outcomes[index] = result
            if database_error is not None and self.outage is not None:
                self.counters.retries += 1
                self.sleep(min(self.outage.failed(database_error), self.max_delay))
            elif again:
                self.counters.retries += 1
                log.warning("transient database error; retrying", commands=len(again), delay=delay)
                self.sleep(delay)
                delay = min(delay * 2, self.max_delay)
            elif self.outage is not None:
                self.outage.recovered()
            todo = again
        return [outcome for outcome in outcomes if outcome is not None]

    # ---- results and dead letters ---------------------------------------------------------------------

    def _result_of(
        self, item: Received, envelope: IntakeEnvelope, outcome: CommandOutcome, now: datetime
    ) -> IntakeResult:
        return IntakeResult(
            message_id=envelope.message_id,
            outcome="ACCEPTED" if outcome.accepted else "REFUSED",
            case_number=envelope.case_number,
            command_type=envelope.type,
            source_system=envelope.source_system,
            rule=outcome.rule,
            message=mask_text(outcome.message),
            case_version=outcome.case_version,
            event_types=list(outcome.event_types),
            repeated=outcome.repeated,
            partition=item.partition,
            offset=item.offset,
            decided_at=now,
        )

    def _refused(
        self, item: Received, envelope: IntakeEnvelope, rule: str, message: str, now: datetime
    ) -> IntakeResult:
        return IntakeResult(
            message_id=envelope.message_id,
            outcome="REFUSED",
            case_number=envelope.case_number,
            command_type=envelope.type,
            source_system=envelope.source_system,
            rule=rule,
            message=mask_text(message),
            partition=item.partition,
            offset=item.offset,
            decided_at=now,
        )

    def _invalid(
        self, item: Received, envelope: IntakeEnvelope, rule: str, message: str, now: datetime
    ) -> IntakeResult:
        return self._refused(item, envelope, rule, message, now).model_copy(update={"outcome": "INVALID"})

    def _invalid_decided(
        self, item: Received, envelope: IntakeEnvelope, rule: str, message: str, now: datetime
    ) -> Decided:
        return Decided(
            envelope.case_number.encode(),
            result=self._invalid(item, envelope, rule, message, now),
            dead_letter=self._dead_letter(item, rule, message, envelope.message_id, now),
        )

    def _dead_letter(
        self, item: Received, rule: str, reason: str, message_id: str | None, now: datetime
    ) -> IntakeDeadLetter:
        raw = item.value or b""
        truncated = len(raw) > self.max_message_bytes
        text, encoded = masked_original(raw[:DLQ_KEEP_BYTES] if truncated else raw)
        return IntakeDeadLetter(
            consumer=self.consumer,
            reason=mask_text(reason),
            rule=rule,
            message_id=message_id,
            topic=item.topic,
            partition=item.partition,
            offset=item.offset,
            key=item.key.decode(errors="replace") if item.key else None,
            size=len(raw),
            original_text=text,
            original_base64=encoded,
            truncated=truncated,
            failed_at=now,
        )

    def _count(self, one: Decided) -> None:
        if one.result is not None:
            outcome = one.result.outcome
            if outcome == "ACCEPTED":
                self.counters.accepted += 1
            elif outcome == "REFUSED":
                self.counters.refused += 1
            else:
                self.counters.invalid += 1
        if one.dead_letter is not None:
            letter = one.dead_letter
            self.counters.dead_letters += 1
            by_rule = self.counters.dead_letters_by_rule
            by_rule[letter.rule] = by_rule.get(letter.rule, 0) + 1
            log.warning(
                "dead letter",
                topic=letter.topic,
                partition=letter.partition,
                offset=letter.offset,
                case_number=letter.key,
                message_id=letter.message_id,
                rule=letter.rule,
                reason=letter.reason,
                dead_letters=self.counters.dead_letters,
            )


def _readable_message_id(raw: bytes) -> str | None:
    try:
        parsed = json.loads(raw)
    except ValueError:
        return None
    if isinstance(parsed, dict) and isinstance(parsed.get("message_id"), str) and parsed["message_id"]:
        return str(parsed["message_id"])[:200]
    return None


def _is_json_error(error: ValidationError) -> bool:
    return any(e["type"] == "json_invalid" or e["type"] == "model_type" for e in error.errors())


class BrokerProbe:
    """The intake's view of the broker: a metadata request every ``BROKER_PROBE_SECONDS`` (in a thread).

    faust reconnects by itself and says nothing while the broker is gone, and no message arrives to fail
    on, so the probe is what turns a broker outage into an ``Outage`` of ``kafka`` (one warning, not ready)
    and its end into one info line. A broker that lost the intake's topics (a memory broker restarted,
    topics deleted) gets them created again with the configured partitions before the intake reports
    ready, so the integrators' re-sent commands land on topics of the right shape.
    """

    def __init__(self, bootstrap_servers: str, settings: Settings, outage: Outage) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.settings = settings
        self.outage = outage
        self._admin: KafkaAdminClient | None = None

    def check(self) -> bool:
        """Whether the broker answered (and holds the intake's topics); records the outage state."""
        try:
            if self._admin is None:
                self._admin = KafkaAdminClient(
                    bootstrap_servers=self.bootstrap_servers,
                    request_timeout_ms=min(self.settings.kafka_request_timeout_ms, 3000),
                    reconnect_backoff_max_ms=1000,
                    bootstrap_timeout_ms=3000,
                )
            missing = [topic for topic in INTAKE_TOPICS if topic not in set(self._admin.list_topics())]
            if missing:
                log.warning(
                    "the broker has lost the intake topics (a restarted memory broker?); creating them; "
                    "integrators must re-send what they have no result for",
                    topics=missing,
                )
                ensure_topics(
                    self.bootstrap_servers,
                    missing,
                    self.settings.topic_partitions,
                    self.settings.topic_replication_factor,
                )
        except SEND_ERRORS as error:
            self.close()
            self.outage.failed(error)
            return False
        self.outage.recovered()
        return True

    def close(self) -> None:
        if self._admin is not None:
            admin, self._admin = self._admin, None
            try:
                admin.close()
            except SEND_ERRORS as error:  # closing a client of a dead broker; it is dropped either way
                log.debug("closing the broker probe failed", reason=repr(error))


@dataclass
class IntakeConsumer:
    """A built intake consumer: its faust app and what to close after the app stopped."""

    app: faust.App
    processor: IntakeProcessor
    executor: ThreadPoolExecutor
    health: Health | None = None
    probe: BrokerProbe | None = None

    def close(self) -> None:
        self.executor.shutdown(wait=True)
        if self.probe is not None:
            self.probe.close()
        self.processor.app.close()
        if self.health is not None:
            self.health.remove()


def build_intake(
    settings: Settings,
    bootstrap_servers: str,
    case_app: CaseApplication,
    source_systems: SourceSystems,
    *,
    group: str = INTAKE_GROUP,
) -> IntakeConsumer:
    """The faust app of one intake consumer; several with the same ``group`` share the partitions."""
    app = faust_transport.faust_app(group, bootstrap_servers, settings)
    source = app.topic(INTAKE_TOPIC, key_serializer="raw", value_serializer="raw")
    results = app.topic(INTAKE_RESULTS_TOPIC, key_serializer="raw", value_serializer="raw")
    dead_letters = app.topic(INTAKE_DLQ_TOPIC, key_serializer="raw", value_serializer="raw")
    health = Health(settings.state_dir, f"intake-{group}-{os.getpid()}")
    processor = IntakeProcessor(
        case_app,
        source_systems,
        max_message_bytes=settings.intake_max_message_bytes,
        consumer=group,
        outage=Outage(f"intake {group}", "postgres", health),
    )
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="intake")
    broker = Outage(f"intake {group}", "kafka", health)
    probe = BrokerProbe(bootstrap_servers, settings, broker)
    probing = ThreadPoolExecutor(max_workers=1, thread_name_prefix="intake-probe")

    async def publish(decided: list[Decided]) -> None:
        """Send every result and dead letter of a batch and wait until the broker has them all (acks=all).

        A record the broker did not acknowledge is sent again after a back-off (an ``Outage`` of kafka),
        until all are acknowledged; one whose acknowledgement was lost may go out twice, always the same.
        The batch is not acknowledged meanwhile, so faust commits no offset past it."""
        pending: list[tuple[Any, bytes, bytes]] = []
        for one in decided:
            if one.dead_letter is not None:
                pending.append((dead_letters, one.key, one.dead_letter.to_bytes()))
            if one.result is not None:
                pending.append((results, one.key, one.result.to_bytes()))
        while pending:
            futures: list[Any] = []
            error: BaseException | None = None
            try:
                for topic, key, value in pending:
                    futures.append(await topic.send(key=key, value=value))
            except SEND_ERRORS as failure:
                error = failure
            delivered = await asyncio.gather(*futures, return_exceptions=True)
            failed = [r for r, d in zip(pending, delivered, strict=False) if isinstance(d, BaseException)]
            failed += pending[len(futures) :]
            for outcome in delivered:
                if isinstance(outcome, BaseException):
                    if not isinstance(outcome, SEND_ERRORS):
                        raise outcome
                    error = outcome
            if error is not None:
                await asyncio.sleep(broker.failed(error))
            pending = failed

    def group_member() -> str:
        """The consumer's member id in its group; empty while it has none (its membership was reset).

        aiokafka empties it when the coordinator does not know the member (UNKNOWN_MEMBER_ID or
        ILLEGAL_GENERATION on a heartbeat, commit or join: a broker that lost its groups, or an expired
        session) and the next JoinGroup gives a new one. Neither faust nor aiokafka exposes it: faust's
        consumer thread holds the aiokafka consumer, whose group coordinator holds the id (private
        attributes, aiokafka 0.14 / faust-streaming 0.15; a str, read from another thread)."""
        return str(faust_transport.consumer(app)._thread._ensure_consumer()._coordinator.member_id)

    def drop(events: Sequence[EventT[bytes]]) -> None:
        """Let a batch go without acknowledging it: faust records and commits none of its offsets.

        ``take_events`` acknowledges a batch when the agent asks for the next one, through
        ``Message.ack``, which does nothing for a message already marked acked; a rebalance waits only
        for the messages in ``consumer.unacked``."""
        for event in events:
            event.message.acked = True
            app.consumer.unacked.discard(event.message)

    @app.agent(source, name=f"{group}-commands")
    async def intake(stream: faust.StreamT[bytes]) -> None:
        loop = asyncio.get_running_loop()
        # faust hands an agent a Stream; its StreamT interface lacks take_events
        async for events in cast("faust.Stream[bytes]", stream).take_events(
            settings.intake_batch_size, within=settings.intake_batch_seconds
        ):
            member = group_member()
            batch = [
                Received(e.message.value, e.message.key, e.message.partition, e.message.offset)
                for e in events
            ]
            decided = await loop.run_in_executor(executor, processor.process, batch)
            await publish(decided)  # delivered (acks=all) before faust may commit these offsets
            if not member or group_member() != member:
                # The group forgot this member while the batch was in flight (a broker that lost its
                # data, docs/reliability.md). faust cleared its offsets when the rejoin revoked the
                # partitions; acknowledging now would record offsets of the lost log, commit them to
                # the group of the new broker and start the re-sent commands past them.
                drop(events)
                log.warning(
                    "the group membership was reset while a batch was in flight; batch dropped, not "
                    "acknowledged: its outcomes are stored, its messages come again or are re-sent",
                    size=len(batch),
                    partitions=sorted({b.partition for b in batch}),
                    offset=batch[-1].offset,
                )
                continue
            log.info(
                "intake batch",
                size=len(batch),
                partitions=sorted({b.partition for b in batch}),
                offset=batch[-1].offset if batch else None,
                accepted=processor.counters.accepted,
                refused=processor.counters.refused,
                invalid=processor.counters.invalid,
                dead_letters=processor.counters.dead_letters,
            )

    @faust_transport.timer(app, interval=STALE_AFTER / 4)
    async def heartbeat() -> None:
        health.write()

    @app.on_rebalance_complete.connect
    async def start_uncommitted_partitions_at_the_beginning(sender: Any, /, *_: Any, **__: Any) -> None:
        """An assigned partition with no committed offset starts at its beginning.

        After a restart that lost the broker's data (a memory broker), the group rejoins, but faust and
        aiokafka keep the position read from the lost log: aiokafka seeks only partitions that have a
        committed offset, and Tansu answers a fetch beyond the end of the new, shorter log with nothing
        instead of OFFSET_OUT_OF_RANGE, so the re-sent commands would wait until the new log grew past
        the old position. faust also keeps the old log's committed offset and would not commit below
        it. Runs before faust resumes the streams.
        """
        committed = await faust_transport.consumer(app).seek_to_committed()
        from_beginning = []
        for tp in app.consumer.assignment():
            if tp.topic != INTAKE_TOPIC or committed.get(tp):
                continue
            faust_transport.consumer(app)._committed_offset.pop(tp, None)  # the lost log's offset (see above)
            await app.consumer.seek(tp, 0)  # also clears faust's read offset of the lost log
            from_beginning.append(tp.partition)
        log.info(  # where each partition starts: what an operator needs when a partition seems stuck
            "intake partitions assigned",
            member=group_member(),
            committed={tp.partition: offset for tp, offset in committed.items() if tp.topic == INTAKE_TOPIC},
            from_beginning=sorted(from_beginning),
        )

    @faust_transport.timer(app, interval=BROKER_PROBE_SECONDS)
    async def probe_broker() -> None:
        await asyncio.get_running_loop().run_in_executor(probing, probe.check)

    health.write()
    return IntakeConsumer(app, processor, executor, health, probe)
