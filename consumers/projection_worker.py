"""Projection worker (faust): case events from Kafka → read models in PostgreSQL, in batches.

Each batch (``take_events``) is decoded; undecodable messages become dead letters. The batch's effects,
its partitions' next offsets and its dead letters commit in one PostgreSQL transaction
(``projections.store.apply_batch``); faust acknowledges the messages only after that, so a kill -9
redelivers at most uncommitted batches, which the per-case version check makes harmless. An event that
decodes but cannot be applied is isolated by retrying the batch event by event and dead-lettered alone;
a database outage is waited out (nothing is acknowledged meanwhile). Dead letters also go to
``yekuo.case-events.dlq.v1`` with the reason and the original bytes.

The same process hands notifications to the gateways and escalates unacknowledged ones
(``consumers.notifier``) on timers.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import faust
import psycopg
import structlog
from pydantic import ValidationError

from consumers import faust_transport
from consumers.notifier import Notifier
from infra.messages import INCARNATION_HEADER, CaseEventMessage, DeadLetter
from infra.settings import CASE_EVENTS_DLQ_TOPIC, CASE_EVENTS_TOPIC, Settings
from projections.store import Delivered, Rejected, apply_batch, create_schema
from projections.tables import Projection

log = structlog.get_logger("yekuo.projection_worker")


class BatchApplier:
    """Applies delivered batches to PostgreSQL on one connection, surviving database restarts."""

    def __init__(self, database_url: str, projections: Sequence[Projection], group: str) -> None:
        self.database_url = database_url
        self.projections = projections
        self.group = group
        self._conn: psycopg.Connection[Any] | None = None

    def apply(self, delivered: list[Delivered], rejected: list[Rejected]) -> list[Rejected]:
        """Commit the batch; returns every dead letter it recorded (``rejected`` plus apply failures)."""
        try:
            self._with_retry(
                lambda conn: apply_batch(conn, self.projections, self.group, delivered, rejected)
            )
            return rejected
        except Exception as error:  # any failure that retrying cannot cure: find the event that causes it
            log.warning("batch failed; isolating the poison event", size=len(delivered), error=repr(error))
        failed = list(rejected)
        self._with_retry(lambda conn: apply_batch(conn, self.projections, self.group, [], rejected))
        for item in delivered:
            try:
                self._with_retry(
                    lambda conn, item=item: apply_batch(conn, self.projections, self.group, [item])
                )
            except Exception as e:  # the projection cannot apply this event: dead-letter it, go on
                poison = Rejected(
                    item.topic,
                    item.partition,
                    item.offset,
                    str(item.message.case_id),
                    item.message.to_bytes(),
                    f"cannot apply {item.message.type} v{item.message.case_version}: {e!r}",
                    item.incarnation,
                    datetime.now(UTC),
                )
                self._with_retry(
                    lambda conn, p=poison: apply_batch(conn, self.projections, self.group, [], [p])
                )
                failed.append(poison)
        return failed

    def _with_retry(self, work: Any) -> Any:
        """Run ``work`` in a transaction, retrying what time cures: the database restarting, a rebuild
        swapping tables, and (a few times) two workers inserting the same new case during a rebalance."""
        delay, conflicts = 0.2, 0
        while True:
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = psycopg.connect(self.database_url)
                return work(self._conn)
            except psycopg.errors.UniqueViolation:
                conflicts += 1
                if conflicts > 3:
                    raise
                time.sleep(delay)
            except (
                psycopg.OperationalError,
                psycopg.errors.LockNotAvailable,
                psycopg.errors.UndefinedTable,
                psycopg.errors.ObjectNotInPrerequisiteState,
                psycopg.errors.SerializationFailure,
            ) as error:
                # Database restarting, or a rebuild swapped the tables under us: retry on fresh state.
                log.warning("read-model write failed; retrying", error=repr(error), delay=delay)
                if self._conn is not None:
                    self._conn.close()
                    self._conn = None
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()


def decode(
    value: bytes | None, topic: str, partition: int, offset: int, key: bytes | None, incarnation: str
) -> Delivered | Rejected:
    """A received message as an event to apply, or as a dead letter with the reason."""
    try:
        message = CaseEventMessage.from_bytes(value or b"")
        return Delivered(message, topic, partition, offset, incarnation)
    except (ValidationError, ValueError) as error:
        reason = f"undecodable case event: {str(error).splitlines()[0]}"
        return Rejected(
            topic,
            partition,
            offset,
            key.decode(errors="replace") if key else None,
            value or b"",
            reason,
            incarnation,
            datetime.now(UTC),
        )


def header(headers: Any, name: str) -> str:
    items = headers.items() if isinstance(headers, dict) else (headers or ())
    for key, value in items:
        if key == name:
            return value.decode() if isinstance(value, bytes) else str(value)
    return ""


@dataclass
class ProjectionWorker:
    """A built worker: its faust app, and what to close after the app stopped."""

    app: faust.App
    applier: BatchApplier
    executor: ThreadPoolExecutor
    notifier: Notifier | None

    def close(self) -> None:
        self.executor.shutdown(wait=True)
        self.applier.close()
        if self.notifier is not None:
            self.notifier.close()


def build_worker(
    settings: Settings,
    database_url: str,
    bootstrap_servers: str,
    projections: Sequence[Projection],
    *,
    group: str = "yekuo-projections",
    timers: bool = True,
) -> ProjectionWorker:
    """The faust app of one projection worker; several with the same ``group`` share the partitions."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        create_schema(conn, projections)
    app = faust.App(
        group,
        broker=f"{faust_transport.register(settings.kafka_fetch_max_wait_ms)}://{bootstrap_servers}",
        store="memory://",
        web_enabled=False,
        broker_session_timeout=settings.kafka_session_timeout_ms / 1000,
        broker_heartbeat_interval=settings.kafka_heartbeat_interval_ms / 1000,
        broker_rebalance_timeout=settings.kafka_session_timeout_ms / 1000,
        consumer_auto_offset_reset="earliest",
        topic_allow_declare=False,
        topic_disable_leader=True,
        producer_acks=-1,
        logging_config=None,
    )
    source = app.topic(CASE_EVENTS_TOPIC, key_serializer="raw", value_serializer="raw")
    dead_letters = app.topic(CASE_EVENTS_DLQ_TOPIC, key_serializer="raw", value_serializer="raw")
    applier = BatchApplier(database_url, projections, group)
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="read-models")

    @app.agent(source, name=f"{group}-project")
    async def project(stream: faust.StreamT[bytes]) -> None:
        loop = asyncio.get_running_loop()
        async for events in stream.take_events(
            settings.projection_batch_size, within=settings.projection_batch_seconds
        ):
            delivered: list[Delivered] = []
            rejected: list[Rejected] = []
            for event in events:
                m = event.message
                item = decode(
                    m.value, m.topic, m.partition, m.offset, m.key, header(m.headers, INCARNATION_HEADER)
                )
                (delivered if isinstance(item, Delivered) else rejected).append(item)
            failed = await loop.run_in_executor(executor, applier.apply, delivered, rejected)
            for dead in failed:
                log.warning(
                    "dead letter",
                    topic=dead.topic,
                    partition=dead.partition,
                    offset=dead.offset,
                    case_id=dead.key,
                    reason=dead.reason,
                )
                letter = DeadLetter(
                    consumer=group,
                    reason=dead.reason,
                    topic=dead.topic,
                    partition=dead.partition,
                    offset=dead.offset,
                    key=dead.key,
                    original_base64=DeadLetter.encode_original(dead.original),
                    failed_at=dead.failed_at,
                )
                await dead_letters.send(key=(dead.key or "").encode(), value=letter.to_bytes())
            if delivered:
                last = delivered[-1]
                log.info(
                    "batch applied",
                    size=len(delivered),
                    topic=last.topic,
                    partitions=sorted({d.partition for d in delivered}),
                    partition=last.partition,
                    offset=last.offset,
                    case_id=str(last.message.case_id),
                )

    notifier = Notifier(settings, database_url, bootstrap_servers) if timers else None
    if notifier is not None:

        @app.timer(interval=settings.notification_dispatch_seconds)
        async def dispatch() -> None:
            await asyncio.get_running_loop().run_in_executor(None, notifier.dispatch_pending)

        @app.timer(interval=settings.notification_escalation_check_seconds)
        async def escalate() -> None:
            await asyncio.get_running_loop().run_in_executor(None, notifier.escalate_overdue)

    return ProjectionWorker(app, applier, executor, notifier)
