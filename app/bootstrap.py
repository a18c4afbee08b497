"""The composition root: builds Yekuo's parts from ``Settings`` (and the endpoints of the running stack)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from app.application import CaseApplication, postgres_env
from domain.case import Case
from infra.settings import Settings


def application_env(
    settings: Settings,
    database_url: str,
    *,
    create_tables: bool = True,
    pool_timeout_seconds: int | None = None,
) -> dict[str, str]:
    """eventsourcing's environment for the case application, from our settings; ``pool_timeout_seconds``:
    how long a command may wait for a database connection (eventsourcing's default: 30 s)."""
    env = postgres_env(database_url)
    if pool_timeout_seconds is not None:
        env["POSTGRES_CONNECT_TIMEOUT"] = str(pool_timeout_seconds)
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
        }
    )
    return env


def build_case_application(
    settings: Settings,
    database_url: str,
    *,
    clock: Callable[[], datetime] | None = None,
    create_tables: bool = True,
    pool_timeout_seconds: int | None = None,
) -> CaseApplication:
    """The case application on the given PostgreSQL, configured from ``settings``."""
    app = CaseApplication(
        application_env(
            settings, database_url, create_tables=create_tables, pool_timeout_seconds=pool_timeout_seconds
        ),
        clock=clock,
        command_retries=settings.command_retries,
    )
    app.snapshotting_intervals = {Case: settings.snapshot_interval}
    return app
