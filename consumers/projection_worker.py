"""Projection worker (faust): case events from Kafka → read models in PostgreSQL, in batches.

Each batch (``take_events``) goes as raw records to the worker's read-model process (``ReadModelProcess``),
a child that decodes and applies it, so that faust's fetching in this process and the decoding and
applying in the child use both cores; two batches are in flight, so the child never waits for this
process. Undecodable messages become dead letters. The batch's effects,
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
import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple, cast

import faust
import psycopg
import structlog
from aiokafka import errors as aiokafka_errors
from faust.types import TP
from pydantic import ValidationError

from consumers import faust_transport
from consumers.backoff import (
    STALE_AFTER,
    TRANSIENT_BROKER_ERRORS,
    TRANSIENT_DATABASE_ERRORS,
    Health,
    Outage,
    pg_connect,
)
from consumers.notifier import NotificationNotDeliveredError, Notifier
from infra.log_setup import configure_logging
from infra.messages import INCARNATION_HEADER, CaseEventMessage, DeadLetter
from infra.settings import CASE_EVENTS_DLQ_TOPIC, CASE_EVENTS_TOPIC, Settings
from projections.store import Delivered, Rejected, apply_batch, batch_positions, create_schema, table_exists
from projections.tables import Projection

log = structlog.get_logger("yekuo.projection_worker")

RETRIED_DATABASE_ERRORS: tuple[type[BaseException], ...] = (
    *TRANSIENT_DATABASE_ERRORS,
    psycopg.errors.LockNotAvailable,
    psycopg.errors.ObjectNotInPrerequisiteState,
    psycopg.errors.SerializationFailure,
)
"""What ``BatchApplier`` retries on fresh state: the database restarting, or a rebuild swapping the tables."""
NOTIFIER_BROKER_ERRORS: tuple[type[BaseException], ...] = (
    *TRANSIENT_BROKER_ERRORS,
    NotificationNotDeliveredError,
)
"""What a notifier timer waits out as a broker outage (dropping its producer)."""


class BatchApplier:
    """Applies delivered batches to PostgreSQL on one connection, surviving database restarts."""

    def __init__(
        self,
        database_url: str,
        projections: Sequence[Projection],
        group: str,
        health: Health | None = None,
    ) -> None:
        self.database_url = database_url
        self.projections = projections
        self.group = group
        self._conn: psycopg.Connection[Any] | None = None
        self.outage = Outage(f"projection worker {group}", "postgres", health)

    def admit(self, delivered: list[Delivered], rejected: list[Rejected]) -> Admission:
        """What of a received batch to apply, by the positions stored with the read models (see ``admit``)."""
        return self._with_retry(lambda conn: admit(conn, self.group, delivered, rejected))  # type: ignore[no-any-return]

    def apply(
        self,
        delivered: list[Delivered],
        rejected: list[Rejected],
        passed: Mapping[tuple[str, int], Position] | None = None,
    ) -> list[Rejected]:
        """Commit the batch (and the ``passed`` positions of ``Admission``); returns every dead letter it
        recorded (``rejected`` plus apply failures)."""
        try:
            self._with_retry(
                lambda conn: apply_batch(
                    conn, self.projections, self.group, delivered, rejected, passed=passed
                )
            )
            return rejected
        except Exception as error:  # any failure that retrying cannot cure: find the event that causes it
            log.warning("batch failed; isolating the poison event", size=len(delivered), error=repr(error))
        failed = list(rejected)
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
        # last, with the whole batch's end: each item above stored its own position
        end = batch_positions([*delivered, *rejected], passed)
        self._with_retry(
            lambda conn: apply_batch(conn, self.projections, self.group, [], rejected, passed=end)
        )
        return failed

    def _with_retry(self, work: Any) -> Any:
        """Run ``work`` in a transaction, retrying what time cures: the database restarting (backoff with
        jitter, one log line per outage), a rebuild swapping tables, and (a few times) two workers
        inserting the same new case during a rebalance."""
        conflicts = 0
        while True:
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = pg_connect(self.database_url)
                result = work(self._conn)
                self.outage.recovered()
                return result
            except psycopg.errors.UniqueViolation:
                conflicts += 1
                if conflicts > 3:
                    raise
                time.sleep(0.2)
            except RETRIED_DATABASE_ERRORS as error:
                # Database restarting, or a rebuild swapped the tables under us: retry on fresh state.
                if self._conn is not None:
                    self._conn.close()
                    self._conn = None
                time.sleep(self.outage.failed(error))

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()


Position = tuple[int, str]
"""A partition's stored position: the next offset to apply, and the relay incarnation whose log it is
in ("": a log the current incarnation has not yet been seen in, or messages published by hand)."""


@dataclass
class Admission:
    """A received batch sorted by the stored positions: what to apply, and partitions to read again."""

    delivered: list[Delivered]
    rejected: list[Rejected]
    rewind: dict[tuple[str, int], int]
    dropped: int
    passed: dict[tuple[str, int], Position]
    """Positions moved over other incarnations' records without applying anything, to store."""


def admit(
    conn: psycopg.Connection[Any], group: str, delivered: list[Delivered], rejected: list[Rejected]
) -> Admission:
    """Keep only what continues each partition from the position stored with the read models
    (``admitted``, on the relay's current incarnations and the group's stored positions)."""
    current = (
        {row[0] for row in conn.execute("SELECT incarnation FROM relay_state")}
        if table_exists(conn, "relay_state")
        else set()
    )
    stored: dict[tuple[str, int], Position] = {
        (topic, partition): (offset, incarnation)
        for topic, partition, offset, incarnation in conn.execute(
            "SELECT topic, partition, next_offset, incarnation FROM projection_offsets "
            "WHERE consumer_group = %s",
            (group,),
        )
    }
    conn.rollback()
    return admitted(current, stored, delivered, rejected)


def admitted(
    current: set[str],
    stored: dict[tuple[str, int], Position],
    delivered: list[Delivered],
    rejected: list[Rejected],
) -> Admission:
    """The batch sorted by the stored positions.

    A message of another incarnation than the relay's current ones comes from a log the broker lost, or
    was published by the relay into the new log before it noticed the loss: never applied (the relay
    republishes its events). A message of the current incarnation is expected at the stored next offset
    when the stored position is of that incarnation, else at offset 0, the start of the new log. A
    record of another incarnation found where the next one is expected (at that start: a relay batch
    that straddled the broker's restart) is stepped over, so the partition is then expected after it;
    otherwise a rewind would bring the same record back for ever. Below the expected offset:
    applied already, dropped. Above it: the consumer's position is not ours (a broker restart reset it,
    or faust skipped offsets it had read in the lost log), so the partition is rewound to the expected
    offset and the rest of it in this batch dropped. Messages without an incarnation header (published
    by hand) match any position.
    """
    items: list[Delivered | Rejected] = sorted(
        [*delivered, *rejected], key=lambda i: (i.topic, i.partition, i.offset)
    )
    stored = dict(stored)  # moved along the batch
    kept: set[int] = set()
    rewind: dict[tuple[str, int], int] = {}
    passed: dict[tuple[str, int], Position] = {}
    for item in items:
        key = (item.topic, item.partition)
        if key in rewind:
            continue
        offset, incarnation = stored.get(key, (0, item.incarnation))
        if current and item.incarnation and item.incarnation not in current:
            positioned = incarnation == "" or incarnation in current  # in the log the broker holds now
            if item.offset == (offset if positioned else 0):  # next in it: step over
                stored[key] = passed[key] = (item.offset + 1, incarnation if positioned else "")
            continue
        expected = offset if "" in (incarnation, item.incarnation) or incarnation == item.incarnation else 0
        if item.offset < expected:
            continue
        if item.offset > expected:
            rewind[key] = expected
            continue
        kept.add(id(item))
        stored[key] = (item.offset + 1, item.incarnation or incarnation)
    admitted_delivered = [d for d in delivered if id(d) in kept]
    admitted_rejected = [r for r in rejected if id(r) in kept]
    return Admission(
        admitted_delivered,
        admitted_rejected,
        rewind,
        len(delivered) + len(rejected) - len(admitted_delivered) - len(admitted_rejected),
        passed,
    )


def fit_dead_letter(letter: DeadLetter, original: bytes, limit: int) -> DeadLetter:
    """The dead letter as it fits in one produce request of ``limit`` bytes: an original too large is cut,
    with a note in the reason; the dead_letters table keeps the full bytes."""
    if len(letter.to_bytes()) <= limit:
        return letter
    overhead = len(letter.model_copy(update={"original_base64": ""}).to_bytes()) + 200
    keep = max((limit - overhead) * 3 // 4, 0)
    return letter.model_copy(
        update={
            "original_base64": DeadLetter.encode_original(original[:keep]),
            "reason": f"{letter.reason} [original truncated to its first {keep} of {len(original)} bytes; "
            "the full bytes are in the dead_letters table]",
        }
    )


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


class Received(NamedTuple):
    """A record as faust delivered it, in the form sent to the read-model process."""

    value: bytes | None
    topic: str
    partition: int
    offset: int
    key: bytes | None
    incarnation: str


@dataclass
class BatchOutcome:
    """What the read-model process did with a batch: partitions to rewind, dead letters to publish, and
    the last applied event (for the log line), if any."""

    rewind: dict[tuple[str, int], int]
    failed: list[Rejected]
    applied: dict[str, Any] | None


def project_batch(applier: BatchApplier, records: Sequence[Received]) -> BatchOutcome:
    """Decode, admit and commit one received batch (in the read-model process)."""
    delivered: list[Delivered] = []
    rejected: list[Rejected] = []
    for record in records:
        item = decode(*record)
        if isinstance(item, Delivered):
            delivered.append(item)
        else:
            rejected.append(item)
    admission = applier.admit(delivered, rejected)
    if not admission.delivered and not admission.rejected and not admission.passed:
        return BatchOutcome(admission.rewind, [], None)
    failed = applier.apply(admission.delivered, admission.rejected, admission.passed)
    applied = None
    if admission.delivered:
        last = admission.delivered[-1]
        applied = {
            "size": len(admission.delivered),
            "topic": last.topic,
            "partitions": sorted({d.partition for d in admission.delivered}),
            "partition": last.partition,
            "offset": last.offset,
            "case_id": str(last.message.case_id),
        }
    return BatchOutcome(admission.rewind, failed, applied)


_child_applier: BatchApplier | None = None
"""The read-model process's applier, made by ``_start_read_model_process``."""

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _start_read_model_process(
    database_url: str,
    projections: Sequence[Projection],
    group: str,
    state_dir: Path | None,
    health_name: str,
    log_level: str,
    log_json: bool | None,
    parent: int,
) -> None:
    """Initializer of the read-model process: die with the worker, leave shutdown to it, log like it,
    and keep a readiness file of its own (a database outage is waited out here)."""
    if sys.platform == "linux":  # a worker killed with -9 must not leave a child committing batches
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the worker died before the line above took effect
        os._exit(1)
    # Ctrl-C and SIGTERM reach the whole process group; the worker finishes the batch and shuts us down.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    configure_logging(log_level, log_json)
    health = Health(state_dir, health_name)
    health.write()

    def beat() -> None:
        while True:
            time.sleep(STALE_AFTER / 4)
            health.write()

    threading.Thread(target=beat, name="health", daemon=True).start()
    global _child_applier  # one applier per process, made once by the pool
    _child_applier = BatchApplier(database_url, projections, group, health)


def _project_in_child(records: list[Received]) -> BatchOutcome:
    if _child_applier is None:
        raise RuntimeError("the read-model process was started without its initializer")
    return project_batch(_child_applier, records)


class ReadModelProcess:
    """读模型进程 The worker's child process that decodes and applies its batches.

    A faust worker spends about as long fetching and decoding records as applying them, and both on one
    interpreter (threads share the GIL); a child process gives the applying a core of its own while
    faust fetches the next batch. The child dies with the worker (``PR_SET_PDEATHSIG``); when it dies
    alone, the pool is made again and the batch sent again (the per-partition positions make that
    harmless). Its readiness file is ``worker-<group>-<pid>-read-models``.
    """

    def __init__(
        self,
        settings: Settings,
        database_url: str,
        projections: Sequence[Projection],
        group: str,
        health: Health,
    ) -> None:
        self.health_name = f"{health.process}-read-models"
        self.state_dir = settings.state_dir
        self._initargs = (
            database_url,
            list(projections),
            group,
            settings.state_dir,
            self.health_name,
            settings.log_level,
            settings.log_json,
            os.getpid(),
        )
        self.outage = Outage(f"projection worker {group}", "read-model process", health)
        self._pool = self._new_pool()
        self._pool.submit(int).result()  # started and ready before the worker joins its group

    def _new_pool(self) -> ProcessPoolExecutor:
        """A pool of one child. It is started by the first submit, from the submitting thread: this
        process's main thread, whose end the child's death signal follows."""
        return ProcessPoolExecutor(
            max_workers=1,
            mp_context=multiprocessing.get_context("spawn"),  # no copy of faust's threads and sockets
            initializer=_start_read_model_process,
            initargs=self._initargs,
        )

    async def project(
        self, records: list[Received], after: asyncio.Future[Any] | None = None
    ) -> BatchOutcome:
        """The batch applied by the child; waits out the child's deaths (nothing is acknowledged
        meanwhile). ``after``: the batch sent before this one, which a batch sent again waits for, so
        that batches reach a new child in the order they were received."""
        loop = asyncio.get_running_loop()
        while True:
            pool = self._pool
            try:
                outcome = await loop.run_in_executor(pool, _project_in_child, records)
            except BrokenProcessPool as error:
                if pool is self._pool:  # the first of the batches in flight to notice
                    log.warning("read-model process died; starting it again", error=repr(error))
                    pool.shutdown(wait=False)
                    self._pool = self._new_pool()
                    await asyncio.sleep(self.outage.failed(error))
                if after is not None:
                    await asyncio.wait([after])
                continue
            self.outage.recovered()
            return outcome

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        Health(self.state_dir, self.health_name).remove()


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
    read_models: ReadModelProcess
    notifier: Notifier | None

    def close(self) -> None:
        self.read_models.close()
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
    schema = Outage(f"projection worker {group}", "postgres")
    while True:  # a fresh stack or a database not up yet: wait, with one log line
        try:
            with pg_connect(database_url, autocommit=True) as conn:
                create_schema(conn, projections)
        except TRANSIENT_DATABASE_ERRORS as error:
            time.sleep(schema.failed(error))
            continue
        schema.recovered()
        break
    app = faust_transport.faust_app(group, bootstrap_servers, settings)
    source = app.topic(CASE_EVENTS_TOPIC, key_serializer="raw", value_serializer="raw")
    dead_letters = app.topic(CASE_EVENTS_DLQ_TOPIC, key_serializer="raw", value_serializer="raw")
    health = Health(settings.state_dir, f"worker-{group}-{os.getpid()}")
    read_models = ReadModelProcess(settings, database_url, projections, group, health)
    dlq_broker = Outage(f"projection worker {group} dead letters", "kafka", health)
    dlq_limit = app.conf.producer_max_request_size
    rewinds: dict[tuple[str, int], tuple[int, float]] = {}

    async def publish_dead_letter(dead: Rejected) -> None:
        """Send one dead letter, waiting out a broker outage (the batch is not acknowledged meanwhile)."""
        letter = fit_dead_letter(
            DeadLetter(
                consumer=group,
                reason=dead.reason,
                topic=dead.topic,
                partition=dead.partition,
                offset=dead.offset,
                key=dead.key,
                original_base64=DeadLetter.encode_original(dead.original),
                failed_at=dead.failed_at,
            ),
            dead.original,
            dlq_limit - 1024,  # room for the record's key, headers and batch framing
        )
        while True:
            try:
                await dead_letters.send(key=(dead.key or "").encode(), value=letter.to_bytes())
            except (*TRANSIENT_BROKER_ERRORS, aiokafka_errors.KafkaError) as error:
                await asyncio.sleep(dlq_broker.failed(error))
                continue
            dlq_broker.recovered()
            return

    async def rewind(wanted: dict[tuple[str, int], int]) -> None:
        """Move the consumer back to the stored position; repeated at most every 5 s while waiting."""
        now = time.monotonic()
        for (topic, partition), offset in wanted.items():
            previous = rewinds.get((topic, partition))
            if previous is not None and previous[0] == offset and now - previous[1] < 5.0:
                continue
            log.warning(
                "consumer position differs from the stored one (broker restarted or republished); rewinding",
                topic=topic,
                partition=partition,
                offset=offset,
            )
            rewinds[(topic, partition)] = (offset, now)
            await app.consumer.seek(TP(topic, partition), offset)

    async def finish(
        events: Sequence[faust.EventT[bytes]],
        batch: Awaitable[BatchOutcome],
        previous: asyncio.Task[None] | None,
    ) -> None:
        """A batch's outcome acted on after the batch before it: rewinds, dead letters, then the
        acknowledgement of its messages (the commit is done by then)."""
        outcome = await batch
        if previous is not None:
            await previous
        if outcome.rewind:
            await rewind(outcome.rewind)
        for dead in outcome.failed:
            log.warning(
                "dead letter",
                topic=dead.topic,
                partition=dead.partition,
                offset=dead.offset,
                case_id=dead.key,
                reason=dead.reason[:500],
            )
            await publish_dead_letter(dead)
        if outcome.applied is not None:
            log.info("batch applied", **outcome.applied)
        for event in events:
            event.ack()  # the reference taken when the batch was received: faust may commit past it now

    @app.agent(source, name=f"{group}-project")
    async def project(stream: faust.StreamT[bytes]) -> None:
        # Two batches in flight: while the read-model process applies one, the next waits in its queue
        # and faust gathers a third, so the child never waits for this process. take_events acknowledges
        # a batch as soon as the next is asked for; an extra reference on each message holds that back
        # until ``finish`` (faust acknowledges a message when its last reference goes).
        in_flight: deque[asyncio.Task[None]] = deque()
        try:
            # faust hands an agent a Stream; its StreamT interface lacks take_events
            async for events in cast("faust.Stream[bytes]", stream).take_events(
                settings.projection_batch_size, within=settings.projection_batch_seconds
            ):
                for event in events:
                    event.message.incref()
                records = [
                    Received(
                        m.value, m.topic, m.partition, m.offset, m.key, header(m.headers, INCARNATION_HEADER)
                    )
                    for m in (event.message for event in events)
                ]
                while len(in_flight) >= 2:
                    await in_flight.popleft()
                previous = in_flight[-1] if in_flight else None
                batch = read_models.project(records, after=previous)
                in_flight.append(asyncio.create_task(finish(list(events), batch, previous)))
        finally:
            for task in in_flight:  # unacknowledged: delivered again after a restart or rebalance
                task.cancel()

    notifier = Notifier(settings, database_url, bootstrap_servers) if timers else None
    if notifier is not None:
        timer_database = Outage(f"notifier {group}", "postgres", health)
        timer_broker = Outage(f"notifier {group}", "kafka", health)

        def guarded(work: Callable[[], int]) -> None:
            """A timer's work; a connection error is an outage to wait out, never a crash of the app."""
            try:
                work()
            except TRANSIENT_DATABASE_ERRORS as error:
                timer_database.failed(error)
                return
            except NOTIFIER_BROKER_ERRORS as error:
                notifier.drop_producer()
                timer_broker.failed(error)
                return
            except Exception:  # a timer must not take the app down; this is loud, not silent
                log.exception("notifier timer failed; it runs again at its next interval")
                return
            timer_database.recovered()
            timer_broker.recovered()

        @faust_transport.timer(app, interval=settings.notification_dispatch_seconds)
        async def dispatch() -> None:
            await asyncio.get_running_loop().run_in_executor(None, guarded, notifier.dispatch_pending)

        @faust_transport.timer(app, interval=settings.notification_escalation_check_seconds)
        async def escalate() -> None:
            await asyncio.get_running_loop().run_in_executor(None, guarded, notifier.escalate_overdue)

    @faust_transport.timer(app, interval=STALE_AFTER / 4)
    async def heartbeat() -> None:
        health.write()

    return ProjectionWorker(app, read_models, notifier)
