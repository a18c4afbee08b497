"""A metadata update overtaken by a topic change is repeated at once, not after ``metadata_max_age_ms``.

aiokafka's synchronizer starts an update either on a wake-up or when the metadata reaches its age. An
update of the second kind during which the tracked topics change (as a group leader's ``set_topics``
does just before it assigns partitions) is repeated only on the next wake-up, which aiokafka does not
send while an update is in flight. ``consumers.faust_transport.wake_metadata_synchronizer`` sends it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiokafka.client import AIOKafkaClient

from consumers.faust_transport import wake_metadata_synchronizer

AGE_MS = 600_000  # far beyond the test: an update left for the age would not come during it


async def topics_changed_during_an_aged_update(
    bootstrap: str, prepare: Callable[[AIOKafkaClient], None], wait: float
) -> tuple[bool, list[set[str]]]:
    """Whether the client's pending metadata update completed within ``wait`` seconds, and the topics of
    each metadata request it sent after the change."""
    client = AIOKafkaClient(bootstrap_servers=bootstrap, metadata_max_age_ms=AGE_MS)
    prepare(client)
    await client.bootstrap()
    try:
        client.set_topics(["yekuo-wake-a"])
        await client._maybe_wait_metadata()
        update = client._metadata_update
        requested: list[set[str]] = []

        async def an_update_the_age_started(cluster: Any, topics: set[str]) -> bool:
            if not requested:  # the first: make it what the age starts, with no wake-up pending
                client._md_update_waiter = asyncio.get_running_loop().create_future()
                requested.append(set(topics))
                client.set_topics(["yekuo-wake-a", "yekuo-wake-b"])  # the leader's change, mid-update
            else:
                requested.append(set(topics))
            return bool(await update(cluster, topics))

        client._metadata_update = an_update_the_age_started
        pending = client.force_metadata_update()
        done, _ = await asyncio.wait({asyncio.ensure_future(pending)}, timeout=wait)
        return bool(done), requested
    finally:
        await client.close()


def test_a_topic_change_during_an_aged_metadata_update_is_fetched_at_once(kafka_bootstrap: str) -> None:
    completed, requested = asyncio.run(
        topics_changed_during_an_aged_update(kafka_bootstrap, wake_metadata_synchronizer, wait=30)
    )
    assert completed
    assert requested == [{"yekuo-wake-a"}, {"yekuo-wake-a", "yekuo-wake-b"}]


def test_stock_aiokafka_leaves_that_update_for_the_age(kafka_bootstrap: str) -> None:
    """Why the wake-up exists: without it the same update is still pending (if aiokafka fixes this, the
    wake-up can go)."""
    completed, requested = asyncio.run(
        topics_changed_during_an_aged_update(kafka_bootstrap, lambda client: None, wait=2)
    )
    assert not completed
    assert requested == [{"yekuo-wake-a"}]
