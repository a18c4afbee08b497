"""Riding out a PostgreSQL outage (数据库中断): fast 503s while it lasts, serving again by itself after it.

A watchdog thread keeps one probe connection and runs ``SELECT 1`` every ``PROBE_SECONDS``. When a probe
fails, the gate closes: every request that needs the database is answered at once with
``503 {"error": "database unavailable", …}`` and ``Retry-After``, without touching a pool (the event
store's pool would otherwise wait its timeout on each of its ten retries), and ``/health/ready`` says
why. The watchdog then retries with ``consumers.backoff``'s bounded backoff; the outage is logged once
when it starts and once when it ends (``Outage``), and the readiness file ``STATE_DIR/health/api-<pid>.json``
follows it (``Health``). A request that meets a connection error itself (the outage began under it) is
answered 503 too and wakes the watchdog for an immediate probe.

An API started while PostgreSQL is down starts with the gate closed (``start(down=error)``): it answers
``/health/live``, reports not ready, and the watchdog runs ``prepare`` (building the event store, the pool,
the schema) after its first successful probe, opening the gate only once that has succeeded.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
import structlog
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from consumers.backoff import PG_CONNECT_TIMEOUT, Health, Outage, pg_connect
from infra.database_errors import DATABASE_UNREACHABLE

log = structlog.get_logger(__name__)

PROBE_SECONDS = 1.0
"""How often a healthy API checks that PostgreSQL answers: an outage is noticed within about this long."""

CONNECTION_ERRORS = DATABASE_UNREACHABLE
"""Errors that mean the database cannot be reached (not that a query is wrong: those stay 500s)."""

_PROBE_ERRORS: tuple[type[Exception], ...] = (psycopg.Error, *CONNECTION_ERRORS)

NO_DATABASE_PATHS = frozenset(
    {"/health/live", "/health/ready", "/metrics", "/openapi.json", "/docs", "/redoc"}
)
"""Paths served during an outage (they say so themselves, or need no database)."""


@dataclass(frozen=True)
class Down:
    """Why and since when the database is unreachable, and when the watchdog tries next."""

    reason: str
    since: datetime
    next_probe: float


class DatabaseGate:
    """The API's view of PostgreSQL: open, or closed by an outage the watchdog is waiting out."""

    def __init__(
        self,
        database_url: str,
        health: Health,
        on_recovery: Callable[[], None],
        prepare: Callable[[], None] | None = None,
    ) -> None:
        self._url = database_url
        self.health = health
        self._on_recovery = on_recovery
        self._prepare = prepare  # run after the first good probe when ``start`` was told the database is down
        self.outage = Outage("api", "postgres", health)
        self.down: Down | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._conn: psycopg.Connection[Any] | None = None

    # ---- watchdog ----------------------------------------------------------------------------------

    def start(self, down: BaseException | None = None) -> None:
        """Watch from now on; ``down`` is the connection error that kept start-up from preparing, if any:
        the gate then stays closed until the watchdog has run ``prepare``."""
        self.health.write()
        if down is not None:
            delay = self.outage.failed(down)
            self.down = Down(_reason(down), datetime.now(UTC), time.monotonic() + delay)
        else:
            self._prepare = None  # start-up prepared everything itself
        self._thread = threading.Thread(target=self._watch, name="api-database-watchdog", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=PG_CONNECT_TIMEOUT + 5)
        self._close_probe()
        self.health.remove()

    def suspect(self) -> None:
        """A request met a connection error: probe now rather than at the next tick."""
        self._wake.set()

    def _watch(self) -> None:
        while not self._stop.is_set():
            try:
                self._probe()
                if self._prepare is not None:
                    self._prepare()
                    self._prepare = None
            except _PROBE_ERRORS as error:  # the server is down, restarting, or refusing connections
                self._close_probe()
                delay = self.outage.failed(error)
                since = self.down.since if self.down else datetime.now(UTC)
                self.down = Down(_reason(error), since, time.monotonic() + delay)
                self._stop.wait(delay)  # during an outage, failing requests do not shorten the backoff
                self._wake.clear()
                continue
            except Exception:  # a bug, not an outage: keep watching, loudly
                log.exception("api.watchdog.error")
                self._close_probe()
                self._stop.wait(PROBE_SECONDS)
                continue
            if self.down is not None:
                self._on_recovery()  # drop pooled connections the outage broke, before requests come back
                self.down = None
                self.outage.recovered()
            else:
                self.outage.recovered()  # a heartbeat of the readiness file
            self._wake.wait(PROBE_SECONDS)
            self._wake.clear()

    def _probe(self) -> None:
        if self._conn is None or self._conn.closed:
            self._conn = pg_connect(self._url, autocommit=True)
        self._conn.execute("SELECT 1")

    def _close_probe(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # ---- answers -----------------------------------------------------------------------------------

    def retry_after(self) -> int:
        """Whole seconds until the next probe (at least 1)."""
        down = self.down
        if down is None:
            return 1
        return max(1, math.ceil(down.next_probe - time.monotonic()))

    def unavailable(self) -> JSONResponse:
        """The 503 of a request that needs the database while it is down."""
        down = self.down
        wait = self.retry_after()
        body: dict[str, Any] = {
            "error": "database unavailable",
            "rule": "DATABASE_UNAVAILABLE",
            "message": "数据库暂不可用 PostgreSQL cannot be reached; retry after the given seconds",
            "retry_after_seconds": wait,
        }
        if down is not None:
            body["since"] = down.since.isoformat()
        return JSONResponse(body, status_code=503, headers={"Retry-After": str(wait)})


def _reason(error: BaseException) -> str:
    return f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"


class DatabaseGateMiddleware:
    """Answers 503 at once, without a worker thread or a pool, while the gate is closed."""

    def __init__(self, app: ASGIApp, gate: Callable[[], DatabaseGate | None]) -> None:
        self.app = app
        self.gate = gate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        gate = self.gate()
        if (
            scope["type"] == "http"
            and gate is not None
            and gate.down is not None
            and scope["path"] not in NO_DATABASE_PATHS
        ):
            await gate.unavailable()(scope, receive, send)
            return
        await self.app(scope, receive, send)
