"""The message pipeline on real servers: commands → event store → relay → Kafka → faust workers → read models.

Each test gets its own database and its own broker (Tansu starts in a fraction of a second), so topics
and consumer groups never mix between tests. Relays and workers run as the real ``yekuo`` processes
where a test kills or restarts them.
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
import uuid
from collections import Counter
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
from consumers.notifier import DISPATCH_BATCH
from consumers.relay import Relay
from consumers.sla_clock import SlaClock
from demo.samples import CATEGORIES_FOR_DEMO, sample_walk
from infra.kafka_admin import ensure_yekuo_topics
from infra.messages import INCARNATION_HEADER
from infra.settings import CASE_EVENTS_DLQ_TOPIC, CASE_EVENTS_TOPIC, NOTIFICATIONS_TOPIC, Settings
from infra.stack import LocalStack
from projections import registry
from projections.rebuild import rebuild
from projections.store import create_schema, table_exists
from projections.tables import all_tables

ROOT = Path(__file__).resolve().parents[2]
START = datetime(2025, 9, 1, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
WAIT = 120.0


@dataclass
class Pipeline:
    database_url: str
    bootstrap: str
    settings: Settings
    stack: LocalStack
    app: CaseApplication
    workdir: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    numbers: dict[str, str] = field(default_factory=dict)
    """Case id → case number of every case walked."""

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "DATABASE_URL": self.database_url,
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "YEKUO_KAFKA_SESSION_TIMEOUT_MS": "2000",
            "YEKUO_KAFKA_HEARTBEAT_INTERVAL_MS": "500",
            "YEKUO_NOTIFICATION_DISPATCH_SECONDS": "0.3",
            "YEKUO_LOG_JSON": "true",
            "YEKUO_RELAY_BATCH_SIZE": "200",
            "YEKUO_PROJECTION_BATCH_SIZE": "100",
        }

    def start(self, *args: str, log_name: str) -> subprocess.Popen[bytes]:
        log_file = (self.workdir / f"{log_name}.log").open("ab")
        process = subprocess.Popen(
            [sys.executable, "-m", "cli.main", *args],
            cwd=ROOT,
            env=self.env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        self.processes.append(process)
        return process

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run one ``yekuo`` command against this pipeline's servers."""
        return subprocess.run(
            [sys.executable, "-m", "cli.main", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def log_of(self, name: str) -> str:
        return (self.workdir / f"{name}.log").read_text(errors="replace")

    def relay(self) -> Relay:
        return Relay(self.app, self.database_url, self.bootstrap, self.settings, marker_check_seconds=0.0)

    def walk(self, count: int, prefix: str) -> dict[str, int]:
        """Walk ``count`` sample cases through every stage; case id → final version."""
        finals = {}
        for index in range(count):
            category, fast_track = CATEGORIES_FOR_DEMO[index % len(CATEGORIES_FOR_DEMO)]
            number = f"{prefix}-{index:04d}"
            for command in sample_walk(
                category, number, START + timedelta(hours=index), fast_track=fast_track
            ):
                outcome = self.app.execute(command)
                assert outcome.accepted, (outcome.rule, outcome.message)
            finals[str(command.case_id)] = outcome.case_version or 0
            self.numbers[str(command.case_id)] = number
        return finals


@pytest.fixture
def pipeline(fresh_database_url: str, tmp_path: Path) -> Iterator[Pipeline]:
    settings = Settings(
        state_dir=tmp_path / "stack", kafka_session_timeout_ms=2000, kafka_heartbeat_interval_ms=500
    )
    stack = LocalStack(settings)
    bootstrap = stack.up(("kafka",)).kafka_bootstrap_servers
    app = build_case_application(settings, fresh_database_url)
    with psycopg.connect(fresh_database_url, autocommit=True) as conn:
        create_schema(conn, registry.select())
    line = Pipeline(fresh_database_url, bootstrap, settings, stack, app, tmp_path)
    try:
        yield line
    finally:
        for process in line.processes:
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
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"gave up waiting for {what} after {timeout:.0f}s")


def applied_versions(database_url: str) -> dict[str, int]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        return {str(c): v for c, v in conn.execute("SELECT case_id, version FROM progress_versions")}


def caught_up(database_url: str, finals: dict[str, int]) -> Callable[[], bool]:
    def check() -> bool:
        versions = applied_versions(database_url)
        return all(versions.get(case_id) == version for case_id, version in finals.items())

    return check


def read_models(database_url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every read-model table, in a stable order."""
    models = {}
    with psycopg.connect(database_url, autocommit=True) as conn:
        for projection in registry.select():
            for table in all_tables(projection):
                rows = conn.execute(f"SELECT * FROM {table.name}").fetchall()  # noqa: S608
                models[table.name] = sorted(rows, key=repr)
    return models


def rebuilt_models(pipeline: Pipeline) -> dict[str, list[tuple[Any, ...]]]:
    log = CaseEventLog(pipeline.app)
    with psycopg.connect(pipeline.database_url, autocommit=True) as conn:
        rebuild(conn, registry.select(), log.read_all, log.head)
    return read_models(pipeline.database_url)


def assert_live_rows_equal_a_rebuild(pipeline: Pipeline) -> None:
    """Read the live rows first: the rebuild swaps its own rows in, so reading after it compares them with
    themselves."""
    live = read_models(pipeline.database_url)
    assert rebuilt_models(pipeline) == live


def relay_until_idle(relay: Relay) -> None:
    done = relay.relay_once()
    while done.read:
        done = relay.relay_once()


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


def test_commands_in_read_models_out_and_a_rebuild_gives_the_same_rows(pipeline: Pipeline) -> None:
    finals = pipeline.walk(len(CATEGORIES_FOR_DEMO), "YK-P")
    relay_until_idle(pipeline.relay())
    pipeline.start("worker", log_name="worker")

    wait_for(caught_up(pipeline.database_url, finals), "the worker to apply every case")
    with psycopg.connect(pipeline.database_url, autocommit=True) as conn:
        progress = conn.execute(
            "SELECT status, next_step, jsonb_array_length(timeline), current_stages, customer_name_masked "
            "FROM case_progress WHERE case_number = 'YK-P-0003'"
        ).fetchone()
        by_customer = conn.execute(
            "SELECT count(*) FROM case_progress WHERE customer_ref LIKE '%%'"
        ).fetchone()
        handled = conn.execute(
            "SELECT count(*) FILTER (WHERE completed_at IS NULL), count(DISTINCT department) FROM work_items"
        ).fetchone()
        reviews = conn.execute("SELECT count(*) FROM work_items WHERE kind = 'REVIEW'").fetchone()
        inbox = conn.execute(
            "SELECT recipient_kind, count(*) FROM notifications GROUP BY recipient_kind ORDER BY 1"
        ).fetchall()
    assert progress is not None
    status, next_step, completed_stages, open_stages, masked_name = progress
    assert status == "COMPLETED" and next_step == "已办结, 感谢您的支持"
    assert completed_stages >= 8 and open_stages == []  # HV single: every stage in the timeline
    assert "*" in masked_name
    assert by_customer == (len(finals),)
    assert handled is not None and handled[0] == 0 and handled[1] >= 5
    assert reviews is not None and reviews[0] >= 6  # HV cases: planning, operations, dispatch review
    kinds = dict(inbox)
    assert kinds.get("DEPARTMENT", 0) > 0 and kinds.get("CUSTOMER", 0) > 0

    with psycopg.connect(pipeline.database_url, autocommit=True) as conn:
        expected = conn.execute("SELECT count(*) FROM notifications").fetchone()
    wait_for(
        lambda: len(topic_values(pipeline.bootstrap, NOTIFICATIONS_TOPIC)) >= (expected or (0,))[0],
        "every notification on the gateway topic",
    )
    sent = [json.loads(v)["notification_id"] for v in topic_values(pipeline.bootstrap, NOTIFICATIONS_TOPIC)]
    assert len(sent) == len(set(sent)) == (expected or (0,))[0]

    # Time passes: the SLA clock records the levels reached (the HV reviews' notices) as case facts.
    ticked = SlaClock(pipeline.app, pipeline.database_url, clock=lambda: START + timedelta(days=400)).tick()
    assert ticked["recorded"] > 0
    relay_until_idle(pipeline.relay())
    finals = {case_id: pipeline.app.get_case(pipeline.numbers[case_id]).version for case_id in finals}
    wait_for(caught_up(pipeline.database_url, finals), "the worker to apply the SLA facts")
    with psycopg.connect(pipeline.database_url, autocommit=True) as conn:
        crossings = conn.execute("SELECT count(*) FROM sla_crossings").fetchone()
    assert crossings == (ticked["recorded"],)

    live = read_models(pipeline.database_url)
    assert rebuilt_models(pipeline) == live

    status_out = pipeline.cli("status", timeout=60)
    assert status_out.returncode == 0, status_out.stderr
    assert "yekuo-projections" in status_out.stdout
    assert "dead letters: none" in status_out.stdout
    assert "SLA clocks: 0 running" in status_out.stdout


def test_acknowledged_notifications_are_read_and_unacknowledged_ones_escalate_once(
    pipeline: Pipeline,
) -> None:
    from consumers.notifier import Notifier

    finals = pipeline.walk(1, "YK-N")  # a residential case: survey and plan go to other departments
    relay_until_idle(pipeline.relay())
    pipeline.start("worker", "--no-timers", log_name="worker")
    wait_for(caught_up(pipeline.database_url, finals), "the worker")
    with psycopg.connect(pipeline.database_url, autocommit=True) as conn:
        notes = conn.execute(
            "SELECT notification_id, case_number, recipient FROM notifications "
            "WHERE recipient_kind = 'DEPARTMENT' ORDER BY created_at"
        ).fetchall()
    assert len(notes) >= 2
    first = notes[0]
    from domain.commands import AcknowledgeNotification
    from domain.vocabulary import Actor

    ack = pipeline.app.execute(
        AcknowledgeNotification(
            command_id=f"ack-{first[0]}",
            case_number=first[1],
            actor=Actor("x-1", "周强", first[2]),
            occurred_at=START + timedelta(days=60),
            channel="STAFF_CONSOLE",
            notification_id=str(first[0]),
        )
    )
    assert ack.accepted, ack.message

    # The case is closed, so nothing escalates; reopen the question on an open case instead.
    open_finals = {}
    commands = sample_walk("RESIDENTIAL", "YK-N-OPEN", START)[:4]  # submitted, accepted, survey assigned
    for command in commands:
        outcome = pipeline.app.execute(command)
        assert outcome.accepted, outcome.message
    open_finals[str(commands[0].case_id)] = outcome.case_version or 0
    relay_until_idle(pipeline.relay())
    wait_for(caught_up(pipeline.database_url, open_finals), "the open case")
    notifier = Notifier(
        pipeline.settings,
        pipeline.database_url,
        pipeline.bootstrap,
        clock=lambda: START + timedelta(days=10),
    )
    with notifier:
        first_round = notifier.escalate_overdue()
        second_round = notifier.escalate_overdue()  # the same command ids: nothing new is recorded
    assert first_round >= 1
    relay_until_idle(pipeline.relay())
    wait_for(
        lambda: bool(
            psycopg.connect(pipeline.database_url, autocommit=True)
            .execute("SELECT count(*) FROM notifications WHERE recipient_kind = 'SUPERVISOR'")
            .fetchone()[0]
        ),
        "the supervisor's notification",
    )
    with psycopg.connect(pipeline.database_url, autocommit=True) as conn:
        acknowledged = conn.execute(
            "SELECT acknowledged_by FROM notifications WHERE notification_id = %s", (first[0],)
        ).fetchone()
        escalations = conn.execute(
            "SELECT count(*) FROM notifications WHERE recipient_kind = 'SUPERVISOR'"
        ).fetchone()
    assert acknowledged == ("周强",)
    assert escalations == (first_round,)
    assert second_round in (0, first_round)  # repeats of the same commands, or nothing left to do
    history = [type(e).__name__ for e in pipeline.app.history("YK-N-OPEN")]
    assert history.count("NotificationEscalated") == first_round


def recorded_notifications(database_url: str) -> set[str]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        return {str(row[0]) for row in conn.execute("SELECT notification_id FROM notifications")}


def undelivered_notifications(database_url: str) -> int:
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM notifications n WHERE NOT EXISTS "
            "(SELECT 1 FROM notification_deliveries d WHERE d.notification_id = n.notification_id)"
        ).fetchone()
    return int(row[0]) if row else 0


def test_kill_9_of_relay_and_worker_mid_stream_loses_and_doubles_nothing(pipeline: Pipeline) -> None:
    finals = pipeline.walk(120, "YK-K")  # ~3 000 events
    assert sum(finals.values()) > 2500
    relay = pipeline.start("relay", log_name="relay")
    worker = pipeline.start("worker", log_name="worker")

    def relay_position() -> int:
        with psycopg.connect(pipeline.database_url, autocommit=True) as conn:
            if not table_exists(conn, "relay_state"):
                return 0
            row = conn.execute("SELECT max(position) FROM relay_state").fetchone()
        return int(row[0] or 0) if row else 0

    head = CaseEventLog(pipeline.app).head()
    wait_for(lambda: relay_position() > 0, "the relay's first batch")
    relay.send_signal(signal.SIGKILL)
    relay.wait()
    assert relay_position() < head, "the relay finished before it was killed"
    wait_for(lambda: len(applied_versions(pipeline.database_url)) > 0, "the worker's first batches")
    worker.send_signal(signal.SIGKILL)  # the relay is down, so the worker had only part of the stream
    worker.wait()
    assert not caught_up(pipeline.database_url, finals)()
    pipeline.start("relay", log_name="relay-2")
    worker = pipeline.start("worker", log_name="worker-2")
    wait_for(lambda: len(applied_versions(pipeline.database_url)) > 30, "the restarted worker's batches")
    worker.send_signal(signal.SIGKILL)  # again, while the relay is streaming the rest
    worker.wait()
    pipeline.start("worker", log_name="worker-3")

    wait_for(caught_up(pipeline.database_url, finals), "every case after the restarts", timeout=240)
    wait_for(lambda: not undelivered_notifications(pipeline.database_url), "every notification delivered")
    live = read_models(pipeline.database_url)
    sent_before_rebuild = topic_values(pipeline.bootstrap, NOTIFICATIONS_TOPIC)
    assert rebuilt_models(pipeline) == live
    sends = Counter(json.loads(v)["notification_id"] for v in sent_before_rebuild)
    assert set(sends) == recorded_notifications(pipeline.database_url), "a notification was lost"
    # At least once (docs/messaging.md): a worker killed after the broker acknowledged a batch and before
    # the delivery ledger committed sends that batch again, same ids. Two kills: at most two batches again.
    repeated = sum(count - 1 for count in sends.values())
    assert repeated <= 2 * DISPATCH_BATCH and max(sends.values()) <= 3, sends.most_common(3)


def read_model_process(worker: subprocess.Popen[bytes], other_than: int | None = None) -> psutil.Process:
    """The worker's child that applies its batches (consumers.projection_worker.ReadModelProcess)."""
    found: list[psutil.Process] = []

    def started() -> bool:
        children = []
        for child in psutil.Process(worker.pid).children():
            with contextlib.suppress(psutil.NoSuchProcess, psutil.ZombieProcess):
                if child.pid != other_than and "spawn_main" in " ".join(child.cmdline()):
                    children.append(child)
        found[:] = children
        return len(found) == 1

    wait_for(started, "the worker's read-model process")
    return found[0]


def test_a_read_model_process_killed_alone_is_started_again_and_one_killed_with_its_worker_goes_too(
    pipeline: Pipeline,
) -> None:
    finals = pipeline.walk(80, "YK-R")  # ~2 000 events
    worker = pipeline.start("worker", log_name="worker")
    first = read_model_process(worker)
    relay = pipeline.start("relay", log_name="relay")
    wait_for(lambda: len(applied_versions(pipeline.database_url)) > 0, "the worker's first batches")
    first.kill()  # mid-stream: a batch it held is sent again to a new read-model process
    finals |= pipeline.walk(20, "YK-R2")  # and batches after the kill, whenever it came

    wait_for(caught_up(pipeline.database_url, finals), "every case after the read-model process died")
    assert "read-model process died; starting it again" in pipeline.log_of("worker")
    second = read_model_process(worker, other_than=first.pid)
    assert worker.poll() is None
    relay.terminate()
    relay.wait(timeout=20)
    assert_live_rows_equal_a_rebuild(pipeline)

    worker.send_signal(signal.SIGKILL)
    worker.wait()
    _, alive = psutil.wait_procs([second], timeout=10)
    assert not alive, "the read-model process outlived its worker's kill -9"


def lose_the_broker_and_republish(pipeline: Pipeline, prefix: str, *, in_flight_batch_lands: bool) -> None:
    """Cases caught up; the memory broker restarts empty while new cases are written; the relay runs
    again. With ``in_flight_batch_lands``, the relay's batch in flight at the restart first lands in the
    new log under the old incarnation (as kafka-python delivers it), so the republished log starts after
    it. Then every case reaches the read models and they equal a rebuild."""
    finals = pipeline.walk(3, prefix)
    relay = pipeline.relay()
    relay_until_idle(relay)
    pipeline.start("worker", log_name="worker")
    wait_for(caught_up(pipeline.database_url, finals), "the first cases")
    lost = relay.state()
    assert lost is not None

    pipeline.stack.restart_kafka()  # a memory broker: topics, offsets and groups are gone
    more = pipeline.walk(2, f"{prefix}2")
    if in_flight_batch_lands:
        ensure_yekuo_topics(pipeline.bootstrap, pipeline.settings)
        in_flight, _ = relay.log.read(lost.position, 1000)
        producer = KafkaProducer(bootstrap_servers=pipeline.bootstrap, acks="all")
        try:
            for message in in_flight:
                producer.send(
                    CASE_EVENTS_TOPIC,
                    key=str(message.case_id).encode(),
                    value=message.to_bytes(),
                    headers=[(INCARNATION_HEADER, lost.incarnation.encode())],
                )
            producer.flush()
        finally:
            producer.close()
    stop = threading.Event()
    runner = threading.Thread(target=relay.run, args=(stop,))
    runner.start()
    try:
        wait_for(caught_up(pipeline.database_url, {**finals, **more}), "the cases after the broker restart")
    finally:
        stop.set()
        runner.join(timeout=30)
    state = relay.state()
    assert state is not None and state.incarnation != lost.incarnation
    assert_live_rows_equal_a_rebuild(pipeline)


def test_the_relay_republishes_after_the_broker_lost_its_data(pipeline: Pipeline) -> None:
    lose_the_broker_and_republish(pipeline, "YK-B", in_flight_batch_lands=False)


def test_a_republished_log_behind_a_batch_of_the_lost_incarnation_is_applied(pipeline: Pipeline) -> None:
    """The worker steps over the old incarnation's records at the start of the new log instead of
    rewinding to offset 0 for ever (it once stopped short so: tests/unit/test_admission.py)."""
    lose_the_broker_and_republish(pipeline, "YK-BP", in_flight_batch_lands=True)


def test_a_poison_event_goes_to_the_dead_letters_and_processing_continues(pipeline: Pipeline) -> None:
    pipeline.start("worker", log_name="worker")
    producer = KafkaProducer(bootstrap_servers=pipeline.bootstrap, acks="all")
    producer.send(CASE_EVENTS_TOPIC, key=b"not-a-case", value=b"{this is not json")
    stranger = {
        "schema": "yekuo.case-event.v1",
        "event_id": str(uuid.uuid4()),
        "case_id": str(uuid.uuid4()),
        "case_number": "YK-GHOST",
        "case_version": 1,  # the next version of an unknown case (a later one would wait as a gap)
        "type": "StageOpened",
        "type_version": 1,
        "occurred_at": "2025-09-01T01:00:00Z",
        "recorded_at": "2025-09-01T01:00:00Z",
        "actor": {"person_id": "p", "name": "n", "department": "MARKETING"},
        "channel": "SYSTEM",
        "reason": "",
        "command_id": "c",
        "payload": {"stage": "SITE_SURVEY", "department": "OPERATIONS"},
        "hash": "h",
        "previous_hash": "g",
        "position": 1,
    }
    producer.send(CASE_EVENTS_TOPIC, key=stranger["case_id"].encode(), value=json.dumps(stranger).encode())
    producer.flush()
    producer.close()
    finals = pipeline.walk(2, "YK-D")
    relay_until_idle(pipeline.relay())

    wait_for(caught_up(pipeline.database_url, finals), "the good events after the poison ones")
    with psycopg.connect(pipeline.database_url, autocommit=True) as conn:
        reasons = [r for (r,) in conn.execute("SELECT reason FROM dead_letters ORDER BY reason")]
    assert len(reasons) == 2
    assert any("undecodable" in r for r in reasons)
    assert any("cannot apply StageOpened" in r for r in reasons)
    wait_for(lambda: len(topic_values(pipeline.bootstrap, CASE_EVENTS_DLQ_TOPIC)) == 2, "the DLQ topic")

    # After a fix, a dead letter of a real case is replayed by recomputing the case from its history.
    case_id = next(iter(finals))
    with psycopg.connect(pipeline.database_url, autocommit=True) as conn:
        conn.execute("DELETE FROM case_progress WHERE case_id = %s", (case_id,))
        conn.execute(
            'INSERT INTO dead_letters (consumer_group, topic, partition, "offset", key, reason, original, '
            "failed_at) VALUES ('yekuo-projections', %s, 0, 999999, %s, 'simulated', '', now())",
            (CASE_EVENTS_TOPIC, case_id),
        )
    replay = pipeline.cli("deadletters", "replay", timeout=60)
    assert "replayed 1, still failing 2" in replay.stdout, replay.stdout + replay.stderr
    with psycopg.connect(pipeline.database_url, autocommit=True) as conn:
        restored = conn.execute("SELECT status FROM case_progress WHERE case_id = %s", (case_id,)).fetchone()
    assert restored == ("COMPLETED",)


def test_two_workers_in_one_group_share_partitions_and_equal_a_rebuild(pipeline: Pipeline) -> None:
    pipeline.start("worker", log_name="worker-a")
    pipeline.start("worker", log_name="worker-b")
    finals = pipeline.walk(40, "YK-W")
    relay_until_idle(pipeline.relay())

    wait_for(caught_up(pipeline.database_url, finals), "both workers")
    partitions = {}
    for name in ("worker-a", "worker-b"):
        seen = set()
        for line in pipeline.log_of(name).splitlines():
            if '"batch applied"' in line:
                seen.update(json.loads(line)["partitions"])
        partitions[name] = seen
    assert partitions["worker-a"] and partitions["worker-b"], partitions
    assert_live_rows_equal_a_rebuild(pipeline)


def test_a_rebuild_during_live_processing_never_shows_readers_a_partial_model(pipeline: Pipeline) -> None:
    finals = pipeline.walk(30, "YK-R")
    relay = pipeline.start("relay", log_name="relay")
    worker = pipeline.start("worker", log_name="worker")
    wait_for(caught_up(pipeline.database_url, finals), "the first cases")
    smallest: list[int] = []
    stop = threading.Event()

    def read_continuously() -> None:
        with psycopg.connect(pipeline.database_url, autocommit=True) as conn:
            while not stop.is_set():
                row = conn.execute("SELECT count(*) FROM case_progress").fetchone()
                smallest.append(int(row[0]) if row else 0)

    reader = threading.Thread(target=read_continuously)
    reader.start()
    try:
        writer = threading.Thread(target=lambda: finals.update(pipeline.walk(10, "YK-R2")))
        writer.start()
        for _ in range(2):
            rebuilt = pipeline.cli("projections", "rebuild", timeout=120)
            assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
            assert "rebuilt progress, workload, notifications, sla" in rebuilt.stdout
        writer.join()
        wait_for(caught_up(pipeline.database_url, finals), "the cases written during the rebuilds")
    finally:
        stop.set()
        reader.join()
    assert smallest and min(smallest) >= 30, "a reader saw an empty or partial model"
    assert_live_rows_equal_a_rebuild(pipeline)

    for process in (relay, worker):  # SIGTERM: both stop cleanly and say so
        process.terminate()
        assert process.wait(timeout=30) == 0
    assert "relay stopped" in pipeline.log_of("relay")
