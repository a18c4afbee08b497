"""The errors that mean PostgreSQL cannot be reached, as psycopg and the event store raise them.

Not that a statement is wrong: those are other ``psycopg.Error`` subclasses. Long-running processes ride
these out (``consumers.backoff``), the API answers 503 while they last (``api.database_gate``), and a
one-shot command exits with a clear message (``cli.main``).
"""

from __future__ import annotations

import psycopg
from eventsourcing import persistence

DATABASE_UNREACHABLE: tuple[type[Exception], ...] = (
    psycopg.OperationalError,  # includes psycopg_pool.PoolTimeout
    psycopg.InterfaceError,
    persistence.OperationalError,  # the event store's wrapping of the two above
    persistence.InterfaceError,
)
