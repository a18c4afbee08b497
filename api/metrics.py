"""Prometheus metrics of the API process: commands, refusals, request latency; pipeline lag and dead
letters read from PostgreSQL at scrape time (``consumers.status``, the same figures as ``yekuo status``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import psycopg
import structlog
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from consumers.status import consumer_lag
from projections.store import table_exists

log = structlog.get_logger(__name__)


class PipelineCollector(Collector):
    """Consumer lag per group and open dead letters per group, read when scraped."""

    def __init__(self, connect: Callable[[], AbstractContextManager[psycopg.Connection[Any]]]) -> None:
        self._connect = connect

    def collect(self) -> Iterator[GaugeMetricFamily]:
        lag = GaugeMetricFamily(
            "yekuo_consumer_lag_events", "Events published but not consumed", labels=["group"]
        )
        dead = GaugeMetricFamily(
            "yekuo_dead_letters_open", "Dead letters not yet replayed", labels=["consumer_group"]
        )
        try:
            with self._connect() as conn:
                if table_exists(conn, "relay_state"):
                    for group, figures in consumer_lag(conn).items():
                        lag.add_metric([group], figures.lag)
                if table_exists(conn, "dead_letters"):
                    for group, open_count in conn.execute(
                        "SELECT consumer_group, count(*) FILTER (WHERE replayed_at IS NULL) "
                        "FROM dead_letters GROUP BY consumer_group"
                    ):
                        dead.add_metric([group], open_count)
        except psycopg.Error as error:
            log.warning("metrics.pipeline_unavailable", error=str(error))
        yield lag
        yield dead


class ApiMetrics:
    """The API's own registry (one per app, so several apps in one process do not collide)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.commands = Counter(
            "yekuo_api_commands_total",
            "Commands received over HTTP by type and outcome",
            ["command_type", "outcome"],
            registry=self.registry,
        )
        self.refusals = Counter(
            "yekuo_api_refusals_total", "Commands refused, by rule", ["rule"], registry=self.registry
        )
        self.latency = Histogram(
            "yekuo_api_request_seconds",
            "HTTP request latency by route",
            ["method", "route", "status"],
            buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=self.registry,
        )

    def watch_pipeline(self, connect: Callable[[], AbstractContextManager[psycopg.Connection[Any]]]) -> None:
        self.registry.register(PipelineCollector(connect))
