"""Outages on real servers: PostgreSQL killed with kill -9, the broker stopped, both restarted on their ports.

Each test starts its own PostgreSQL and Tansu (a ``LocalStack`` in the test's directory), because it kills
them; the session's servers are never touched. The relay, the projection worker (with its notifier timers)
and the SLA clock run as the real ``yekuo`` processes; afterwards each must still be the same process,
report ready again, and the read models must equal a rebuild from the event store.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psutil
import psycopg
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from app.application import CaseApplication
from app.bootstrap import build_case_application
from app.event_log import CaseEventLog
from consumers.backoff import close_producer, read_health
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
WAIT = 30.0
"""Seconds any one wait may take. Every wait polls for a condition that becomes true within seconds when the
processes work; a generous bound only turns a hang into a clear failure."""
PROCESSES = ("relay", "worker", "sla-clock")
OUTAGE_SECONDS = float(os.environ.get("YEKUO_TEST_OUTAGE_SECONDS", "3"))
"""How long the killed server stays down. The suite keeps it short; `YEKUO_TEST_OUTAGE_SECONDS=65` runs
the minute-long outage the reliability doc promises (the back-off is capped at 10 s, so length adds no new
path, only time)."""


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

    def start(self, name: str, *args: str, database_url: str | None = None) -> None:
        log_file = (self.workdir / f"{name}.log").open("ab")
        self.processes[name] = subprocess.Popen(
            [sys.executable, "-m", "cli.main", *args],
            cwd=ROOT,
            env={**self.env, "DATABASE_URL": database_url or self.database_url},
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


def retried(work: Callable[[], Any], timeout: float = WAIT + OUTAGE_SECONDS) -> Any:
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
                process.kill()  # these tests are about surviving kills; a clean stop is tested elsewhere
                process.wait(timeout=10)
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


def store_heads(servers: Servers) -> dict[str, int]:
    """Each walked case's newest stored version. The SLA clock appends crossing facts to the same cases, so
    the versions the walk saw are not the target."""
    table = servers.app.recorder.events_table_name
    with psycopg.connect(servers.database_url, autocommit=True, connect_timeout=3) as conn:
        heads = {
            str(case): version
            for case, version in conn.execute(
                f"SELECT originator_id, max(originator_version) FROM {table} GROUP BY originator_id"  # noqa: S608
            )
        }
    return {case_id: heads[case_id] for case_id in servers.finals}


def caught_up(servers: Servers) -> Callable[[], bool]:
    def check() -> bool:
        heads = store_heads(servers)
        with psycopg.connect(servers.database_url, autocommit=True, connect_timeout=3) as conn:
            versions = {str(c): v for c, v in conn.execute("SELECT case_id, version FROM progress_versions")}
        return all(versions.get(case_id) == head for case_id, head in heads.items())

    return check


def all_ready(servers: Servers) -> Callable[[], bool]:
    """Every started process has a fresh readiness file saying ready."""

    def check() -> bool:
        fresh = [h for h in read_health(servers.settings.state_dir) if not h.stale]
        return len(fresh) >= len(servers.processes) and all(h.ready for h in fresh)

    return check


def not_ready_waiting_for(servers: Servers, dependency: str) -> Callable[[], bool]:
    def check() -> bool:
        return any(
            dependency in h.waiting_for for h in read_health(servers.settings.state_dir) if not h.stale
        )

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


def assert_live_rows_equal_a_rebuild(servers: Servers) -> None:
    """Read the live rows first: the rebuild swaps its own rows in, so reading after it compares them with
    themselves."""
    live = read_models(servers.database_url)
    assert rebuilt_models(servers) == live


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


class Load:
    """Commands walked in a thread while a server is down, retried as an integrator would; errors kept."""

    def __init__(self, servers: Servers, count: int, prefix: str) -> None:
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(servers, count, prefix))
        self.thread.start()

    def _run(self, servers: Servers, count: int, prefix: str) -> None:
        try:
            servers.walk(count, prefix)
        except BaseException as error:  # re-raised in the test's thread by finish()
            self.error = error

    def finish(self) -> None:
        self.thread.join(timeout=4 * WAIT + OUTAGE_SECONDS)
        assert not self.thread.is_alive(), "the load did not finish after the restart"
        if self.error is not None:
            raise self.error


def start_processes(servers: Servers) -> dict[str, int]:
    for name in PROCESSES:
        servers.start(name, name)
    wait_for(all_ready(servers), "relay, worker and SLA clock ready")
    return {name: process.pid for name, process in servers.processes.items()}


def kill_postgres(stack: LocalStack) -> None:
    """kill -9 of the postmaster and every backend, as when the machine's OOM killer or an operator hits it."""
    pid = stack._postmaster_pid()
    assert pid is not None
    postmaster = psutil.Process(pid)
    victims = [postmaster, *postmaster.children(recursive=True)]
    for process in victims:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.send_signal(signal.SIGKILL)
    psutil.wait_procs(victims, timeout=10)


def kill_broker(stack: LocalStack) -> None:
    process = stack._tansu_process()
    assert process is not None
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)


def assert_ridden_out(servers: Servers, pids: dict[str, int]) -> None:
    """Same processes, ready again, and once the SLA clock is stopped the read models equal a rebuild."""
    wait_for(all_ready(servers), "every process ready again")
    for name, process in servers.processes.items():
        assert process.poll() is None, f"{name} exited:\n{servers.log_of(name)[-3000:]}"
        assert process.pid == pids[name], name
    clock = servers.processes["sla-clock"]
    clock.kill()  # it appends crossing facts; stopped, the read models can be compared with a still log
    clock.wait(timeout=10)
    wait_for(caught_up(servers), "every case in the read models after the outage")
    assert_live_rows_equal_a_rebuild(servers)
    for name in PROCESSES:
        assert "Crashed" not in servers.log_of(name), name
        assert "Traceback" not in servers.log_of(name), name


def test_a_postgres_kill_9_under_load_is_ridden_out_by_every_process(servers: Servers) -> None:
    servers.walk(4, "YK-PG")
    pids = start_processes(servers)
    wait_for(caught_up(servers), "the first cases")

    load = Load(servers, 8, "YK-PG2")
    kill_postgres(servers.stack)
    wait_for(not_ready_waiting_for(servers, "postgres"), "a process to report the outage")
    time.sleep(OUTAGE_SECONDS)  # the outage lasts while the processes back off (the outage, not a wait)
    servers.stack.up(("postgres",))  # the same data directory and port
    load.finish()

    assert_ridden_out(servers, pids)
    relay_log = servers.log_of("relay")
    assert "postgres unavailable" in relay_log and "postgres available again" in relay_log
    for name in ("relay", "sla-clock"):
        # The SLA clock reads through the event store, whose recorder retries a failed statement itself
        # for a few seconds (eventsourcing's @retry): a short outage may never reach the clock, and then
        # it logs nothing. What it logs must be one line per outage and its end, never one per retry.
        log = servers.log_of(name)
        assert log.count("postgres unavailable") <= 2, f"{name}: one line per outage, not one per retry"
        assert log.count("postgres unavailable") == log.count("postgres available again"), name


def test_a_broker_kill_9_and_restart_is_ridden_out_and_the_read_models_equal_a_rebuild(
    servers: Servers,
) -> None:
    servers.walk(4, "YK-KB")
    pids = start_processes(servers)
    wait_for(caught_up(servers), "the first cases")

    load = Load(servers, 8, "YK-KB2")  # commands go on: the event store does not need the broker
    kill_broker(servers.stack)
    wait_for(not_ready_waiting_for(servers, "kafka"), "a process to report the outage")
    time.sleep(OUTAGE_SECONDS)
    servers.stack.up(("kafka",))  # the same port, empty (a memory broker): the relay must republish
    load.finish()

    assert_ridden_out(servers, pids)
    relay_log = servers.log_of("relay")
    assert "the broker has lost the relayed events" in relay_log
    assert relay_log.count("kafka unavailable") <= 2, "one line per outage, not one per retry"


def test_the_relay_on_a_database_nobody_set_up_creates_its_tables_and_relays_the_first_case(
    servers: Servers,
) -> None:
    with psycopg.connect(servers.database_url, autocommit=True) as conn:
        conn.execute("CREATE DATABASE untouched")
    untouched = servers.database_url.rsplit("/", 1)[0] + "/untouched"
    servers.start("relay", "relay", database_url=untouched)  # before anything created a table there
    wait_for(all_ready(servers), "the relay ready on the empty database")

    app = build_case_application(servers.settings, untouched)
    try:
        commands = sample_walk("RESIDENTIAL", "YK-FRESH-1", START)
        for command in commands:
            assert app.execute(command).accepted
        stored = len(CaseEventLog(app).history(commands[0].case_id))
    finally:
        app.close()
    wait_for(
        lambda: len(topic_values(servers.bootstrap, CASE_EVENTS_TOPIC)) == stored, "the case's events relayed"
    )
    assert servers.processes["relay"].poll() is None
    assert "Traceback" not in servers.log_of("relay")


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


def test_a_producer_closed_with_records_pending_drops_them_and_does_not_raise(kafka_bootstrap: str) -> None:
    """What a broker outage leaves behind when the relay or notifier gives up a producer: records still
    pending. kafka-python's ``close`` raises then (and a notifier timer crashed the worker with it);
    ``close_producer`` must not, and must fail those records' futures so nothing records them as sent."""
    producer = KafkaProducer(
        bootstrap_servers=kafka_bootstrap, acks="all", linger_ms=600_000, delivery_timeout_ms=700_000
    )
    futures = [producer.send(NOTIFICATIONS_TOPIC, key=b"pending", value=b"{}") for _ in range(3)]
    assert not any(future.is_done for future in futures)  # held in the accumulator: lingering

    close_producer(producer, timeout=0)

    assert all(future.is_done and future.failed() for future in futures)
    assert producer._closed  # its I/O thread is gone, not left running


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
    assert_live_rows_equal_a_rebuild(servers)
