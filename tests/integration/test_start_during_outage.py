"""A long-running process started while PostgreSQL is down waits for it instead of exiting, then works as
the same process (the campaign found ``yekuo sla-clock`` exiting with code 3 instead).

The test starts its own PostgreSQL (a ``LocalStack`` in the test's directory) and stops it first.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
from kafka import KafkaProducer

from app.bootstrap import build_case_application
from infra.kafka_admin import ensure_yekuo_topics
from infra.settings import INTAKE_RESULTS_TOPIC, Settings
from infra.stack import LocalStack
from projections import registry
from projections.store import create_schema
from tests.integration.test_intake import Intake, TopicReader, results_by_id, walks

ROOT = Path(__file__).resolve().parents[2]
WAIT = 60.0


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"gave up waiting for {what} after {WAIT:.0f}s")


def health_of(state_dir: Path, process: str) -> dict[str, object] | None:
    try:
        return dict(json.loads((state_dir / "health" / f"{process}.json").read_text()))
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def test_an_sla_clock_started_before_postgres_waits_not_ready_and_runs_once_postgres_is_up(
    tmp_path: Path,
) -> None:
    stack = LocalStack(Settings(state_dir=tmp_path / "stack"))
    database_url = stack.up(("postgres",)).database_url  # made once for its data directory, port, tables…
    with psycopg.connect(database_url, autocommit=True) as conn:
        create_schema(conn, registry.select())
    stack._postgres_down()  # …then stopped: the clock starts while PostgreSQL is not running
    state_dir = tmp_path / "state"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DATABASE_URL": database_url,
           "YEKUO_STATE_DIR": str(state_dir), "YEKUO_LOG_JSON": "true", "YEKUO_SLA_TICK_SECONDS": "0.5"}  # fmt: skip
    log = tmp_path / "sla-clock.log"
    with log.open("wb") as out:
        clock = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "sla-clock"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        wait_for(lambda: (health_of(state_dir, "sla-clock") or {}).get("ready") is False, "not ready")
        waiting = health_of(state_dir, "sla-clock")
        alive_while_down = clock.poll() is None

        assert stack.up(("postgres",)).database_url == database_url
        wait_for(lambda: (health_of(state_dir, "sla-clock") or {}).get("ready") is True, "ready")
        wait_for(lambda: "sla clock started" in log.read_text(), "the clock's loop")
        alive_after = clock.poll() is None
        ready = health_of(state_dir, "sla-clock")
    finally:
        clock.terminate()
        clock.wait(timeout=30)
        stack.down()

    assert alive_while_down, log.read_text()[-3000:]
    assert waiting is not None and "postgres" in dict(waiting["waiting_for"])  # type: ignore[call-overload]
    assert alive_after and ready is not None and ready["pid"] == clock.pid
    text = log.read_text()
    assert text.count("postgres unavailable; sla clock waits and retries") == 1
    assert text.count("postgres available again; sla clock resumed") == 1
    assert "Traceback" not in text


def test_an_intake_started_before_postgres_waits_not_ready_and_decides_every_message_once_it_is_up(
    tmp_path: Path,
) -> None:
    settings = Settings(
        state_dir=tmp_path / "stack", kafka_session_timeout_ms=2000, kafka_heartbeat_interval_ms=500
    )
    stack = LocalStack(settings)
    ends = stack.up(("postgres", "kafka"))
    ensure_yekuo_topics(ends.kafka_bootstrap_servers, settings)
    build_case_application(settings, ends.database_url).close()  # tables, then PostgreSQL stops
    stack._postgres_down()
    producer = KafkaProducer(bootstrap_servers=ends.kafka_bootstrap_servers, acks="all", linger_ms=5)
    line = Intake(ends.database_url, ends.kafka_bootstrap_servers, settings, tmp_path, producer,
                  extra_env={"YEKUO_STATE_DIR": str(settings.state_dir)})  # fmt: skip
    commands = [command for walk in walks(3, "YK-LATE") for command in walk]
    results = TopicReader(ends.kafka_bootstrap_servers, INTAKE_RESULTS_TOPIC)
    process = line.start()
    try:
        wait_for(
            lambda: "postgres unavailable; intake waits and retries" in line.log_of(), "the intake waiting"
        )
        alive_while_down = process.poll() is None
        assert stack.up(("postgres",)).database_url == ends.database_url
        line.send_commands(commands)
        wait_for(lambda: len(results_by_id(results)) == len(commands), "an outcome for every message")
        outcomes = results_by_id(results)
        alive_after = process.poll() is None
    finally:
        process.terminate()
        process.wait(timeout=30)
        results.close()
        producer.close()
        stack.down(purge=True)

    assert alive_while_down, line.log_of()[-3000:]
    assert alive_after
    assert all(len(found) == 1 for found in outcomes.values())
    assert {found[0]["outcome"] for found in outcomes.values()} == {"ACCEPTED"}, outcomes
    log = line.log_of()
    assert log.count("postgres available again; intake resumed") == 1
    assert "Traceback" not in log
