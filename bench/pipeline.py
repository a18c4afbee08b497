"""Throughput of the event pipeline (store → relay → Kafka → projection worker), beside baselines measured
in the same run on the same broker and database.

Not a test. Prints one JSON document (progress goes to stderr).

Baselines, which use none of Yekuo's pipeline code:
  1. ``raw_producer``: kafka-python ``KafkaProducer`` (acks=all, idempotent, linger 5 ms) sending
     ``--records`` ~600-byte JSON records to a fresh 8-partition topic;
  2. ``raw_consumer``: kafka-python ``KafkaConsumer`` reading them back (all partitions assigned, from the
     beginning);
  3. ``faust_noop``: a faust agent that does nothing with ``take_events(500, within=0.2)`` batches of those
     records, in its own process (this script with ``--faust-noop-worker``), timed from its first to its
     last event;
  4. ``raw_log_read``: ``recorder.select_notifications(limit=1000)`` over the case application's whole
     notification log (median of three passes).
Subjects (each fails on its own: an error is recorded in the JSON and the rest still run):
  A. ``populate``: sample cases walked through every stage with ``app.execute`` (``--cases``);
  B. ``relay``: ``Relay.relay_once()`` until the log is drained;
  C. ``projection``: one ``yekuo worker`` process consuming everything the relay published, timed from its
     first committed offset to the last (its start-up is reported apart);
  E. ``lag``: commands offered at ``--offered-rate`` for ``--seconds`` from ``--submitters`` threads (one
     group committer) while a ``yekuo relay`` process runs and
     the worker of C keeps running; lag = commit of the command → its case version visible in
     ``progress_versions`` (polled every 20 ms, which bounds the resolution);
  D. ``rebuild``: ``projections.rebuild.rebuild`` over the whole log, after the worker has stopped.
Consumer groups use a 2 s session timeout (Tansu joins take half of it, ../shared/STACK.md) in both the
faust baseline and the worker, so their start-up figures compare; throughput figures exclude start-up.

Without ``DATABASE_URL`` / ``KAFKA_BOOTSTRAP_SERVERS`` the local stack (embedded PostgreSQL, Tansu) is
started in a temporary directory and stopped at exit.

    python bench/pipeline.py [--records 20000] [--cases 520] [--offered-rate 200] [--seconds 15]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import structlog

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from infra.kafka_admin import ensure_topics
from infra.settings import CASE_EVENTS_TOPIC, Settings
from infra.stack import running_stack

ROOT = Path(__file__).resolve().parents[1]
CATEGORY_MIX = [("RESIDENTIAL", 60), ("LV_NON_RESIDENTIAL", 25), ("HV_SINGLE", 10), ("HV_DUAL", 5)]
WALK_START = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
PARTITIONS = 8
RECORD_BYTES = 600
SESSION_TIMEOUT_MS = 2000
HEARTBEAT_INTERVAL_MS = 500
POLL_SECONDS = 0.02
AIMS = {
    "projection_vs_faust_noop": ("live projection >= 0.8x do-nothing faust agent", 0.8),
    "rebuild_vs_raw_log_read": ("rebuild >= 0.3x raw log read", 0.3),
}


def progress(message: str) -> None:
    print(f"[pipeline] {message}", file=sys.stderr, flush=True)


def per_second(count: float, seconds: float) -> float:
    return round(count / seconds, 1) if seconds > 0 else 0.0


def percentile(values: list[float], q: int) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def measured(name: str, results: dict[str, Any], work: Callable[[], dict[str, Any]]) -> None:
    """Run one measurement; its failure is recorded under its name and does not stop the others."""
    progress(f"{name} …")
    try:
        results[name] = work()
    except Exception as error:
        results[name] = {"error": repr(error)}
    progress(f"{name}: {json.dumps(results[name], ensure_ascii=False)[:300]}")


# ---- baselines 1-2: kafka-python ----------------------------------------------------------------------


def sample_records(count: int) -> list[tuple[bytes, bytes]]:
    """(key, value) pairs shaped like relayed case events: ~600 bytes of JSON, keys spread over cases."""
    case_ids = [str(uuid.uuid4()) for _ in range(1000)]
    records = []
    for i in range(count):
        case_id = case_ids[i % len(case_ids)]
        payload = {"stage": "SITE_SURVEY", "findings": ""}
        body: dict[str, Any] = {
            "schema": "yekuo.case-event.v1",
            "event_id": str(uuid.uuid4()),
            "case_id": case_id,
            "case_number": f"YK-B{i:012d}",
            "case_version": i // len(case_ids) + 1,
            "event_type": "StageCompleted",
            "occurred_at": "2025-03-03T09:00:00+00:00",
            "position": i + 1,
            "payload": payload,
        }
        filler = RECORD_BYTES - len(json.dumps(body).encode())
        payload["findings"] = "x" * max(filler, 0)
        records.append((case_id.encode(), json.dumps(body).encode()))
    return records


def raw_producer(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5)
    try:
        producer.partitions_for(topic)  # metadata and connection outside the timing
        started = time.perf_counter()
        futures = [producer.send(topic, key=key, value=value) for key, value in records]
        producer.flush()
        for future in futures:
            future.get(timeout=0)
        seconds = time.perf_counter() - started
    finally:
        producer.close(timeout=10)
    return {
        "messages": len(records),
        "record_bytes": round(statistics.mean(len(v) for _, v in records)),
        "seconds": round(seconds, 3),
        "per_second": per_second(len(records), seconds),
    }


def raw_consumer(bootstrap: str, topic: str, expected: int, timeout: float = 120.0) -> dict[str, Any]:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    try:
        deadline = time.monotonic() + 30
        while not (partitions := consumer.partitions_for_topic(topic)):
            if time.monotonic() > deadline:
                raise RuntimeError(f"no metadata for topic {topic}")
            time.sleep(0.1)
        assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(assigned)
        consumer.seek_to_beginning(*assigned)
        count = 0
        started = time.perf_counter()
        while count < expected:
            if time.perf_counter() - started > timeout:
                raise RuntimeError(f"read {count} of {expected} records in {timeout:.0f}s")
            batches = consumer.poll(timeout_ms=500)
            count += sum(len(batch) for batch in batches.values())
        seconds = time.perf_counter() - started
    finally:
        consumer.close()
    return {"messages": count, "seconds": round(seconds, 3), "per_second": per_second(count, seconds)}


# ---- baseline 3: a faust agent doing nothing ----------------------------------------------------------


def faust_noop_worker(args: argparse.Namespace) -> None:
    """Child mode: consume ``--records`` records of ``--topic``, write the timing to ``--result-file``."""
    import faust

    logging.basicConfig(level=logging.WARNING)
    app = faust.App(
        f"bench-faust-noop-{uuid.uuid4().hex[:8]}",
        broker=[f"kafka://{server}" for server in args.bootstrap.split(",")],
        store="memory://",
        web_enabled=False,
        broker_session_timeout=SESSION_TIMEOUT_MS / 1000,
        broker_heartbeat_interval=HEARTBEAT_INTERVAL_MS / 1000,
        consumer_auto_offset_reset="earliest",
    )
    topic = app.topic(args.topic, value_serializer="raw")
    state: dict[str, Any] = {"events": 0, "batches": 0}

    @app.agent(topic)
    async def noop(stream: Any) -> None:
        async for batch in stream.take_events(500, within=0.2):
            now = time.time()
            if state["events"] == 0:
                state["first_at"], state["first_batch"] = now, len(batch)
            state["events"] += len(batch)
            state["batches"] += 1
            if state["events"] >= args.records and "last_at" not in state:
                state["last_at"] = now
                result = Path(args.result_file)
                result.with_suffix(".tmp").write_text(json.dumps(state))
                result.with_suffix(".tmp").rename(result)
                os.kill(os.getpid(), signal.SIGTERM)  # faust's own graceful shutdown

    faust.Worker(app, loglevel="WARNING", quiet=True, redirect_stdouts=False).execute_from_commandline()


def faust_noop(
    bootstrap: str, topic: str, expected: int, work_dir: Path, timeout: float = 300.0
) -> dict[str, Any]:
    result = work_dir / "faust-noop.json"
    log_path = work_dir / "faust-noop.log"
    command = [sys.executable, str(Path(__file__).resolve()), "--faust-noop-worker"]
    command += ["--bootstrap", bootstrap, "--topic", topic, "--records", str(expected)]
    command += ["--result-file", str(result)]
    with log_path.open("wb") as log_file:
        launched_at = time.time()
        process = subprocess.Popen(  # noqa: S603 — our own script, fixed arguments
            command, cwd=ROOT, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    try:
        while not result.exists():
            if process.poll() is not None:
                raise RuntimeError(f"faust worker exited with {process.returncode}: {tail(log_path)}")
            if time.time() - launched_at > timeout:
                raise RuntimeError(f"faust worker did not finish in {timeout:.0f}s: {tail(log_path)}")
            time.sleep(0.05)
    finally:
        stop_process(process)
    timing = json.loads(result.read_text())
    seconds = timing["last_at"] - timing["first_at"]
    after_first = timing["events"] - timing["first_batch"]
    return {
        "events": timing["events"],
        "batches": timing["batches"],
        "seconds_first_to_last": round(seconds, 3),
        "per_second": per_second(after_first, seconds),
        "startup_seconds": round(timing["first_at"] - launched_at, 2),
        "note": "rate counts the events after the first batch over first→last event",
    }


# ---- processes ---------------------------------------------------------------------------------------


def tail(path: Path, lines: int = 15) -> str:
    if not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def stop_process(process: subprocess.Popen[bytes], timeout: float = 30.0) -> int | None:
    """SIGTERM the process we started, wait for it; kill it if it does not stop in ``timeout``."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    return process.returncode


@dataclass
class Service:
    """A ``yekuo`` process (worker or relay) on the benchmark's PostgreSQL and broker."""

    process: subprocess.Popen[bytes]
    log_path: Path
    launched_at: float

    @staticmethod
    def spawn(
        args: list[str], database_url: str, bootstrap: str, work_dir: Path, name: str
    ) -> tuple[subprocess.Popen[bytes], Path, float]:
        env = dict(os.environ)
        env.update(
            {
                "DATABASE_URL": database_url,
                "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
                "YEKUO_STATE_DIR": str(work_dir / f"{name}-state"),
            }
        )
        env.setdefault("YEKUO_KAFKA_SESSION_TIMEOUT_MS", str(SESSION_TIMEOUT_MS))
        env.setdefault("YEKUO_KAFKA_HEARTBEAT_INTERVAL_MS", str(HEARTBEAT_INTERVAL_MS))
        log_path = work_dir / f"{name}.log"
        with log_path.open("wb") as log_file:
            launched_at = time.monotonic()
            process = subprocess.Popen(  # noqa: S603 — our own CLI, fixed arguments
                [sys.executable, "-m", "cli.main", *args],
                cwd=ROOT,
                env=env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        return process, log_path, launched_at

    @classmethod
    def relay(cls, database_url: str, bootstrap: str, work_dir: Path) -> Service:
        return cls(*cls.spawn(["relay"], database_url, bootstrap, work_dir, "relay"))

    def wait_ready(self, state_dir: Path, timeout: float = 60) -> None:
        """Until its readiness file says ready (consumers/backoff.Health), so start-up is not lag."""
        from consumers.backoff import read_health

        deadline = time.monotonic() + timeout
        while not any(h.pid == self.process.pid and h.ready for h in read_health(state_dir)):
            self.check_alive()
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.log_path.stem} not ready after {timeout} s: {tail(self.log_path)}")
            time.sleep(0.1)

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            name = self.log_path.stem
            raise RuntimeError(f"{name} exited with {self.process.returncode}: {tail(self.log_path)}")

    def stop(self) -> int | None:
        return stop_process(self.process)


@dataclass
class Worker(Service):
    """A ``yekuo worker`` process of one consumer group."""

    group: str = ""

    @classmethod
    def start(cls, database_url: str, bootstrap: str, work_dir: Path) -> Worker:
        group = f"bench-{uuid.uuid4().hex[:12]}"
        args = ["worker", "--group", group]
        return cls(*cls.spawn(args, database_url, bootstrap, work_dir, f"worker-{group}"), group=group)


def committed_offsets(conn: psycopg.Connection[Any], group: str) -> int | None:
    """Sum of the group's next offsets on the case-events topic; None while it has no row."""
    try:
        row = conn.execute(
            "SELECT count(*), coalesce(sum(next_offset), 0) FROM projection_offsets "
            "WHERE consumer_group = %s AND topic = %s",
            (group, CASE_EVENTS_TOPIC),
        ).fetchone()
    except psycopg.errors.UndefinedTable:
        return None
    return int(row[1]) if row and row[0] else None


def relayed_offsets(database_url: str, published: int) -> int:
    """What a consumer from the beginning must reach: the relay's next offsets (equal to ``published``
    on a fresh broker; larger when the topic held messages before this run)."""
    try:
        with psycopg.connect(database_url, autocommit=True) as conn:
            row = conn.execute(
                "SELECT coalesce(sum(next_offset), 0) FROM relay_partition_offsets WHERE topic = %s",
                (CASE_EVENTS_TOPIC,),
            ).fetchone()
    except psycopg.Error:
        return published
    return max(int(row[0]) if row else 0, published)


# ---- subjects -----------------------------------------------------------------------------------------


def walks(seed: int) -> Iterator[list[Any]]:
    """Endless realistic case walks, categories drawn from the mix (as in bench/commands.py)."""
    from demo.samples import sample_walk

    rng = random.Random(seed)
    categories = [name for name, weight in CATEGORY_MIX for _ in range(weight)]
    while True:
        category = rng.choice(categories)
        fast_track = category in ("RESIDENTIAL", "LV_NON_RESIDENTIAL") and rng.random() < 0.3
        case_number = f"YK-B{uuid.uuid4().hex[:12].upper()}"
        yield sample_walk(category, case_number, WALK_START, fast_track=fast_track)


def populate(app: Any, cases: int) -> dict[str, Any]:
    commands = events = 0
    started = time.perf_counter()
    source = walks(seed=1)
    for _ in range(cases):
        for command in next(source):
            outcome = app.execute(command)
            if not outcome.accepted:
                raise RuntimeError(f"sample walk command rejected: {outcome}")
            commands += 1
            events += len(outcome.event_types)
    seconds = time.perf_counter() - started
    return {
        "cases": cases,
        "commands": commands,
        "events": events,
        "seconds": round(seconds, 2),
        "commands_per_second": per_second(commands, seconds),
        "events_per_second": per_second(events, seconds),
    }


def relay_drain(relay: Any) -> dict[str, Any]:
    published = read = passes = 0
    started = time.perf_counter()
    while True:
        result = relay.relay_once()
        passes += 1
        if result.read == 0:
            break
        read += result.read
        published += result.published
    seconds = time.perf_counter() - started
    return {
        "notifications_read": read,
        "published": published,
        "passes": passes,
        "seconds": round(seconds, 3),
        "per_second": per_second(published, seconds),
    }


def projection_catch_up(
    worker: Worker, database_url: str, target: int, stall: float = 60.0
) -> dict[str, Any]:
    first: tuple[float, int] | None = None  # when the first offset row appeared, and its offset sum
    last_sum, last_change = -1, time.monotonic()
    with psycopg.connect(database_url, autocommit=True) as conn:
        while True:
            worker.check_alive()
            total = committed_offsets(conn, worker.group)
            now = time.monotonic()
            if total is not None:
                first = first or (now, total)
                if total >= target:
                    break
            if (total or 0) != last_sum:
                last_sum, last_change = total or 0, now
            elif now - last_change > stall:
                raise RuntimeError(
                    f"worker stalled at offset sum {total} of {target}: {tail(worker.log_path)}"
                )
            time.sleep(POLL_SECONDS)
    first_at, first_sum = first
    seconds = now - first_at
    return {
        "group": worker.group,
        "events": target,
        "startup_seconds": round(first_at - worker.launched_at, 2),
        "events_at_first_offset": first_sum,
        "seconds_first_offset_to_done": round(seconds, 3),
        "per_second": per_second(target - first_sum, seconds),
        "note": "rate counts the events after the first committed batch; start-up reported apart",
    }


@dataclass
class LagTracker:
    """Commands waiting for their case version to show in ``progress_versions``, and the lags seen."""

    pending: dict[Any, list[tuple[int, float]]] = field(default_factory=dict)
    lags: list[float] = field(default_factory=list)
    polls: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def expect(self, case_id: Any, version: int, committed_at: float) -> None:
        with self.lock:
            self.pending.setdefault(case_id, []).append((version, committed_at))

    def waiting(self) -> int:
        with self.lock:
            return sum(len(items) for items in self.pending.values())

    def poll(self, conn: psycopg.Connection[Any]) -> None:
        with self.lock:
            case_ids = list(self.pending)
        if not case_ids:
            return
        try:
            rows = conn.execute(
                "SELECT case_id, version FROM progress_versions WHERE case_id = ANY(%s)", (case_ids,)
            ).fetchall()
        except psycopg.errors.UndefinedTable:
            return
        seen_at = time.monotonic()
        self.polls += 1
        with self.lock:
            for case_id, version in rows:
                items = self.pending.get(case_id, [])
                self.lags += [seen_at - committed for expected, committed in items if expected <= version]
                left = [(expected, committed) for expected, committed in items if expected > version]
                if left:
                    self.pending[case_id] = left
                else:
                    self.pending.pop(case_id, None)

    def run(self, database_url: str, stop: threading.Event) -> None:
        with psycopg.connect(database_url, autocommit=True) as conn:
            while not stop.is_set():
                self.poll(conn)
                stop.wait(POLL_SECONDS)


def offered_load(
    app: Any,
    tracker: LagTracker,
    worker: Service,
    rate: float,
    seconds: float,
    submitters: int,
    active_cases: int = 50,
) -> dict[str, Any]:
    """Offer ``rate`` commands/s for ``seconds`` from ``submitters`` threads, as several front ends would
    (each offers its share on its own schedule, round-robin over its own ``active_cases`` case walks,
    through one group committer as the API and intake do)."""
    from app.group_commit import GroupCommitter

    committer = GroupCommitter(app)
    execute = app.execute if submitters == 1 else committer.execute
    counts = [[0, 0] for _ in range(submitters)]  # submitted, rejected
    failures: list[BaseException] = []
    started = time.monotonic()

    def submit(index: int) -> None:
        share = rate / submitters
        source = walks(seed=2 + index)
        active = [iter(next(source)) for _ in range(active_cases)]
        mine = counts[index]
        i = 0
        try:
            while (due := started + (mine[0] + index / submitters) / share) < started + seconds:
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                slot = i % active_cases
                i += 1
                command = next(active[slot], None)
                if command is None:
                    active[slot] = iter(next(source))
                    command = next(active[slot])
                outcome = execute(command)
                committed_at = time.monotonic()
                mine[0] += 1
                if outcome.accepted and outcome.case_version is not None:
                    tracker.expect(command.case_id, outcome.case_version, committed_at)
                else:
                    mine[1] += 1
        except BaseException as error:  # reported by the subject, not lost in the thread
            failures.append(error)

    threads = [threading.Thread(target=submit, args=(i,), name=f"submitter-{i}") for i in range(submitters)]
    for thread in threads:
        thread.start()
    while any(thread.is_alive() for thread in threads):
        worker.check_alive()
        time.sleep(0.2)
    elapsed = time.monotonic() - started
    if failures:
        raise failures[0]
    return {
        "submitters": submitters,
        "submitted": sum(c[0] for c in counts),
        "rejected": sum(c[1] for c in counts),
        "submit_seconds": round(elapsed, 2),
    }


def lag_under_load(
    app: Any,
    relay: Service,
    worker: Worker | None,
    database_url: str,
    rate: float,
    seconds: float,
    submitters: int,
) -> dict[str, Any]:
    if worker is None or worker.process.poll() is not None:
        raise RuntimeError("needs the running projection worker of the projection subject")
    tracker = LagTracker()
    stop_poller = threading.Event()
    poller = threading.Thread(
        target=tracker.run, args=(database_url, stop_poller), name="poller", daemon=True
    )
    poller.start()
    try:
        load = offered_load(app, tracker, worker, rate, seconds, submitters)
        drain_deadline = time.monotonic() + 30
        while tracker.waiting() and time.monotonic() < drain_deadline:
            worker.check_alive()
            relay.check_alive()
            time.sleep(0.1)
    finally:
        stop_poller.set()
        poller.join(timeout=10)
    lags_ms = sorted(lag * 1000 for lag in tracker.lags)
    if not lags_ms:
        raise RuntimeError(f"no command became visible; {tracker.waiting()} waiting: {tail(worker.log_path)}")
    return {
        "offered_per_second": rate,
        "achieved_per_second": per_second(load["submitted"], load["submit_seconds"]),
        **load,
        "visible": len(lags_ms),
        "never_visible_within_30s": tracker.waiting(),
        "lag_p50_ms": round(percentile(lags_ms, 50), 1),
        "lag_p99_ms": round(percentile(lags_ms, 99), 1),
        "lag_max_ms": round(lags_ms[-1], 1),
        "poll_interval_ms": POLL_SECONDS * 1000,
    }


# ---- baseline 4: the notification log -----------------------------------------------------------------


def read_log_once(recorder: Any) -> tuple[int, float]:
    position = count = 0
    started = time.perf_counter()
    while notifications := recorder.select_notifications(
        start=position, limit=1000, inclusive_of_start=False
    ):
        count += len(notifications)
        position = notifications[-1].id
    return count, time.perf_counter() - started


def raw_log_read(recorder: Any, source: str) -> dict[str, Any]:
    passes = sorted((read_log_once(recorder) for _ in range(3)), key=lambda p: p[1])
    count, seconds = passes[1]
    return {
        "log": source,
        "notifications": count,
        "seconds": round(seconds, 3),
        "per_second": per_second(count, seconds),
        "note": "median of 3 passes; counts every notification (case events and command receipts)",
    }


# ---- running ------------------------------------------------------------------------------------------


@contextmanager
def servers(work_dir: Path) -> Iterator[tuple[str, str, Settings]]:
    """Configured servers, else the local stack in ``work_dir`` (stopped at exit)."""
    settings = Settings(state_dir=work_dir / "stack")
    with running_stack(settings) as endpoints:
        yield endpoints.database_url, endpoints.kafka_bootstrap_servers, settings


def fresh_database(server_url: str, name: str) -> str:
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    if "://" in server_url:
        parts = urlsplit(server_url)
        return urlunsplit(parts._replace(path=f"/{name}"))
    return psycopg.conninfo.make_conninfo(server_url, dbname=name)


def ratio(numerator: dict[str, Any], denominator: dict[str, Any], key: str = "per_second") -> float | None:
    try:
        return round(float(numerator[key]) / float(denominator["per_second"]), 3)
    except (KeyError, TypeError, ZeroDivisionError):
        return None


def run(args: argparse.Namespace) -> dict[str, Any]:
    baselines: dict[str, Any] = {}
    subjects: dict[str, Any] = {}
    with (
        tempfile.TemporaryDirectory(prefix="yekuo-bench-pipeline-") as tmp,
        contextlib.ExitStack() as cleanup,
    ):
        work_dir = Path(tmp)
        server_url, bootstrap, settings = cleanup.enter_context(servers(work_dir))
        database_url = fresh_database(server_url, "bench_pipeline")
        progress(f"PostgreSQL {server_url} (database bench_pipeline) · Kafka {bootstrap}")

        raw_topic = f"bench.raw-{uuid.uuid4().hex[:8]}"
        ensure_topics(bootstrap, [raw_topic], PARTITIONS)
        records = sample_records(args.records)
        measured("raw_producer", baselines, lambda: raw_producer(bootstrap, raw_topic, records))
        measured("raw_consumer", baselines, lambda: raw_consumer(bootstrap, raw_topic, args.records))
        measured("faust_noop", baselines, lambda: faust_noop(bootstrap, raw_topic, args.records, work_dir))

        app = relay = worker = None

        def build_and_populate() -> dict[str, Any]:
            nonlocal app
            from app.bootstrap import build_case_application

            app = build_case_application(settings, database_url)
            cleanup.callback(app.close)
            return populate(app, args.cases)

        def relay_all() -> dict[str, Any]:
            nonlocal relay
            from consumers.relay import Relay

            if app is None:
                raise RuntimeError("needs the case application of the populate subject")
            relay = Relay(app, database_url, bootstrap, settings)
            try:
                return relay_drain(relay)
            finally:
                stopped = threading.Event()
                stopped.set()
                relay.run(stopped)  # returns at once, closing the relay's producer

        def project_all() -> dict[str, Any]:
            nonlocal worker
            if relay is None or "published" not in subjects["relay"]:
                raise RuntimeError("needs the events published by the relay subject")
            target = relayed_offsets(database_url, subjects["relay"]["published"])
            worker = Worker.start(database_url, bootstrap, work_dir)
            cleanup.callback(worker.stop)
            return projection_catch_up(worker, database_url, target)

        def lag() -> dict[str, Any]:
            if app is None:
                raise RuntimeError("needs the case application of the populate subject")
            relay = Service.relay(database_url, bootstrap, work_dir)
            cleanup.callback(relay.stop)
            relay.wait_ready(work_dir / "relay-state")
            return lag_under_load(
                app, relay, worker, database_url, args.offered_rate, args.seconds, args.submitters
            )

        def log_read() -> dict[str, Any]:
            if app is None:
                raise RuntimeError("needs the case application of the populate subject")
            return raw_log_read(app.recorder, "case application")

        def rebuild_all() -> dict[str, Any]:
            from app.event_log import CaseEventLog
            from projections import registry
            from projections.rebuild import rebuild

            if app is None:
                raise RuntimeError("needs the case application of the populate subject")
            log = CaseEventLog(app)
            with psycopg.connect(database_url, autocommit=True) as conn:
                report = rebuild(conn, registry.select(), log.read_all, log.head)
            return {
                "events": report.events,
                "seconds": round(report.seconds, 3),
                "per_second": per_second(report.events, report.seconds),
            }

        measured("populate", subjects, build_and_populate)
        measured("relay", subjects, relay_all)
        measured("projection", subjects, project_all)
        measured("lag", subjects, lag)
        if worker is not None:
            progress(f"stopping worker: exit code {worker.stop()}")
        measured("raw_log_read", baselines, log_read)
        measured("rebuild", subjects, rebuild_all)
        progress("stopping …")

    ratios = {
        "projection_vs_faust_noop": ratio(subjects["projection"], baselines["faust_noop"]),
        "rebuild_vs_raw_log_read": ratio(subjects["rebuild"], baselines["raw_log_read"]),
        "relay_vs_raw_producer": ratio(subjects["relay"], baselines["raw_producer"]),
    }
    aims = [
        {"aim": aim, "value": ratios[name], "threshold": threshold, "met": _met(ratios[name], threshold)}
        for name, (aim, threshold) in AIMS.items()
    ]
    p99 = subjects["lag"].get("lag_p99_ms")
    aims.append(
        {
            "aim": f"lag p99 < 1 s at {args.offered_rate:g} commands/s offered",
            "value": p99,
            "threshold": 1000,
            "offered_per_second": args.offered_rate,
            "achieved_per_second": subjects["lag"].get("achieved_per_second"),
            "met": None if p99 is None or args.offered_rate < 200 else p99 < 1000,
        }
    )
    return {
        "benchmark": "pipeline",
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "config": {
            "records": args.records,
            "record_bytes": RECORD_BYTES,
            "partitions": PARTITIONS,
            "cases": args.cases,
            "offered_rate": args.offered_rate,
            "submitters": args.submitters,
            "seconds": args.seconds,
            "session_timeout_ms": SESSION_TIMEOUT_MS,
            "database": "DATABASE_URL" if os.environ.get("DATABASE_URL") else "embedded (local stack)",
            "broker": "KAFKA_BOOTSTRAP_SERVERS"
            if os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
            else "Tansu (local stack)",
        },
        "unit": "messages / events / notifications per second; lag in ms",
        "baselines": baselines,
        "subjects": subjects,
        "ratios": ratios,
        "aims": aims,
    }


def _met(value: float | None, threshold: float) -> bool | None:
    return None if value is None else value >= threshold


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=20_000, help="records of the Kafka baselines")
    parser.add_argument("--cases", type=int, default=520, help="sample cases walked (~39 events each)")
    parser.add_argument("--offered-rate", type=float, default=200.0, help="commands/s of the lag subject")
    parser.add_argument("--seconds", type=float, default=15.0, help="length of the offered load")
    parser.add_argument(
        "--submitters", type=int, default=4, help="threads offering the lag subject's commands"
    )
    parser.add_argument("--faust-noop-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--bootstrap", help=argparse.SUPPRESS)
    parser.add_argument("--topic", help=argparse.SUPPRESS)
    parser.add_argument("--result-file", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.faust_noop_worker:
        faust_noop_worker(args)
        return
    logging.basicConfig(level=logging.WARNING)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    print(json.dumps(run(args), indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
