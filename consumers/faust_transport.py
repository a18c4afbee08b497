"""The faust app every Yekuo consumer runs (``faust_app``), on faust's Kafka transport with a configurable
fetch wait.

faust-streaming hard-codes ``fetch_max_wait_ms=1500`` for its consumers. Apache Kafka answers a waiting
fetch as soon as data arrives, so the value only bounds idle polls there; the local Tansu broker does
not wake waiting fetches and holds each one for the full wait, which alone added 0.4-0.7 s of end-to-end
lag (measured in ../shared/STACK.md terms: p50 396 ms at 1500 ms, 28 ms at 100 ms). The worker registers
this transport as ``yekuo-kafka://`` and sets the wait from ``YEKUO_KAFKA_FETCH_MAX_WAIT_MS``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, cast

import aiokafka
import faust
from faust.transport.drivers import TRANSPORTS
from faust.transport.drivers import aiokafka as faust_aiokafka

from infra.settings import Settings

SCHEME = "yekuo-kafka"


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    fetch_max_wait_ms: ClassVar[int] = 100

    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = self.fetch_max_wait_ms  # read when the consumer starts
        return consumer


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class Transport(faust_aiokafka.Transport):
    Consumer = _Consumer


def register(fetch_max_wait_ms: int) -> str:
    """Register the transport; returns the broker URL scheme to use."""
    _ConsumerThread.fetch_max_wait_ms = fetch_max_wait_ms
    TRANSPORTS[SCHEME] = f"{__name__}:Transport"
    return SCHEME


def faust_app(name: str, bootstrap_servers: str, settings: Settings) -> faust.App:
    """A faust app as the intake consumer and the projection workers run it (and the benchmarks' do-nothing
    agents, so that they compare like with like): this transport; in-memory tables, since the state is
    in PostgreSQL; no web server; the configured session, heartbeat and rebalance timeouts; topics made
    by ``infra.kafka_admin``, never declared by faust; acks from every replica; logging left to
    ``infra.log_setup``; faust's data directory under the state directory, not the working directory."""
    datadir = settings.state_dir / "faust" / name
    datadir.mkdir(parents=True, exist_ok=True)  # faust makes only the last level
    return faust.App(
        name,
        broker=f"{register(settings.kafka_fetch_max_wait_ms)}://{bootstrap_servers}",
        store="memory://",
        datadir=str(datadir),
        web_enabled=False,
        broker_session_timeout=settings.kafka_session_timeout_ms / 1000,
        broker_heartbeat_interval=settings.kafka_heartbeat_interval_ms / 1000,
        broker_rebalance_timeout=settings.kafka_session_timeout_ms / 1000,
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
