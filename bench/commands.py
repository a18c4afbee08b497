"""Command throughput and latency of the case application, beside baselines measured in the same run.

Not a test. Prints one JSON document:
  - baseline ``insert``: single-row INSERT transactions (autocommit) on the same PostgreSQL server;
  - baseline ``plain_eventsourcing``: an eventsourcing Application with default settings and a trivial
    aggregate, each operation = get + one event + save;
  - ``yekuo``: a realistic mix of cases (60 % residential, 25 % low voltage, 10 % HV single, 5 % HV dual,
    some 三零) walked through every stage, each client walking its own cases; several clients share one
    application through group commit, as the API and intake processes do.
Each figure is measured with 1 and 4 concurrent clients; rounds alternate between the subjects and the
median round is reported, because the machine is shared and noisy. Ratios compare subjects measured in
the same run.

    python bench/commands.py [--seconds 4] [--rounds 3] [--database-url URL]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import structlog
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.application import (
    CaseApplication,
    postgres_env,
)
from app.bootstrap import build_case_application
from app.group_commit import GroupCommitter
from demo.samples import sample_walk
from domain.commands import Command
from infra.settings import Settings
from infra.stack import LocalStack

CATEGORY_MIX = [("RESIDENTIAL", 60), ("LV_NON_RESIDENTIAL", 25), ("HV_SINGLE", 10), ("HV_DUAL", 5)]
CLIENT_COUNTS = (1, 4)


@dataclass
class Measurement:
    """Operations done and their latencies in one timed round."""

    operations: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.operations / self.seconds if self.seconds else 0.0


def _run_clients(
    clients: int, seconds: float, work: Callable[[int, Callable[[], bool]], list[float]]
) -> Measurement:
    """Run ``work(client_index, keep_going)`` in ``clients`` threads for ``seconds``; collect latencies."""
    deadline = time.perf_counter() + seconds
    results: list[list[float]] = [[] for _ in range(clients)]

    def runner(index: int) -> None:
        results[index] = work(index, lambda: time.perf_counter() < deadline)

    threads = [threading.Thread(target=runner, args=(i,)) for i in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    latencies = [latency for client in results for latency in client]
    return Measurement(len(latencies), elapsed, latencies)


def _timed(operation: Callable[[], object]) -> float:
    started = time.perf_counter()
    operation()
    return time.perf_counter() - started


# ---- subjects ---------------------------------------------------------------------------------------


def insert_subject(database_url: str) -> Callable[[int, float], Measurement]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS bench_rows (id bigserial PRIMARY KEY, payload jsonb NOT NULL)"
        )
    payload = json.dumps({"case": "YK-0000001", "stage": "SITE_SURVEY", "note": "x" * 200})

    def measure(clients: int, seconds: float) -> Measurement:
        def work(_index: int, keep_going: Callable[[], bool]) -> list[float]:
            latencies = []
            with psycopg.connect(database_url, autocommit=True) as conn:
                while keep_going():
                    latencies.append(
                        _timed(
                            lambda: conn.execute("INSERT INTO bench_rows (payload) VALUES (%s)", (payload,))
                        )
                    )
            return latencies

        return _run_clients(clients, seconds, work)

    return measure


class Counter(Aggregate):
    """The trivial aggregate of the plain eventsourcing baseline."""

    def __init__(self) -> None:
        self.count = 0

    @event("Incremented")
    def increment(self) -> None:
        self.count += 1


class PlainApplication(Application):
    """eventsourcing with its default settings (no cache, no snapshots, no database functions)."""

    name = "plain"


def plain_eventsourcing_subject(database_url: str) -> Callable[[int, float], Measurement]:
    app = PlainApplication(postgres_env(database_url))
    pool: list[uuid.UUID] = []
    for _ in range(200):
        counter = Counter()
        app.save(counter)
        pool.append(counter.id)

    def measure(clients: int, seconds: float) -> Measurement:
        def work(index: int, keep_going: Callable[[], bool]) -> list[float]:
            mine = pool[index::clients]
            latencies, i = [], 0

            def operation() -> None:
                counter: Counter = app.repository.get(mine[i % len(mine)])
                counter.increment()
                app.save(counter)

            while keep_going():
                latencies.append(_timed(operation))
                i += 1
            return latencies

        return _run_clients(clients, seconds, work)

    return measure


def _walks(seed: int) -> Iterator[list[Command]]:
    """Endless realistic case walks, categories drawn from the mix."""
    rng = random.Random(seed)
    categories = [name for name, weight in CATEGORY_MIX for _ in range(weight)]
    while True:
        category = rng.choice(categories)
        fast_track = category in ("RESIDENTIAL", "LV_NON_RESIDENTIAL") and rng.random() < 0.3
        case_number = f"YK-B{uuid.uuid4().hex[:12].upper()}"
        yield sample_walk(
            category, case_number, datetime(2025, 3, 3, 9, 0, tzinfo=UTC), fast_track=fast_track
        )


def yekuo_subject(database_url: str) -> Callable[[int, float], Measurement]:
    app: CaseApplication = build_case_application(Settings(), database_url)
    committer = GroupCommitter(app)

    def measure(clients: int, seconds: float) -> Measurement:
        execute = app.execute if clients == 1 else committer.execute

        def work(index: int, keep_going: Callable[[], bool]) -> list[float]:
            latencies = []
            for walk in _walks(seed=index + 1000 * clients):
                for command in walk:
                    if not keep_going():
                        return latencies
                    started = time.perf_counter()
                    outcome = execute(command)
                    latencies.append(time.perf_counter() - started)
                    if not outcome.accepted:
                        raise RuntimeError(f"sample walk command rejected: {outcome}")
            return latencies

        return _run_clients(clients, seconds, work)

    return measure


# ---- running ------------------------------------------------------------------------------------------


@contextmanager
def _postgres(database_url: str | None) -> Iterator[str]:
    if database_url:
        yield database_url
        return
    with tempfile.TemporaryDirectory(prefix="yekuo-bench-") as state_dir:
        stack = LocalStack(Settings(state_dir=Path(state_dir)))
        endpoints = stack.up(("postgres",))
        try:
            yield endpoints.database_url
        finally:
            stack.down(purge=True)


def _fresh_database(server_url: str, name: str) -> str:
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return psycopg.conninfo.make_conninfo(server_url, dbname=name)


def _summary(rounds: list[Measurement]) -> dict[str, float]:
    median_round = sorted(rounds, key=lambda m: m.rate)[len(rounds) // 2]
    latencies = sorted(median_round.latencies)
    quantile = statistics.quantiles(latencies, n=100) if len(latencies) >= 2 else [latencies[0]] * 99
    return {
        "per_second": round(median_round.rate, 1),
        "p50_ms": round(quantile[49] * 1000, 2),
        "p99_ms": round(quantile[98] * 1000, 2),
        "operations": median_round.operations,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=4.0, help="length of one timed round")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per subject (median kept)")
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))

    with _postgres(args.database_url) as server_url:
        subjects = {
            "insert": insert_subject(_fresh_database(server_url, "bench_insert")),
            "plain_eventsourcing": plain_eventsourcing_subject(_fresh_database(server_url, "bench_plain")),
            "yekuo": yekuo_subject(_fresh_database(server_url, "bench_yekuo")),
        }
        results: dict[str, dict[str, dict[str, float]]] = {name: {} for name in subjects}
        for clients in CLIENT_COUNTS:
            rounds: dict[str, list[Measurement]] = {name: [] for name in subjects}
            for _ in range(args.rounds):
                for name, measure in subjects.items():
                    rounds[name].append(measure(clients, args.seconds))
            for name in subjects:
                results[name][f"clients_{clients}"] = _summary(rounds[name])

    ratios = {
        f"yekuo_vs_{baseline}_clients_{clients}": round(
            results["yekuo"][f"clients_{clients}"]["per_second"]
            / results[baseline][f"clients_{clients}"]["per_second"],
            2,
        )
        for baseline in ("plain_eventsourcing", "insert")
        for clients in CLIENT_COUNTS
    }
    print(
        json.dumps(
            {
                "benchmark": "commands",
                "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "unit": "operations per second (commands for yekuo); latency in ms",
                "cpu_count": os.cpu_count(),
                "results": results,
                "ratios": ratios,
            },
            indent=2,
            ensure_ascii=False,
        )
    )


if __name__ == "__main__":
    main()
