"""HTTP API latency and command rate, beside baselines measured in the same run.

Not a test. Starts its own PostgreSQL (or uses ``DATABASE_URL``) and a ``yekuo api`` process, fills a few
hundred cases and their read models, then prints one JSON document:
  - ``progress_lookup``: ``GET /cases/{n}/progress`` at a fixed offered rate (open loop, default 200/s),
    p50/p99 latency, beside ``bare_select``: ``SELECT … FROM case_progress WHERE case_number = %s`` from
    this process at the same offered rate, same harness;
    and ``http_health_live``: ``GET /health/live`` (the HTTP stack and this client, no work), same rate;
  - ``http_commands``: ``POST /cases`` (SubmitApplication) from N closed-loop clients, beside
    ``direct_commands``: the same commands through ``CaseApplication.execute`` in this process.

    python bench/api.py [--seconds 10] [--rate 200] [--cases 300] [--clients 4] [--database-url URL]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import psycopg
import structlog
from fastapi.encoders import jsonable_encoder

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import http_load  # bench/ itself is on sys.path: this script's directory

from api.security import Role, issue_token
from app.bootstrap import build_case_application
from app.command_payloads import ENVELOPE_FIELDS
from app.event_log import CaseEventLog
from demo.samples import sample_walk
from domain.commands import Command
from infra.settings import Settings
from infra.stack import LocalStack
from projections import registry
from projections.rebuild import rebuild

ROOT = Path(__file__).resolve().parents[1]
KEY = "bench-key-" + "b" * 40
START = datetime(2025, 9, 1, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
CATEGORIES = ("RESIDENTIAL", "LV_NON_RESIDENTIAL", "HV_SINGLE", "HV_DUAL")


def _summary(latencies: list[float], seconds: float, offered: float | None = None) -> dict[str, float]:
    ordered = sorted(latencies)
    q = statistics.quantiles(ordered, n=100) if len(ordered) >= 2 else [ordered[0]] * 99
    result = {
        "per_second": round(len(ordered) / seconds, 1),
        "p50_ms": round(q[49] * 1000, 2),
        "p95_ms": round(q[94] * 1000, 2),
        "p99_ms": round(q[98] * 1000, 2),
        "operations": len(ordered),
    }
    if offered is not None:
        result["offered_per_second"] = offered
    return result


def open_loop(
    operation: Callable[[int], None], rate: float, seconds: float, workers: int = 16
) -> list[float]:
    """Start one operation every 1/rate s whatever the previous ones do; latency of each."""
    latencies: list[float] = []
    lock = threading.Lock()

    def timed(index: int) -> None:
        started = time.perf_counter()
        operation(index)
        elapsed = time.perf_counter() - started
        with lock:
            latencies.append(elapsed)

    with ThreadPoolExecutor(workers) as pool:
        begin = time.perf_counter()
        for index in range(int(rate * seconds)):
            delay = begin + index / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            pool.submit(timed, index)
    return latencies


def closed_loop(operation: Callable[[int, int], None], clients: int, seconds: float) -> list[float]:
    latencies: list[float] = []
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def client(number: int) -> None:
        index = 0
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            operation(number, index)
            elapsed = time.perf_counter() - started
            with lock:
                latencies.append(elapsed)
            index += 1

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies


def payload_of(command: Command) -> dict[str, object]:
    fields = {name: value for name, value in vars(command).items() if name not in ENVELOPE_FIELDS}
    return jsonable_encoder({**fields, "occurred_at": command.occurred_at})


@contextlib.contextmanager
def postgres(database_url: str | None) -> Iterator[str]:
    if database_url:
        yield database_url
        return
    with tempfile.TemporaryDirectory(prefix="yekuo-bench-api-") as state_dir:
        stack = LocalStack(Settings(state_dir=Path(state_dir)))
        try:
            yield stack.up(("postgres",)).database_url
        finally:
            stack.down(purge=True)


def fresh_database(server_url: str, name: str) -> str:
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return psycopg.conninfo.make_conninfo(server_url, dbname=name)


@contextlib.contextmanager
def api_process(database_url: str, state_dir: Path) -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "DATABASE_URL": database_url, "YEKUO_API_TOKEN_KEY": KEY, "PYTHONPATH": str(ROOT),
           "YEKUO_STATE_DIR": str(state_dir), "YEKUO_LOG_LEVEL": "WARNING"}  # fmt: skip
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    log = (state_dir / "api.log").open("wb")
    process = subprocess.Popen(  # noqa: S603 — our own CLI with a fixed argument list
        [sys.executable, "-m", "cli.main", "api", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=log,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{base}/health/ready", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline or process.poll() is not None:
                raise SystemExit(f"yekuo api did not start; see {state_dir / 'api.log'}")
            time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=20)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=200.0, help="offered progress look-ups per second")
    parser.add_argument(
        "--baseline-rate", type=float, default=50.0, help="offered /health/live per second, interleaved"
    )
    parser.add_argument("--cases", type=int, default=300)
    parser.add_argument("--clients", type=int, default=4, help="closed-loop command clients")
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))

    with postgres(args.database_url) as server, tempfile.TemporaryDirectory() as state:
        url = fresh_database(server, "bench_api")
        app = build_case_application(Settings(), url)
        numbers = []
        for index in range(args.cases):
            number = f"YK-B-{index:05d}"
            walk = sample_walk(CATEGORIES[index % 4], number, START)
            for command in walk[: random.randint(1, len(walk))]:
                app.execute(command)
            numbers.append(number)
        log = CaseEventLog(app)
        with psycopg.connect(url, autocommit=True) as conn:
            rebuild(conn, registry.select(), log.read_all, log.head)

        with api_process(url, Path(state)) as base:
            staff = bearer(
                issue_token(KEY, role=Role.STAFF, person_id="b", name="压测", department="MARKETING")
            )
            counter = bearer(
                issue_token(KEY, role=Role.INTEGRATOR, person_id="b", name="压测", source_system="COUNTER")
            )
            local = threading.local()

            def http() -> httpx.Client:
                if not hasattr(local, "client"):
                    local.client = httpx.Client(base_url=base, timeout=10)
                return local.client

            def lookup(index: int) -> None:
                answer = http().get(f"/cases/{numbers[index % len(numbers)]}/progress", headers=staff)
                if answer.status_code != 200:
                    raise SystemExit(f"progress answered {answer.status_code}: {answer.text[:200]}")

            def select(index: int) -> None:
                if not hasattr(local, "conn"):
                    local.conn = psycopg.connect(url, autocommit=True)
                local.conn.execute(
                    "SELECT * FROM case_progress WHERE case_number = %s", (numbers[index % len(numbers)],)
                ).fetchone()

            for _ in range(50):  # warm up both paths
                lookup(random.randrange(len(numbers)))
                select(random.randrange(len(numbers)))

            def live(_: int) -> None:
                http().get("/health/live")

            # the load generator in its own process, on warmed keep-alive connections, both streams
            # interleaved in the same seconds, latency from each request's scheduled moment
            paths = [f"/cases/{n}/progress" for n in random.sample(numbers, len(numbers))]
            separate = http_load.run(
                {
                    "base": base,
                    "seconds": args.seconds,
                    "streams": {
                        "progress": {"paths": paths, "rate": args.rate, "headers": staff},
                        "live": {"paths": ["/health/live"], "rate": args.baseline_rate},
                    },
                }
            )
            progress = _summary(separate["progress"], args.seconds, args.rate)
            http_floor = _summary(separate["live"], args.seconds, args.baseline_rate)
            # the former harness, for comparison: httpx from 16 threads of this process, one phase each
            progress_inproc = _summary(open_loop(lookup, args.rate, args.seconds), args.seconds, args.rate)
            live_inproc = _summary(open_loop(live, args.rate, args.seconds), args.seconds, args.rate)
            bare = _summary(open_loop(select, args.rate, args.seconds), args.seconds, args.rate)

            def submit_http(client: int, index: int) -> None:
                command = sample_walk("RESIDENTIAL", f"YK-H-{client}-{index}", START)[0]
                answer = http().post(
                    "/cases", json=payload_of(command), headers={**counter, "Command-Id": command.command_id}
                )
                if answer.status_code != 200:
                    raise SystemExit(f"submit answered {answer.status_code}: {answer.text[:200]}")

            def submit_direct(client: int, index: int) -> None:
                app.execute(sample_walk("RESIDENTIAL", f"YK-D-{client}-{index}", START)[0])

            commands_seconds = args.seconds / 2
            http_commands = _summary(
                closed_loop(submit_http, args.clients, commands_seconds), commands_seconds
            )
            direct = _summary(closed_loop(submit_direct, args.clients, commands_seconds), commands_seconds)
        app.close()

    print(
        json.dumps(
            {
                "benchmark": "api",
                "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "cpu_count": os.cpu_count(),
                "unit": "operations per second; latency in ms",
                "results": {
                    "progress_lookup": progress,
                    "bare_select": bare,
                    "http_health_live": http_floor,
                    "progress_lookup_in_process_httpx": progress_inproc,
                    "http_health_live_in_process_httpx": live_inproc,
                    "http_commands": http_commands,
                    "direct_commands": direct,
                },
                "ratios": {
                    "progress_p99_vs_bare_select_p99": round(progress["p99_ms"] / bare["p99_ms"], 2),
                    "progress_p99_vs_live_p99": round(progress["p99_ms"] / http_floor["p99_ms"], 2),
                    "progress_p50_vs_live_p50": round(progress["p50_ms"] / http_floor["p50_ms"], 2),
                    "in_process_progress_p99_vs_live_p99": round(
                        progress_inproc["p99_ms"] / live_inproc["p99_ms"], 2
                    ),
                    "http_vs_direct_commands": round(http_commands["per_second"] / direct["per_second"], 2),
                },
            },
            indent=2,
            ensure_ascii=False,
        )
    )


if __name__ == "__main__":
    main()
