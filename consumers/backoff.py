"""Riding out outages: bounded exponential backoff with jitter, one log line per outage, a readiness file.

Every long-running process (relay, projection worker and its notifier timers, SLA clock; intake and API
may reuse it) wraps each unit of work in an ``Outage`` of the dependency it needs::

    database = Outage("relay", "postgres", health)
    while not stop.is_set():
        try:
            work()
        except TRANSIENT_DATABASE_ERRORS as error:
            stop.wait(database.failed(error))   # logs once when the outage starts; returns the delay
            continue
        database.recovered()                    # logs once when it ends

``failed`` returns the next delay: 0.2 s doubling up to 10 s, each with ±25 % jitter, so restarting
processes do not hammer a server in step. The first failure logs a warning with the reason; later ones
log nothing (a debug line only), the recovery logs one info line with the outage's length.

Readiness (``Health``): each process writes ``STATE_DIR/health/<process>.json`` — its pid, whether it is
ready, what it is waiting for, since when, and when it last wrote. A file, not a table, because the
process must be able to report "not ready" while PostgreSQL is down. ``yekuo status`` reads them
(``read_health``); a file older than ``STALE_AFTER`` seconds means the process is not running.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import structlog
from kafka import KafkaProducer
from kafka.errors import KafkaError

from infra.database_errors import DATABASE_UNREACHABLE

log = structlog.get_logger("yekuo.backoff")

STALE_AFTER = 60.0
"""A readiness file not rewritten for this long belongs to a process that is gone."""

PG_CONNECT_TIMEOUT = 5
"""Seconds a psycopg connection attempt may take before it fails (``connect_timeout``)."""

PG_STATEMENT_TIMEOUT_MS = 60_000
"""Longest statement the processes run; a statement hung on a dead server fails instead."""

TRANSIENT_DATABASE_ERRORS: tuple[type[BaseException], ...] = (
    *DATABASE_UNREACHABLE,
    psycopg.errors.UndefinedTable,  # a fresh stack: another process is still creating the tables
)
TRANSIENT_BROKER_ERRORS: tuple[type[BaseException], ...] = (KafkaError, ConnectionError, TimeoutError)


def pg_connect(url: str, **kwargs: Any) -> psycopg.Connection[Any]:
    """``psycopg.connect`` that fails within ``PG_CONNECT_TIMEOUT`` and never runs a statement forever."""
    return psycopg.connect(
        url,
        connect_timeout=PG_CONNECT_TIMEOUT,
        options=f"-c statement_timeout={PG_STATEMENT_TIMEOUT_MS}",
        **kwargs,
    )


def kafka_timeouts(request_timeout_ms: int) -> dict[str, int]:
    """kafka-python producer settings so that neither making a producer (its first bootstrap: 30 s by
    default) nor a send or flush waits out a whole broker outage."""
    return {
        "request_timeout_ms": request_timeout_ms,
        "bootstrap_timeout_ms": request_timeout_ms,
        "delivery_timeout_ms": request_timeout_ms + 5_000,
        "max_block_ms": request_timeout_ms,
        "reconnect_backoff_max_ms": 5_000,
    }


def close_producer(producer: KafkaProducer, timeout: float) -> None:
    """Close ``producer``, giving its pending records at most ``timeout`` seconds; never raises.

    kafka-python 3.0's ``close`` flushes first and raises ``KafkaTimeoutError`` while records are still
    pending (a broker outage), leaving the producer and its I/O thread running, and those records could
    still go out later, unrecorded. So the records still pending then are aborted: their futures fail,
    and whatever waits on them (the relay's position, the notifier's delivery ledger) records nothing.
    """
    try:
        producer.close(timeout=timeout)
        return
    except KafkaError as error:
        log.warning("producer closed with records undelivered; they are dropped", reason=repr(error))
    sender = producer._sender  # kafka-python has no public forced close
    if sender is not None:
        sender.force_close()  # fails every pending batch's future
        sender.join(5)
    with contextlib.suppress(KafkaError):
        producer.close(timeout=0)  # nothing is pending any more: releases its metrics and serializers


def next_delay(attempt: int, *, first: float = 0.2, cap: float = 10.0, jitter: float = 0.25) -> float:
    """The delay before retry ``attempt`` (1-based): exponential, capped, with ±``jitter`` spread."""
    base = min(cap, first * 2.0 ** max(attempt - 1, 0))  # a float power: ``int ** int`` is typed Any
    return base * random.uniform(1 - jitter, 1 + jitter)  # noqa: S311 -- jitter, not cryptography


class Health:
    """One process's readiness file; several outages (database, broker) may hold it not-ready at once."""

    def __init__(self, state_dir: Path | None, process: str) -> None:
        self.path = state_dir / "health" / f"{process}.json" if state_dir is not None else None
        self.process = process
        self._waiting: dict[str, tuple[str, datetime]] = {}
        self._lock = threading.Lock()
        self._last_write = 0.0

    @property
    def ready(self) -> bool:
        return not self._waiting

    def down(self, dependency: str, reason: str) -> None:
        with self._lock:
            self._waiting.setdefault(dependency, (reason, datetime.now(UTC)))
        self.write()

    def up(self, dependency: str) -> None:
        with self._lock:
            self._waiting.pop(dependency, None)
        self.write()

    def beat(self) -> None:
        """Rewrite the file now and then while healthy, so a stale file means a dead process."""
        if time.monotonic() - self._last_write > STALE_AFTER / 4:
            self.write()

    def write(self) -> None:
        if self.path is None:
            return
        with self._lock:
            waiting = {d: {"reason": r, "since": s.isoformat()} for d, (r, s) in self._waiting.items()}
        document = {
            "process": self.process,
            "pid": os.getpid(),
            "ready": not waiting,
            "waiting_for": waiting,
            "updated_at": datetime.now(UTC).isoformat(),
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(json.dumps(document))
        temporary.replace(self.path)
        self._last_write = time.monotonic()

    def remove(self) -> None:
        if self.path is not None:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()


class Outage:
    """The state of one dependency of one process: healthy, or down since a moment, with retries."""

    def __init__(self, process: str, dependency: str, health: Health | None = None) -> None:
        self.process = process
        self.dependency = dependency
        self.health = health
        self.attempts = 0
        self.started: float | None = None

    @property
    def active(self) -> bool:
        return self.started is not None

    def failed(self, error: BaseException) -> float:
        """Record a failed attempt; returns how long to wait before the next."""
        self.attempts += 1
        reason = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
        if self.started is None:
            self.started = time.monotonic()
            log.warning(
                f"{self.dependency} unavailable; {self.process} waits and retries",
                process=self.process,
                dependency=self.dependency,
                reason=reason,
            )
            if self.health is not None:
                self.health.down(self.dependency, reason)
        else:
            log.debug("still unavailable", process=self.process, dependency=self.dependency, reason=reason)
            if self.health is not None:
                self.health.beat()
        return next_delay(self.attempts)

    def recovered(self) -> None:
        """Record a successful attempt; logs the end of an outage once."""
        if self.started is not None:
            log.info(
                f"{self.dependency} available again; {self.process} resumed",
                process=self.process,
                dependency=self.dependency,
                outage_seconds=round(time.monotonic() - self.started, 1),
                attempts=self.attempts,
            )
            if self.health is not None:
                self.health.up(self.dependency)
        elif self.health is not None:
            self.health.beat()
        self.started = None
        self.attempts = 0


@dataclass(frozen=True)
class ProcessHealth:
    process: str
    pid: int
    ready: bool
    waiting_for: dict[str, Any]
    updated_at: datetime
    stale: bool


def read_health(state_dir: Path) -> list[ProcessHealth]:
    """Every readiness file under ``state_dir``; for ``yekuo status`` and the API's health check."""
    found = []
    now = datetime.now(UTC)
    for path in sorted((state_dir / "health").glob("*.json")):
        try:
            document = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # being replaced right now; the next look sees it
        updated = datetime.fromisoformat(document["updated_at"])
        found.append(
            ProcessHealth(
                document["process"],
                document["pid"],
                document["ready"],
                document["waiting_for"],
                updated,
                (now - updated).total_seconds() > STALE_AFTER,
            )
        )
    return found
