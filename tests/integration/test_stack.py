"""The local stack starts, reuses, recovers and stops real servers, and leaves nothing behind."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import psycopg
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from infra.kafka_admin import partition_counts
from infra.settings import ALL_TOPICS, CASE_EVENTS_TOPIC, Settings
from infra.stack import LocalStack, StackNotRunningError


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[LocalStack]:
    local = LocalStack(Settings(state_dir=tmp_path / "state", topic_partitions=3))
    yield local
    local.down(purge=True)


def _gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
            return True
        time.sleep(0.05)
    return False


def test_up_starts_postgres_and_a_broker_with_every_topic_created_explicitly(stack: LocalStack) -> None:
    endpoints = stack.up()

    assert endpoints.started == ("postgres", "kafka")
    with psycopg.connect(endpoints.database_url) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == ("yekuo",)
    assert partition_counts(endpoints.kafka_bootstrap_servers, ALL_TOPICS) == dict.fromkeys(ALL_TOPICS, 3)
    producer = KafkaProducer(bootstrap_servers=endpoints.kafka_bootstrap_servers, acks="all")
    producer.send(CASE_EVENTS_TOPIC, key=b"k", value=b"hello", partition=1).get(timeout=10)
    producer.close()
    consumer = KafkaConsumer(bootstrap_servers=endpoints.kafka_bootstrap_servers, enable_auto_commit=False)
    consumer.assign([TopicPartition(CASE_EVENTS_TOPIC, 1)])
    consumer.seek_to_beginning()
    values = [r.value for batch in consumer.poll(timeout_ms=5000).values() for r in batch]
    consumer.close()
    assert values == [b"hello"]


def test_up_twice_reuses_the_running_servers(stack: LocalStack) -> None:
    first = stack.up()

    second = stack.up()

    assert second.started == ()
    assert (second.database_url, second.kafka_bootstrap_servers) == (
        first.database_url,
        first.kafka_bootstrap_servers,
    )


def test_down_stops_both_servers_and_leaves_no_process(stack: LocalStack) -> None:
    stack.up()
    pids = [info["pid"] for info in stack.status().values()]

    stack.down()

    assert all(_gone(pid) for pid in pids)
    assert not any(info["running"] for info in stack.status().values())
    with pytest.raises(StackNotRunningError, match="yekuo stack up"):
        stack.endpoints()


def test_up_recovers_after_both_servers_were_killed(stack: LocalStack) -> None:
    stack.up()
    pids = [info["pid"] for info in stack.status().values()]
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    assert all(_gone(pid) for pid in pids)

    endpoints = stack.up()

    assert set(endpoints.started) == {"postgres", "kafka"}
    with psycopg.connect(endpoints.database_url) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_configured_servers_are_used_and_nothing_is_started(stack: LocalStack, tmp_path: Path) -> None:
    running = stack.up()
    configured = LocalStack(
        Settings(
            state_dir=tmp_path / "other",
            DATABASE_URL=running.database_url,
            KAFKA_BOOTSTRAP_SERVERS=running.kafka_bootstrap_servers,
        )
    )

    endpoints = configured.up()
    configured.down()

    assert endpoints.started == ()
    assert endpoints.database_url == running.database_url
    assert all(info["running"] for info in stack.status().values())
