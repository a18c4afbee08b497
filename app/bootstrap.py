"""The composition root: builds Yekuo's parts from ``Settings`` (and the endpoints of the running stack)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from app.application import CaseApplication, postgres_env
from domain.case import Case
from infra.settings import Settings


def application_env(
    settings: Settings, database_url: str, *, create_tables: bool = True, pool_timeout: int = 5
) -> dict[str, str]:
    """eventsourcing's environment for the case application, from our settings.

    ``pool_timeout`` (whole seconds; eventsourcing's ``POSTGRES_CONNECT_TIMEOUT``, default 30) bounds each
    wait for a pooled connection. The event store retries a failed statement ten times, each waiting this
    long while PostgreSQL is down, so it bounds how long a call can hang in an outage.
    """
    env = postgres_env(database_url)
    env.update(
        {
            "IS_SNAPSHOTTING_ENABLED": "y",
            "AGGREGATE_CACHE_MAXSIZE": str(settings.aggregate_cache_size)
            if settings.aggregate_cache_size
            else "",
            "POSTGRES_ENABLE_DB_FUNCTIONS": "y",
            "POSTGRES_POOL_SIZE": "5",
            "POSTGRES_MAX_OVERFLOW": "10",
            "CREATE_TABLE": "y" if create_tables else "n",
            "POSTGRES_CONNECT_TIMEOUT": str(pool_timeout),
        }
    )
    return env


def build_case_application(
    settings: Settings,
    database_url: str,
    *,
    clock: Callable[[], datetime] | None = None,
    create_tables: bool = True,
    pool_timeout: int = 5,
) -> CaseApplication:
    """The case application on the given PostgreSQL, configured from ``settings``."""
    app = CaseApplication(
        application_env(settings, database_url, create_tables=create_tables, pool_timeout=pool_timeout),
        clock=clock,
        command_retries=settings.command_retries,
    )
    # eventsourcing declares this a ClassVar but reads it through ``self``: an instance value is the
    # per-process setting without changing the class for every application in the process
    app.snapshotting_intervals = {Case: settings.snapshot_interval}  # type: ignore[misc]
    return app
