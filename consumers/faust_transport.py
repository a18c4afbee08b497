"""The faust app every Yekuo consumer runs (``faust_app``), on faust's Kafka transport with a configurable
fetch wait and a consumer that reads again the records faust dropped in a rebalance.

faust-streaming hard-codes ``fetch_max_wait_ms=1500`` for its consumers. Apache Kafka answers a waiting
fetch as soon as data arrives, so the value only bounds idle polls there; the local Tansu broker does
not wake waiting fetches and holds each one for the full wait, which alone added 0.4-0.7 s of end-to-end
lag (measured in ../shared/STACK.md terms: p50 396 ms at 1500 ms, 28 ms at 100 ms). The worker registers
this transport as ``yekuo-kafka://`` and sets the wait from ``YEKUO_KAFKA_FETCH_MAX_WAIT_MS``.

faust-streaming (0.15) also loses records when a rebalance interrupts a fetch: a batch taken from
aiokafka while the flow stops is dropped, and faust seeks back to the committed offsets, but aiokafka's
``seek_to_committed`` moves only partitions that have one. A partition without a committed offset keeps
the position after the dropped records, and they are never read. After a memory broker lost its data
every partition is without one, and the intake once read none of the re-sent commands this way (the batch
came back between faust's seek and its resuming the flow; docs/reliability.md). ``_Consumer`` seeks such
a partition back to the first record of the dropped batch.

aiokafka (0.14) can hold a metadata update for ``metadata_max_age_ms`` (5 minutes): when the topics it
tracks change while a periodic refresh is in flight, its synchronizer goes round again but waits for a
wake-up nobody sends. A group leader changes them just before it computes the assignment and waits for
that update, so a rejoin could stall for minutes. ``wake_metadata_synchronizer`` makes every update
request wake it; the transport applies it to every consumer and producer client.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping
from typing import Any, ClassVar, cast

import aiokafka
import faust
import structlog
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import IllegalStateError
from faust.transport.drivers import TRANSPORTS
from faust.transport.drivers import aiokafka as faust_aiokafka

from infra.settings import Settings

log = structlog.get_logger(__name__)

SCHEME = "yekuo-kafka"


def wake_metadata_synchronizer(client: AIOKafkaClient) -> None:
    """Make every metadata update request of ``client`` wake its synchronizer task.

    aiokafka wakes the task only when no update is in flight. When the tracked topics changed during an
    update, the task goes round again but waits for a wake-up or ``metadata_max_age_ms``. So an update
    the age had started (no wake-up pending) and a topic change overtook kept every waiter waiting for
    the whole age: a group leader about to assign partitions, a producer's first send to a topic. A
    wake-up while an update is in flight is otherwise harmless: the task replaces the waiter once the
    update stands."""
    request_update: Callable[[], Awaitable[bool]] = client.force_metadata_update

    def force_metadata_update() -> Awaitable[bool]:
        if not client._md_update_waiter.done():
            client._md_update_waiter.set_result(None)
        return request_update()

    client.force_metadata_update = force_metadata_update


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    fetch_max_wait_ms: ClassVar[int] = 100

    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = self.fetch_max_wait_ms  # read when the consumer starts
        wake_metadata_synchronizer(consumer._client)
        return consumer


def records_to_read_again(
    fetched: Mapping[Any, tuple[int, int]],
    handed_on: Mapping[Any, int],
    interrupted: bool,
    committed: Mapping[Any, int | None],
    sought: Collection[Any],
) -> dict[Any, int]:
    """The partitions of a fetched batch to seek back, each to the batch's first offset.

    ``fetched``: per partition, the batch's first offset and its number of records; ``handed_on``: how
    many of them faust passed to the streams; ``interrupted``: the flow stopped by the end of the batch,
    which may also have cancelled the handing on of the last record; ``committed``: faust's committed
    offsets (None: none); ``sought``: partitions sought since the fetch (their new position wins). A
    partition with a committed offset is left to faust, which seeks back to it."""
    return {
        tp: first
        for tp, (first, count) in fetched.items()
        if (interrupted or handed_on.get(tp, 0) < count) and committed.get(tp) is None and tp not in sought
    }


class _Consumer(faust_aiokafka.Consumer):
    """faust's aiokafka consumer, with the fetch wait above, reading again the records of a batch faust
    dropped (see the module's docstring) from partitions without a committed offset."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._seeks: Counter[Any] = Counter()  # per partition: a seek after a fetch supersedes its batch
        self._fetched: tuple[dict[Any, int], dict[Any, tuple[int, int]]] | None = None

    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _seek(self, partition: Any, offset: int) -> None:
        self._seeks[partition] += 1
        await super()._seek(partition, offset)

    async def _wait_next_records(self, timeout: float) -> tuple[Any, Any]:
        records, active_partitions = await super()._wait_next_records(timeout)
        self._fetched = (
            dict(self._seeks),
            {tp: (batch[0].offset, len(batch)) for tp, batch in (records or {}).items() if batch},
        )
        return records, active_partitions

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[Any, Any]]:
        """faust's ``getmany``; afterwards, a partition of the batch that was not handed on in full, or
        whose handing on a stopped flow may have cancelled, is sought back to the batch's first record.
        Only a partition without a committed offset (faust's own seek covers the others) and not sought
        since the fetch (a newer position, such as the intake's seek to the beginning after a rejoin).
        Records handed on before may come again, which the consumers make harmless: the intake answers
        them from their receipts, the projection worker drops what it applied already."""
        self._fetched = None
        handed_on: Counter[Any] = Counter()
        async for tp, message in super().getmany(timeout):
            handed_on[tp] += 1
            yield tp, message
        if self._fetched is None:
            return
        seeks, fetched = self._fetched
        sought = {tp for tp in fetched if self._seeks[tp] != seeks.get(tp, 0)}
        again = records_to_read_again(
            fetched, handed_on, not self.flow_active, self._committed_offset, sought
        )
        for tp, first in again.items():
            try:
                await self.seek(tp, first)
            except IllegalStateError:  # no longer assigned: its new owner starts where the group says
                continue
            log.warning(
                "faust dropped fetched records in a rebalance; reading them again",
                topic=tp.topic,
                partition=tp.partition,
                offset=first,
                dropped=fetched[tp][1] - handed_on[tp],
            )


class _Producer(faust_aiokafka.Producer):
    def _new_producer(self, transactional_id: str | None = None) -> aiokafka.AIOKafkaProducer:
        producer = super()._new_producer(transactional_id)
        wake_metadata_synchronizer(producer.client)
        return producer


class Transport(faust_aiokafka.Transport):
    Consumer = _Consumer
    Producer = _Producer


def register(fetch_max_wait_ms: int) -> str:
    """Register the transport; returns the broker URL scheme to use."""
    _ConsumerThread.fetch_max_wait_ms = fetch_max_wait_ms
    TRANSPORTS[SCHEME] = f"{__name__}:Transport"
    return SCHEME


def faust_app(name: str, bootstrap_servers: str, settings: Settings) -> faust.App:
    """A faust app as the intake consumer and the projection workers run it (and the benchmarks' do-nothing
    agents, so that they compare like with like): this transport; in-memory tables, since the state is
    in PostgreSQL; no web server; the configured session, heartbeat and rebalance timeouts; consumer
    requests bounded by the configured request timeout (faust's 90 s default lets one unanswered request,
    such as a rejoin's SyncGroup, hold the group that long; faust wants it no shorter than the session
    timeout); topics made by ``infra.kafka_admin``, never declared by faust; acks from every replica;
    logging left to ``infra.log_setup``; faust's data directory under the state directory, not the
    working directory."""
    datadir = settings.state_dir / "faust" / name
    datadir.mkdir(parents=True, exist_ok=True)  # faust makes only the last level
    request_timeout_ms = max(settings.kafka_request_timeout_ms, settings.kafka_session_timeout_ms)
    return faust.App(
        name,
        broker=f"{register(settings.kafka_fetch_max_wait_ms)}://{bootstrap_servers}",
        store="memory://",
        datadir=str(datadir),
        web_enabled=False,
        broker_session_timeout=settings.kafka_session_timeout_ms / 1000,
        broker_heartbeat_interval=settings.kafka_heartbeat_interval_ms / 1000,
        broker_rebalance_timeout=settings.kafka_session_timeout_ms / 1000,
        broker_request_timeout=request_timeout_ms / 1000,
        consumer_auto_offset_reset="earliest",
        topic_allow_declare=False,
        topic_disable_leader=True,
        producer_acks=-1,
        logging_config=None,
    )


TimerFun = Callable[[], Awaitable[None]]


def timer(app: faust.App, interval: float) -> Callable[[TimerFun], TimerFun]:
    """``@app.timer(interval=interval)``, typed: faust hides ``App.timer`` from type checkers
    (``@no_type_check``), which would leave every function it decorates untyped."""
    return cast(Callable[[TimerFun], TimerFun], app.timer(interval=interval))


def consumer(app: faust.App) -> faust_aiokafka.Consumer:
    """``app.consumer`` as what this transport makes: faust types it as the abstract ``ConsumerT``, which
    lacks the concrete consumer's ``seek_to_committed``, ``_committed_offset`` and ``_thread``."""
    return cast(faust_aiokafka.Consumer, app.consumer)  # our Transport's Consumer subclasses it
