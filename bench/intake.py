"""Intake throughput and latency, beside baselines measured in the same run on the same servers.

Not a test. Starts its own PostgreSQL and broker (temporary directory) and prints one JSON document:
  - baseline ``direct``: the same commands through ``CaseApplication.execute_batch`` in batches of the
    intake batch size, in process, no Kafka (the application-service rate);
  - baseline ``noop_agent``: a faust agent that does nothing with each message, same broker, same
    settings and batching as the intake consumer (faust's own ceiling);
  - ``intake``: the same commands as envelopes on ``yekuo.intake.v1`` through one ``yekuo intake``
    process, counted when their result arrives on ``yekuo.intake-results.v1`` (accepted commands/s);
  - ``latency``: publish → result p50/p99 at a fixed offered load (``--rate``), below saturation.
The workload is a realistic mix of sample cases (every category, some 三零), interleaved across cases.

    python bench/intake.py [--cases 150] [--rate 100] [--latency-seconds 8]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import structlog
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from psycopg.conninfo import make_conninfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.bootstrap import build_case_application  # noqa: E402 — after the path is set
from app.intake_envelopes import envelope_for, source_for  # noqa: E402
from demo.samples import CATEGORIES_FOR_DEMO, sample_walk  # noqa: E402
from domain.commands import Command  # noqa: E402
from infra.kafka_admin import ensure_topics, ensure_yekuo_topics  # noqa: E402
from infra.settings import INTAKE_RESULTS_TOPIC, INTAKE_TOPIC, Settings  # noqa: E402
from infra.source_systems import load_source_systems  # noqa: E402
from infra.stack import running_stack  # noqa: E402

NOOP_TOPIC = "bench.intake-noop.v1"
NOOP_DONE_TOPIC = "bench.intake-noop-done.v1"


def interleaved(prefix: str, cases: int) -> list[Command]:
    """Commands of ``cases`` sample cases, interleaved round-robin so batches span many cases."""
    start = datetime(2025, 9, 1, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
    walks = [
        sample_walk(category, f"{prefix}-{i:05d}", start + timedelta(hours=i), fast_track=fast)
        for i in range(cases)
        for category, fast in [CATEGORIES_FOR_DEMO[i % len(CATEGORIES_FOR_DEMO)]]
    ]
    out: list[Command] = []
    for step in range(max(len(w) for w in walks)):
        out.extend(w[step] for w in walks if step < len(w))
    return out


def fresh_database(server_url: str, name: str) -> str:
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return make_conninfo(server_url, dbname=name)


def measure_direct(settings: Settings, database_url: str, commands: list[Command]) -> dict[str, float]:
    app = build_case_application(settings, database_url)
    size = settings.intake_batch_size
    began = time.perf_counter()
    accepted = 0
    for index in range(0, len(commands), size):
        outcomes = app.execute_batch(commands[index : index + size])
        accepted += sum(1 for o in outcomes if not isinstance(o, Exception) and o.accepted)
    elapsed = time.perf_counter() - began
    app.close()
    return {
        "commands": len(commands),
        "accepted": accepted,
        "seconds": round(elapsed, 3),
        "commands_per_s": round(accepted / elapsed, 1),
    }


class Results:
    """Arrival time of each message id's first result, read continuously by a plain consumer."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.arrived: dict[str, float] = {}
        self.accepted = 0
        self._stop = threading.Event()
        self._consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        partitions = [TopicPartition(topic, p) for p in self._consumer.partitions_for_topic(topic) or ()]
        self._consumer.assign(partitions)
        self._consumer.seek_to_end(*partitions)
        for partition in partitions:
            self._consumer.position(partition)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for records in self._consumer.poll(timeout_ms=100).values():
                now = time.perf_counter()
                for record in records:
                    value = json.loads(record.value)
                    key = value.get("message_id") or value.get("done")
                    if key not in self.arrived:
                        self.arrived[key] = now
                        self.accepted += value.get("outcome") == "ACCEPTED"

    def wait_for(self, ids: set[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not ids <= self.arrived.keys():
            if time.monotonic() > deadline:
                raise SystemExit(f"gave up: {len(ids - self.arrived.keys())} results missing")
            time.sleep(0.05)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._consumer.close()


def start_process(args: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(  # noqa: S603 — our own interpreter and script
        [sys.executable, *args], cwd=ROOT, env=env, stdout=log_path.open("ab"), stderr=subprocess.STDOUT
    )


def publish(producer: KafkaProducer, topic: str, envelopes: list[tuple[str, bytes]]) -> dict[str, float]:
    sent: dict[str, float] = {}
    for message_id, value in envelopes:
        sent[message_id] = time.perf_counter()
        producer.send(topic, key=json.loads(value)["case_number"].encode(), value=value)
    producer.flush()
    return sent


def envelopes_of(commands: list[Command]) -> list[tuple[str, bytes]]:
    systems = load_source_systems()
    return [(c.command_id, envelope_for(c, source_for(c, systems)).to_bytes()) for c in commands]


def measure_intake(bootstrap: str, commands: list[Command], results: Results) -> dict[str, float]:
    envelopes = envelopes_of(commands)
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, batch_size=262_144)
    sent = publish(producer, INTAKE_TOPIC, envelopes)
    producer.close()
    ids = set(sent)
    results.wait_for(ids, timeout=600)
    began = min(sent.values())
    ended = max(results.arrived[i] for i in ids)
    latencies = sorted(results.arrived[i] - sent[i] for i in ids)
    return {
        "commands": len(ids),
        "seconds": round(ended - began, 3),
        "commands_per_s": round(len(ids) / (ended - began), 1),
        "p50_ms_saturated": round(1000 * latencies[len(latencies) // 2], 1),
    }


def measure_latency(
    bootstrap: str, commands: list[Command], results: Results, rate: float
) -> dict[str, float]:
    envelopes = envelopes_of(commands)
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
    sent: dict[str, float] = {}
    began = time.perf_counter()
    for index, (message_id, value) in enumerate(envelopes):
        due = began + index / rate
        while (now := time.perf_counter()) < due:
            time.sleep(min(due - now, 0.005))
        sent[message_id] = time.perf_counter()
        producer.send(INTAKE_TOPIC, key=json.loads(value)["case_number"].encode(), value=value)
    producer.flush()
    producer.close()
    results.wait_for(set(sent), timeout=300)
    latencies = sorted(results.arrived[i] - sent[i] for i in sent)
    return {
        "offered_per_s": rate,
        "messages": len(sent),
        "p50_ms": round(1000 * statistics.median(latencies), 1),
        "p99_ms": round(1000 * latencies[int(len(latencies) * 0.99) - 1], 1),
    }


def measure_noop(bootstrap: str, env: dict[str, str], workdir: Path, count: int) -> dict[str, float]:
    ensure_topics(bootstrap, (NOOP_TOPIC, NOOP_DONE_TOPIC), 8, 1)
    done = Results(bootstrap, NOOP_DONE_TOPIC)
    agent = start_process([__file__, "--noop-agent", bootstrap, str(count)], env, workdir / "noop.log")
    try:
        producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
        producer.send(NOOP_TOPIC, key=b"warm", value=b"warm")
        producer.flush()
        done.wait_for({"warm"}, timeout=120)
        began = time.perf_counter()
        payload = b"x" * 900  # about the size of an intake envelope
        for index in range(count):
            producer.send(NOOP_TOPIC, key=f"YK-{index % 500}".encode(), value=payload)
        producer.flush()
        producer.close()
        done.wait_for({"all"}, timeout=600)
        elapsed = done.arrived["all"] - began
        return {"messages": count, "seconds": round(elapsed, 3), "messages_per_s": round(count / elapsed, 1)}
    finally:
        agent.terminate()
        agent.wait(timeout=30)
        done.close()


def run_noop_agent(bootstrap: str, count: int) -> None:
    """The do-nothing agent: same faust set-up and batching as the intake consumer."""
    from faust import Worker

    from consumers import faust_transport

    settings = Settings()
    app = faust_transport.faust_app("bench-noop", bootstrap, settings)
    source = app.topic(NOOP_TOPIC, key_serializer="raw", value_serializer="raw")
    done = app.topic(NOOP_DONE_TOPIC, key_serializer="raw", value_serializer="raw")
    seen = {"n": 0}

    @app.agent(source, name="bench-noop-agent")
    async def noop(stream: Any) -> None:
        async for events in stream.take_events(
            settings.intake_batch_size, within=settings.intake_batch_seconds
        ):
            for event in events:
                if event.message.value == b"warm":
                    await done.send(key=b"d", value=b'{"done": "warm"}')
                else:
                    seen["n"] += 1
            if seen["n"] >= count:
                await done.send(key=b"d", value=b'{"done": "all"}')

    Worker(app, loglevel="warning", quiet=True).execute_from_commandline()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=150, help="Sample cases in the throughput phase.")
    parser.add_argument("--rate", type=float, default=100.0, help="Offered load of the latency phase.")
    parser.add_argument("--latency-seconds", type=float, default=8.0)
    parser.add_argument("--noop-agent", nargs=2, metavar=("BOOTSTRAP", "COUNT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.noop_agent:
        os.environ.setdefault("YEKUO_LOG_JSON", "true")
        run_noop_agent(args.noop_agent[0], int(args.noop_agent[1]))
        return
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    workdir = Path(tempfile.mkdtemp(prefix="yekuo-bench-intake-"))
    settings = Settings(
        state_dir=workdir / "stack", kafka_session_timeout_ms=2000, kafka_heartbeat_interval_ms=500
    )
    with running_stack(settings) as ends:
        bootstrap = ends.kafka_bootstrap_servers
        ensure_yekuo_topics(bootstrap, settings)
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "YEKUO_KAFKA_SESSION_TIMEOUT_MS": "2000",
            "YEKUO_KAFKA_HEARTBEAT_INTERVAL_MS": "500",
            "YEKUO_LOG_JSON": "true",
            "YEKUO_LOG_LEVEL": "WARNING",
        }
        direct_commands = interleaved("YK-DIRECT", args.cases)
        direct = measure_direct(settings, fresh_database(ends.database_url, "bench_direct"), direct_commands)
        print(f"direct: {direct}", file=sys.stderr)
        noop = measure_noop(bootstrap, env, workdir, len(direct_commands))
        print(f"noop agent: {noop}", file=sys.stderr)

        intake_db = fresh_database(ends.database_url, "bench_intake")
        build_case_application(settings, intake_db).close()
        results = Results(bootstrap, INTAKE_RESULTS_TOPIC)
        intake = start_process(
            ["-m", "cli.main", "intake"], {**env, "DATABASE_URL": intake_db}, workdir / "intake.log"
        )
        try:
            measure_intake(bootstrap, interleaved("YK-WARM", 2), results)  # joined and warm
            through = measure_intake(bootstrap, interleaved("YK-INTAKE", args.cases), results)
            print(f"intake: {through}", file=sys.stderr)
            count = int(args.rate * args.latency_seconds)
            paced = interleaved("YK-PACED", max(1, count // 18 + 1))[:count]
            latency = measure_latency(bootstrap, paced, results, args.rate)
        finally:
            intake.terminate()
            intake.wait(timeout=30)
            results.close()
    print(
        json.dumps(
            {
                "benchmark": "intake",
                "batch_size": settings.intake_batch_size,
                "direct_execute_batch": direct,
                "noop_faust_agent": noop,
                "intake": through,
                "intake_vs_direct": round(through["commands_per_s"] / direct["commands_per_s"], 2),
                "intake_vs_noop_agent": round(through["commands_per_s"] / noop["messages_per_s"], 2),
                "latency_publish_to_result": latency,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
