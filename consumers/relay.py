"""The relay (outbox): publishes the event store's case events to ``yekuo.case-events.v1``.

It reads the notification log after its tracked position, publishes each case event keyed by case id
with an idempotent producer (acks=all), waits until the broker has acknowledged the whole batch, and only
then stores the new position in PostgreSQL. A crash at any moment therefore republishes at most the last
unacknowledged batch (at least once, never a gap); per-case order holds because one case's events go to
one partition, in log order, from one producer.

Broker data loss (a restarted memory broker, a recreated topic) is noticed through an **incarnation
marker**: a random id the relay writes to the single-partition control topic and keeps in PostgreSQL.
When the marker is missing from the broker, the broker has lost what it held: the relay starts a new
incarnation, resets its position to the start of the log and republishes everything. Each message carries
the incarnation in a header, so consumers can tell offsets of the old log from the new one.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import psycopg
import structlog
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from app.application import CaseApplication
from app.event_log import CaseEventLog
from app.witness import CASE_HEADS_SCHEMA, record_heads
from consumers.backoff import (
    TRANSIENT_BROKER_ERRORS,
    TRANSIENT_DATABASE_ERRORS,
    Health,
    Outage,
    close_producer,
    kafka_timeouts,
    pg_connect,
)
from infra.kafka_admin import ensure_yekuo_topics
from infra.messages import INCARNATION_HEADER, CaseEventMessage
from infra.settings import CASE_EVENTS_TOPIC, RELAY_CONTROL_TOPIC, Settings

log = structlog.get_logger("yekuo.relay")

RELAY_SCHEMA = """
CREATE TABLE IF NOT EXISTS relay_state (
    relay_name text PRIMARY KEY,
    position bigint NOT NULL,
    incarnation text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS relay_partition_offsets (
    relay_name text NOT NULL,
    topic text NOT NULL,
    partition int NOT NULL,
    next_offset bigint NOT NULL,
    PRIMARY KEY (relay_name, topic, partition)
);
"""


@dataclass(frozen=True)
class RelayState:
    position: int
    incarnation: str


@dataclass(frozen=True)
class RelayPass:
    """What one pass over the log did."""

    read: int
    published: int
    position: int


class Relay:
    """Publishes case events from the notification log; see the module docstring for the guarantees."""

    def __init__(
        self,
        app: CaseApplication,
        database_url: str,
        bootstrap_servers: str,
        settings: Settings,
        *,
        name: str = "case-events",
        marker_check_seconds: float = 5.0,
    ) -> None:
        self.app = app
        self.database_url = database_url
        self.bootstrap_servers = bootstrap_servers
        self.settings = settings
        self.name = name
        self.batch_size = settings.relay_batch_size
        self.marker_check_seconds = marker_check_seconds
        self.log = CaseEventLog(app)
        self._producer: KafkaProducer | None = None
        self._last_marker_check = 0.0
        self._conn: psycopg.Connection[Any] | None = None
        self._locked_conn: psycopg.Connection[Any] | None = None
        self.health = Health(settings.state_dir, f"relay-{name}")
        self._schema_created = False

    # ---- running --------------------------------------------------------------------------------------

    def run(self, stop: threading.Event, *, idle_seconds: float = 0.05) -> None:
        """Relay until ``stop`` is set; a database or broker outage is waited out (backoff with jitter,
        one log line when it starts and one when it ends, readiness file not-ready meanwhile)."""
        log.info("relay started", relay=self.name, topic=CASE_EVENTS_TOPIC)
        database = Outage(f"relay {self.name}", "postgres", self.health)
        broker = Outage(f"relay {self.name}", "kafka", self.health)
        self.health.write()
        try:
            while not stop.is_set():
                try:
                    if not self._holds_lock(stop):
                        continue
                    done = self.relay_once()
                except TRANSIENT_BROKER_ERRORS as error:
                    self._close_producer()
                    self._last_marker_check = 0.0  # a restarted broker may have lost what it held
                    stop.wait(broker.failed(error))
                    continue
                except TRANSIENT_DATABASE_ERRORS as error:
                    self._close_connection()
                    stop.wait(database.failed(error))
                    continue
                database.recovered()
                broker.recovered()
                if done.read == 0:
                    stop.wait(idle_seconds)
        finally:
            self._close_producer()
            self._close_connection()
            self.health.remove()
            log.info("relay stopped", relay=self.name)

    def _ensure_schema(self) -> None:
        if not self._schema_created:
            self._connection().execute(RELAY_SCHEMA)
            self._connection().execute(CASE_HEADS_SCHEMA)
            self._schema_created = True

    def _holds_lock(self, stop: threading.Event) -> bool:
        """Only one relay of a name publishes; the others stand by until its session lock is free.
        The lock lives in this relay's database session, so a new connection must take it again."""
        if self._locked_conn is not None and self._locked_conn is self._conn and not self._conn.closed:
            return True
        conn = self._connection()
        row = conn.execute(
            "SELECT pg_try_advisory_lock(hashtext(%s))", (f"yekuo.relay:{self.name}",)
        ).fetchone()
        if row and row[0]:
            self._locked_conn = conn
            log.info("relay active", relay=self.name)
            return True
        log.info("another relay is active; standing by", relay=self.name)
        stop.wait(2.0)
        return False

    def relay_once(self) -> RelayPass:
        """Check the broker still holds our incarnation, then publish one batch of the log."""
        state = self._check_incarnation()
        messages, position = self.log.read(state.position, self.batch_size)
        if position == state.position:
            return RelayPass(0, 0, state.position)
        producer = self._ensure_producer()
        headers = [(INCARNATION_HEADER, state.incarnation.encode())]
        futures = [
            producer.send(CASE_EVENTS_TOPIC, key=str(m.case_id).encode(), value=m.to_bytes(), headers=headers)
            for m in messages
        ]
        producer.flush()
        next_offsets: dict[int, int] = {}
        for future in futures:
            metadata = future.get(timeout=0)  # raises when the broker refused the message
            next_offsets[metadata.partition] = max(
                next_offsets.get(metadata.partition, 0), metadata.offset + 1
            )
        self._store(position, state.incarnation, next_offsets, messages)
        log.debug("relayed", count=len(futures), position=position)
        return RelayPass(position - state.position, len(futures), position)

    # ---- position and incarnation -----------------------------------------------------------------

    def state(self) -> RelayState | None:
        self._ensure_schema()
        with self._connection().cursor() as cursor:
            row = cursor.execute(
                "SELECT position, incarnation FROM relay_state WHERE relay_name = %s", (self.name,)
            ).fetchone()
        return RelayState(row[0], row[1]) if row else None

    def _store(
        self,
        position: int,
        incarnation: str,
        next_offsets: dict[int, int],
        messages: list[CaseEventMessage],
    ) -> None:
        conn = self._connection()
        with conn.transaction():
            updated = conn.execute(
                "UPDATE relay_state SET position = %s, updated_at = now() "
                "WHERE relay_name = %s AND incarnation = %s AND position < %s",
                (position, self.name, incarnation, position),
            )
            if updated.rowcount != 1:
                raise RuntimeError(f"relay {self.name}: another relay moved the position; stopping")
            with conn.cursor() as cursor:
                cursor.executemany(
                    "INSERT INTO relay_partition_offsets (relay_name, topic, partition, next_offset) "
                    "VALUES (%s, %s, %s, %s) ON CONFLICT (relay_name, topic, partition) "
                    "DO UPDATE SET next_offset = GREATEST(relay_partition_offsets.next_offset, "
                    "EXCLUDED.next_offset)",
                    [(self.name, CASE_EVENTS_TOPIC, p, o) for p, o in next_offsets.items()],
                )
            record_heads(conn, messages)  # the external witness of each case's head

    def _check_incarnation(self) -> RelayState:
        state = self.state()
        now = time.monotonic()
        if state is not None and now - self._last_marker_check < self.marker_check_seconds:
            return state
        if state is not None and self._broker_holds(state.incarnation):
            self._last_marker_check = now
            return state
        incarnation = uuid.uuid4().hex
        if state is None:
            log.info("relay starting its first incarnation", incarnation=incarnation)
        else:
            log.warning(
                "the broker has lost the relayed events (marker missing); republishing from the event store",
                lost_incarnation=state.incarnation,
                incarnation=incarnation,
                lost_position=state.position,
            )
        ensure_yekuo_topics(self.bootstrap_servers, self.settings)
        producer = self._ensure_producer()
        producer.send(RELAY_CONTROL_TOPIC, key=self.name.encode(), value=incarnation.encode())
        producer.flush()
        conn = self._connection()
        with conn.transaction():
            conn.execute("DELETE FROM relay_partition_offsets WHERE relay_name = %s", (self.name,))
            conn.execute(
                "INSERT INTO relay_state (relay_name, position, incarnation) VALUES (%s, 0, %s) "
                "ON CONFLICT (relay_name) DO UPDATE SET position = 0, incarnation = EXCLUDED.incarnation, "
                "updated_at = now()",
                (self.name, incarnation),
            )
        self._last_marker_check = now
        return RelayState(0, incarnation)

    def _broker_holds(self, incarnation: str) -> bool:
        """Whether the control topic still holds the marker of ``incarnation``."""
        consumer = KafkaConsumer(
            bootstrap_servers=self.bootstrap_servers,
            enable_auto_commit=False,
            consumer_timeout_ms=1000,
            request_timeout_ms=5000,
            bootstrap_timeout_ms=5000,
        )
        try:
            if not consumer.partitions_for_topic(RELAY_CONTROL_TOPIC):
                return False
            partition = TopicPartition(RELAY_CONTROL_TOPIC, 0)
            consumer.assign([partition])
            consumer.seek_to_beginning(partition)
            wanted = incarnation.encode()
            return any(record.value == wanted for record in consumer)
        finally:
            consumer.close()

    # ---- helpers ----------------------------------------------------------------------------------

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = pg_connect(self.database_url, autocommit=True)
        return self._conn

    def _close_connection(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        self._schema_created = False

    def _ensure_producer(self) -> KafkaProducer:
        if self._producer is None:
            self._producer = KafkaProducer(
                bootstrap_servers=self.bootstrap_servers,
                enable_idempotence=True,
                acks="all",
                linger_ms=5,
                batch_size=256 * 1024,
                max_in_flight_requests_per_connection=5,
                compression_type=None,
                **kafka_timeouts(self.settings.kafka_request_timeout_ms),
            )
        return self._producer

    def _close_producer(self) -> None:
        if self._producer is not None:
            close_producer(self._producer, timeout=5)
            self._producer = None
