"""Outages on real servers: PostgreSQL killed with kill -9, the broker stopped, both restarted on their ports.

Each test starts its own PostgreSQL and Tansu (a ``LocalStack`` in the test's directory), because it kills
them; the session's servers are never touched. The relay, the projection worker (with its notifier timers)
and the SLA clock run as the real ``yekuo`` processes; afterwards each must still be the same process,
report ready again, and the read models must equal a rebuild from the event store.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from app.application import CaseApplication
from app.bootstrap import build_case_application
from app.event_log import CaseEventLog
from consumers.notifier import Notifier
from demo.samples import CATEGORIES_FOR_DEMO, sample_walk
from infra.settings import CASE_EVENTS_DLQ_TOPIC, CASE_EVENTS_TOPIC, NOTIFICATIONS_TOPIC, Settings
from infra.stack import LocalStack
from projections import registry
from projections.rebuild import rebuild
from projections.store import create_schema
from projections.tables import all_tables

ROOT = Path(__file__).resolve().parents[2]
START = datetime(2025, 9, 1, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
WAIT = 120.0


@dataclass
class Servers:
    """A dedicated PostgreSQL and broker, the case application on them, and the processes started."""

    stack: LocalStack
    settings: Settings
    database_url: str
    bootstrap: str
    app: CaseApplication
    workdir: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    finals: dict[str, int] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "DATABASE_URL": self.database_url,
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "YEKUO_STATE_DIR": str(self.settings.state_dir),
            "YEKUO_KAFKA_SESSION_TIMEOUT_MS": "2000",
            "YEKUO_KAFKA_HEARTBEAT_INTERVAL_MS": "500",
            "YEKUO_KAFKA_REQUEST_TIMEOUT_MS": "3000",
            "YEKUO_NOTIFICATION_DISPATCH_SECONDS": "0.3",
            "YEKUO_SLA_TICK_SECONDS": "0.5",
            "YEKUO_LOG_JSON": "true",
            "YEKUO_RELAY_BATCH_SIZE": "200",
            "YEKUO_PROJECTION_BATCH_SIZE": "100",
        }

    def start(self, name: str, *args: str) -> None:
        log_file = (self.workdir / f"{name}.log").open("ab")
        self.processes[name] = subprocess.Popen(
            [sys.executable, "-m", "cli.main", *args],
            cwd=ROOT,
            env=self.env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )

    def log_of(self, name: str) -> str:
        return (self.workdir / f"{name}.log").read_text(errors="replace")

    def walk(self, count: int, prefix: str) -> None:
        """Walk sample cases, retrying each command through an outage (the load of an integrator)."""
        for index in range(count):
            category, fast_track = CATEGORIES_FOR_DEMO[index % len(CATEGORIES_FOR_DEMO)]
            for command in sample_walk(
                category, f"{prefix}-{index:04d}", START + timedelta(hours=index), fast_track=fast_track
            ):
                outcome = retried(lambda c=command: self.app.execute(c))
                assert outcome.accepted, (outcome.rule, outcome.message)
                self.finals[str(command.case_id)] = outcome.case_version or 0


def retried(work: Callable[[], Any], timeout: float = WAIT) -> Any:
    """Repeat ``work`` while the database is down: commands are idempotent by command id."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return work()
        except Exception:  # any error while the server restarts; re-raised once the deadline passed
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Servers]:
    settings = Settings(
        state_dir=tmp_path / "stack",
        kafka_session_timeout_ms=2000,
        kafka_heartbeat_interval_ms=500,
        kafka_request_timeout_ms=3000,
    )
    stack = LocalStack(settings)
    ends = stack.up(("postgres", "kafka"))
    app = build_case_application(settings, ends.database_url)
    with psycopg.connect(ends.database_url, autocommit=True) as conn:
        create_schema(conn, registry.select())
    line = Servers(stack, settings, ends.database_url, ends.kafka_bootstrap_servers, app, tmp_path)
    try:
        yield line
    finally:
        for process in line.processes.values():
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        app.close()
        stack.down(purge=True)


def wait_for(condition: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except psycopg.OperationalError:
            pass  # the server is still coming back: look again
        time.sleep(0.2)
    raise AssertionError(f"gave up waiting for {what} after {timeout:.0f}s")


def caught_up(servers: Servers) -> Callable[[], bool]:
    def check() -> bool:
        with psycopg.connect(servers.database_url, autocommit=True, connect_timeout=3) as conn:
            versions = {str(c): v for c, v in conn.execute("SELECT case_id, version FROM progress_versions")}
        return all(versions.get(case_id) == v for case_id, v in servers.finals.items())

    return check


def read_models(database_url: str) -> dict[str, list[tuple[Any, ...]]]:
    models = {}
    with psycopg.connect(database_url, autocommit=True) as conn:
        for projection in registry.select():
            for table in all_tables(projection):
                rows = conn.execute(f"SELECT * FROM {table.name}").fetchall()  # noqa: S608
                models[table.name] = sorted(rows, key=repr)
    return models


def rebuilt_models(servers: Servers) -> dict[str, list[tuple[Any, ...]]]:
    log = CaseEventLog(servers.app)
    with psycopg.connect(servers.database_url, autocommit=True) as conn:
        rebuild(conn, registry.select(), log.read_all, log.head)
    return read_models(servers.database_url)


def topic_values(bootstrap: str, topic: str) -> list[bytes]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, consumer_timeout_ms=1500)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(partitions)
        for partition in partitions:
            consumer.seek_to_beginning(partition)
        return [record.value for record in consumer]
    finally:
        consumer.close()


def test_the_delivery_ledger_marks_only_what_the_broker_acknowledged(servers: Servers) -> None:
    servers.walk(3, "YK-LG")
    log = CaseEventLog(servers.app)
    with psycopg.connect(servers.database_url, autocommit=True) as conn:
        rebuild(
            conn, registry.select(), log.read_all, log.head
        )  # notifications to hand out, no broker needed
        pending = conn.execute("SELECT count(*) FROM notifications").fetchone()
    assert pending is not None and pending[0] > 0
    notifier = Notifier(servers.settings, servers.database_url, servers.bootstrap)
    try:
        servers.stack._kafka_down()
        with pytest.raises(Exception):  # noqa: B017, PT011 -- whichever Kafka error; what matters is below
            notifier.dispatch_pending()
        with psycopg.connect(servers.database_url, autocommit=True) as conn:
            assert conn.execute("SELECT count(*) FROM notification_deliveries").fetchone() == (0,)

        notifier.drop_producer()
        servers.stack._kafka_up()
        servers.stack.up(("kafka",))  # topics back
        assert retried(notifier.dispatch_pending, timeout=60) == pending[0]
    finally:
        notifier.close()
    with psycopg.connect(servers.database_url, autocommit=True) as conn:
        marked = {str(n) for (n,) in conn.execute("SELECT notification_id FROM notification_deliveries")}
    published = {
        json.loads(v)["notification_id"] for v in topic_values(servers.bootstrap, NOTIFICATIONS_TOPIC)
    }
    assert marked == published
    assert len(marked) == pending[0]


def test_a_1_mb_undecodable_event_is_dead_lettered_without_restarting_the_agent(servers: Servers) -> None:
    servers.walk(3, "YK-MB")
    servers.start("worker", "worker")
    big = b"\xff" + b"x" * 1_000_000
    producer = KafkaProducer(bootstrap_servers=servers.bootstrap, acks="all", max_request_size=2_000_000)
    producer.send(CASE_EVENTS_TOPIC, key=b"huge", value=big).get(timeout=30)
    producer.close()
    servers.start("relay", "relay")
    servers.walk(3, "YK-MB2")

    wait_for(caught_up(servers), "the real cases around the huge message")
    with psycopg.connect(servers.database_url, autocommit=True) as conn:
        rows = conn.execute("SELECT reason, length(original) FROM dead_letters").fetchall()
    assert len(rows) == 1 and rows[0][1] == len(big), rows
    wait_for(lambda: len(topic_values(servers.bootstrap, CASE_EVENTS_DLQ_TOPIC)) == 1, "the DLQ topic")
    letter = json.loads(topic_values(servers.bootstrap, CASE_EVENTS_DLQ_TOPIC)[0])
    assert "truncated" in letter["reason"] and "dead_letters table" in letter["reason"]
    worker_log = servers.log_of("worker")
    assert servers.processes["worker"].poll() is None
    assert "Crashed" not in worker_log and "MessageSizeTooLarge" not in worker_log
    assert rebuilt_models(servers) == read_models(servers.database_url)
