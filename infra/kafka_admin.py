"""Kafka administration with standard APIs only: wait for a broker, create topics explicitly."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from infra.settings import ALL_TOPICS, RELAY_CONTROL_TOPIC, Settings


class BrokerUnavailableError(Exception):
    """Raised when no Kafka broker answers at the bootstrap address within the timeout."""


def wait_for_broker(bootstrap: str, timeout: float = 30.0) -> None:
    """Return once a metadata request succeeds; raise ``BrokerUnavailableError`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            admin = KafkaAdminClient(
                bootstrap_servers=bootstrap, request_timeout_ms=3000, bootstrap_timeout_ms=3000
            )
        except (KafkaError, OSError, ValueError) as error:
            last_error = error
            time.sleep(0.1)
            continue
        try:
            admin.list_topics()
            return
        except KafkaError as error:
            last_error = error
        finally:
            admin.close()
        time.sleep(0.1)
    raise BrokerUnavailableError(f"no Kafka broker at {bootstrap} after {timeout:.0f}s: {last_error}")


def ensure_topics(
    bootstrap: str, topics: Iterable[str], partitions: int, replication_factor: int = 1
) -> None:
    """Create each missing topic with ``partitions`` partitions; existing topics are left as they are."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    try:
        existing = set(admin.list_topics())
        missing = [
            NewTopic(name=topic, num_partitions=partitions, replication_factor=replication_factor)
            for topic in topics
            if topic not in existing
        ]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # created meanwhile by another process
                admin.create_topics(missing)
    finally:
        admin.close()


def ensure_yekuo_topics(bootstrap: str, settings: Settings) -> None:
    """Create Yekuo's topics: the data topics with the configured partitions, the control topic with one."""
    ensure_topics(bootstrap, ALL_TOPICS, settings.topic_partitions, settings.topic_replication_factor)
    ensure_topics(bootstrap, (RELAY_CONTROL_TOPIC,), 1, settings.topic_replication_factor)


def partition_counts(bootstrap: str, topics: Iterable[str]) -> dict[str, int]:
    """Number of partitions of each topic (0 when it does not exist)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    try:
        wanted = list(topics)
        described = {
            item.get("name", item.get("topic")): len(item["partitions"])
            for item in admin.describe_topics(wanted)
            if not item.get("error_code")
        }
    finally:
        admin.close()
    return {topic: described.get(topic, 0) for topic in wanted}
