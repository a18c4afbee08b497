"""Shared fixtures: one real PostgreSQL (and, when asked for, one real broker) per test session.

With DATABASE_URL / KAFKA_BOOTSTRAP_SERVERS set, the tests use those servers; otherwise the project's
local stack starts its own in a temporary directory, on its own ports, and stops them at the end.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from infra.settings import Settings
from infra.stack import LocalStack


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        path = Path(str(item.fspath))
        if "integration" in path.parts:
            item.add_marker(pytest.mark.integration)
        elif "e2e" in path.parts:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def test_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(
        state_dir=tmp_path_factory.mktemp("stack"),
        kafka_session_timeout_ms=2000,
        kafka_heartbeat_interval_ms=500,
    )


@pytest.fixture(scope="session")
def session_stack(test_settings: Settings) -> Iterator[LocalStack]:
    stack = LocalStack(test_settings)
    try:
        yield stack
    finally:
        stack.down(purge=True)


@pytest.fixture(scope="session")
def database_url(session_stack: LocalStack) -> str:
    """The session's PostgreSQL (started on first use unless DATABASE_URL is set)."""
    return os.environ.get("DATABASE_URL") or session_stack.up(("postgres",)).database_url


@pytest.fixture(scope="session")
def kafka_bootstrap(session_stack: LocalStack) -> str:
    """The session's broker (started on first use unless KAFKA_BOOTSTRAP_SERVERS is set)."""
    return os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or session_stack.up(("kafka",)).kafka_bootstrap_servers


@pytest.fixture
def fresh_database_url(database_url: str) -> Iterator[str]:
    """A new, empty database on the session's server, dropped after the test."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield make_conninfo(database_url, dbname=name)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
