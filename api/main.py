"""The HTTP API's composition: ``create_app`` builds a FastAPI app on one PostgreSQL (and broker).

OpenAPI at ``/openapi.json`` and ``/docs``. Every answer other than 2xx carries a JSON body; an unexpected
error is logged with an error id and answered as a bare 500 with that id (no stack trace, no SQL).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import anyio.to_thread
import structlog
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from psycopg_pool import ConnectionPool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.access_log import create_access_log
from api.audit import audit_router
from api.commands import acknowledge_router, command_router
from api.context import Services
from api.dashboard import dashboard_router
from api.database_gate import CONNECTION_ERRORS, DatabaseGate, DatabaseGateMiddleware
from api.lookup_limit import FailedLookups, create_lookup_limit
from api.metrics import ApiMetrics
from api.reads import read_router
from api.security import check_key
from app.bootstrap import build_case_application
from consumers.backoff import PG_CONNECT_TIMEOUT, PG_STATEMENT_TIMEOUT_MS, Health
from infra.kafka_admin import BrokerUnavailableError, wait_for_broker
from infra.settings import Settings
from infra.source_systems import load_source_systems
from projections import registry
from projections.store import create_schema

log = structlog.get_logger(__name__)


def create_app(
    settings: Settings,
    database_url: str,
    bootstrap_servers: str | None,
    *,
    clock: Callable[[], datetime] | None = None,
) -> FastAPI:
    """The API on ``database_url``; refuses (``TokenKeyMissingError``) without a token signing key."""
    svc = Services(
        settings=settings,
        database_url=database_url,
        bootstrap_servers=bootstrap_servers,
        token_key=check_key(settings.api_token_key),
        clock=clock or (lambda: datetime.now(UTC)),
        # a file setting (YEKUO_SOURCE_SYSTEMS_FILE) may come with intake; else the shipped table
        source_systems=load_source_systems(getattr(settings, "source_systems_file", None)),
        metrics=ApiMetrics(),
        failed_lookups=FailedLookups(
            settings.api_customer_max_failures,
            settings.api_customer_failure_window_seconds,
            lambda: svc.connection(),
        ),
    )

    def prepare() -> None:
        """Build what needs PostgreSQL; each step is skipped once done, so a retry after an outage that
        struck half-way does not build anything twice."""
        if svc.application is None:
            # a short pool wait: a request already inside the event store when an outage begins gives up
            # after its ten retries of 1 s, not of eventsourcing's default 30 s; the gate stops later ones
            svc.application = build_case_application(settings, database_url, clock=clock, pool_timeout=1)
        if svc.pool is None:
            svc.pool = ConnectionPool(
                database_url,
                min_size=1,
                max_size=8,
                timeout=PG_CONNECT_TIMEOUT,
                kwargs={
                    "autocommit": True,
                    "connect_timeout": PG_CONNECT_TIMEOUT,
                    "options": f"-c statement_timeout={PG_STATEMENT_TIMEOUT_MS}",
                },
                open=True,
            )
        with svc.pool.connection() as conn:
            create_schema(conn, registry.select())
            create_access_log(conn)
            create_lookup_limit(conn)

    def drop_broken_connections() -> None:
        if svc.pool is not None:
            svc.pool.check()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        gate = DatabaseGate(
            database_url, Health(settings.state_dir, f"api-{os.getpid()}"), drop_broken_connections, prepare
        )
        try:
            prepare()
        except CONNECTION_ERRORS as error:
            # started during an outage: serve /health/live and 503s; the watchdog prepares when it is over
            down: BaseException | None = error
        else:
            down = None
        svc.metrics.watch_pipeline(svc.connection)
        svc.gate = gate
        gate.start(down=down)
        log.info("api.started", database_ready=down is None)
        try:
            yield
        finally:
            gate.stop()
            if svc.pool is not None:
                svc.pool.close()
            if svc.application is not None:
                svc.application.close()

    api = FastAPI(
        title="Yekuo 业扩报装 API",
        version="1",
        description="Commands, progress lookup, department queues and inboxes, SLA, KPIs and audit.",
        lifespan=lifespan,
    )
    api.state.services = svc
    api.include_router(command_router())
    api.include_router(acknowledge_router())
    api.include_router(read_router())
    api.include_router(audit_router())
    api.include_router(dashboard_router())
    _add_observability(api, svc)
    return api


class LatencyMiddleware:
    """Request latency by route template (pure ASGI: cheaper than ``BaseHTTPMiddleware``)."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            path = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.latency.labels(scope["method"], path, str(status[0])).observe(
                time.perf_counter() - started
            )


def _broker_answers(bootstrap_servers: str) -> str | None:
    """None when the broker answers a metadata request within 2 s, else why not."""
    try:
        wait_for_broker(bootstrap_servers, timeout=2.0)
    except BrokerUnavailableError as error:
        return str(error)
    return None


def _add_observability(api: FastAPI, svc: Services) -> None:
    api.add_middleware(DatabaseGateMiddleware, gate=lambda: svc.gate)
    api.add_middleware(LatencyMiddleware, metrics=svc.metrics)

    async def database_unavailable(request: Request, error: Exception) -> JSONResponse:
        """The outage began under this request: 503 now, and the watchdog looks at once."""
        log.debug("api.database_unavailable", method=request.method, path=request.url.path, error=str(error))
        if svc.gate is None:
            return JSONResponse({"error": "database unavailable"}, 503, {"Retry-After": "1"})
        svc.gate.suspect()
        return svc.gate.unavailable()

    for error_type in CONNECTION_ERRORS:
        api.add_exception_handler(error_type, database_unavailable)

    @api.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        error_id = uuid.uuid4().hex
        log.error(
            "api.error", error_id=error_id, method=request.method, path=request.url.path, exc_info=error
        )
        return JSONResponse({"error": "internal error", "error_id": error_id}, status_code=500)

    @api.get("/health/live", tags=["health"])
    def live() -> dict[str, str]:
        """The process answers."""
        return {"status": "ok"}

    @api.get("/health/ready", tags=["health"], responses={503: {"description": "A dependency is down"}})
    async def ready() -> JSONResponse:
        """PostgreSQL answered the watchdog's last probe (at most a second ago) and, when configured, the
        broker answers a metadata request; when not ready, says what is down, why and since when."""
        checks: dict[str, Any] = {}
        down = svc.gate.down if svc.gate is not None else None
        checks["database"] = "ok" if down is None else "unavailable"
        if down is not None:
            checks["database_down"] = {"reason": down.reason, "since": down.since.isoformat()}
        if svc.bootstrap_servers:
            broker = await anyio.to_thread.run_sync(_broker_answers, svc.bootstrap_servers)
            checks["broker"] = "ok" if broker is None else "unavailable"
            if broker is not None:
                checks["broker_down"] = {"reason": broker}
        healthy = down is None and checks.get("broker", "ok") == "ok"
        headers = {} if healthy or svc.gate is None else {"Retry-After": str(svc.gate.retry_after())}
        return JSONResponse(
            {"status": "ok" if healthy else "unavailable", **checks}, 200 if healthy else 503, headers
        )

    @api.get("/metrics", tags=["health"], response_class=Response)
    def metrics() -> Response:
        """Prometheus metrics: commands, refusals, request latency, consumer lag, dead letters."""
        return Response(generate_latest(svc.metrics.registry), media_type=CONTENT_TYPE_LATEST)
