"""What every route needs: the services built by ``create_app`` and the authenticated caller."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from psycopg_pool import ConnectionPool

from api.database_gate import DatabaseGate
from api.lookup_limit import FailedLookups
from api.metrics import ApiMetrics
from api.security import Principal, Role, TokenError, authenticate
from app.application import CaseApplication
from infra.settings import Settings
from infra.source_systems import SourceSystems

bearer = HTTPBearer(auto_error=False, description="A token from `yekuo token issue`.")


@dataclass
class Services:
    """Built once per API process by ``create_app``'s lifespan."""

    settings: Settings
    database_url: str
    bootstrap_servers: str | None
    token_key: str
    clock: Callable[[], datetime]
    source_systems: SourceSystems
    metrics: ApiMetrics
    failed_lookups: FailedLookups
    application: CaseApplication | None = None
    pool: ConnectionPool[psycopg.Connection[Any]] | None = None
    gate: DatabaseGate | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def app(self) -> CaseApplication:
        if self.application is None:
            raise RuntimeError("the API's case application is not started (lifespan not run)")
        return self.application

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        if self.gate is not None and self.gate.down is not None:  # also before a start-up outage ends
            raise psycopg.OperationalError(f"database unavailable since {self.gate.down.since.isoformat()}")
        if self.pool is None:
            raise RuntimeError("the API's connection pool is not started (lifespan not run)")
        with self.pool.connection() as conn:
            yield conn


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


def caller(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> Principal:
    """The authenticated caller; 401 without a valid bearer token."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(401, "a bearer token is required", headers={"WWW-Authenticate": "Bearer"})
    try:
        return authenticate(services(request).token_key, credentials.credentials)
    except TokenError as error:
        raise HTTPException(401, str(error), headers={"WWW-Authenticate": "Bearer"}) from None


def allow(*roles: Role) -> Callable[..., Principal]:
    """A dependency admitting only callers in ``roles`` (403 for the others)."""

    def dependency(principal: Principal = Depends(caller)) -> Principal:
        if principal.role not in roles:
            raise HTTPException(403, f"role {principal.role} may not do this")
        return principal

    return dependency
