"""SLA engine benchmark: one clock tick over 100 k open clocks, and what-if over a history of 1 M events.

Not a test. Prints one JSON document (progress on stderr).

  1. ``history``: sample cases walked in memory through the domain (all stages) and stored in bulk with the
     event store's recorder until ``--events`` case events exist (command receipts are not written: this
     history is for reading).
  2. baseline ``raw_log_read``: ``recorder.select_notifications(limit=1000)`` over the whole log.
  3. ``whatif``: every history replayed under REG_2009 and under the active set, verdicts compared
     (``cli.sla.compare``), including reading and decoding the log.
  4. ``tick``: ``--open-clocks`` open clock rows in ``sla_clocks`` (the read model's shape; ``--due`` of
     them due, on real cases), then one ``SlaClock.tick``: the index lookup and the commands it issues.
     Baseline ``scan``: reading every open clock row, which is what a tick without the precomputed
     ``next_due_at`` would have to do before any calendar arithmetic.

    python bench/sla.py [--events 1000000] [--open-clocks 100000] [--due 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from histories import populate, raw_log_read

from app.bootstrap import build_case_application
from app.event_log import CaseEventLog
from consumers.sla_clock import SlaClock
from infra.log_setup import configure_logging
from infra.settings import Settings
from infra.sla_config import sla_config
from infra.stack import running_stack
from projections import registry
from projections.sla_reports import compare
from projections.store import create_schema

START = datetime(2025, 3, 3, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai"))


def progress(message: str) -> None:
    print(f"[sla] {message}", file=sys.stderr, flush=True)


def whatif(app: Any) -> dict[str, Any]:
    started = time.perf_counter()
    histories: dict[UUID, list[Any]] = defaultdict(list)
    events = 0
    for messages, _ in CaseEventLog(app).read_all():
        events += len(messages)
        for message in messages:
            histories[message.case_id].append(message)
    read = time.perf_counter() - started
    report = compare(sla_config(), "REG_2009", histories, datetime(2026, 6, 1, tzinfo=UTC))
    seconds = time.perf_counter() - started
    return {
        "events": events,
        "cases": len(histories),
        "clocks": report.clocks,
        "verdicts_changed": len(report.changed),
        "clocks_with_a_limit_in_one_set_only": sum(report.limit_only_in_one.values()),
        "seconds_reading": round(read, 2),
        "seconds": round(seconds, 2),
        "per_second": round(events / seconds),
    }


def open_clocks(database_url: str, app: Any, count: int, due: int) -> datetime:
    """``count`` open clock rows; ``due`` of them (on real cases) have a level due at the returned instant."""
    now = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
    with psycopg.connect(database_url, autocommit=True) as conn:
        create_schema(conn, registry.select())
        real = conn.execute("SELECT DISTINCT originator_id FROM cases_events LIMIT %s", (due,)).fetchall()
        numbers = {}
        for (case_id,) in real:
            (first,) = app.recorder.select_events(case_id, lte=1)
            numbers[case_id] = app.mapper.to_domain_event(first).case_number
        with (
            conn.cursor() as cursor,
            cursor.copy(
                "COPY sla_clocks (clock_id, case_id, case_number, category, kind, stage, started_at, "
                "limit_days, deadline_at, paused, crossings, recorded_levels, next_due_at, next_level, "
                "calendar_missing, rule_set, rule_version, calendar_version) FROM STDIN"
            ) as copy,
        ):
            case_ids = list(numbers)
            for index in range(count):
                is_due = index < len(case_ids)
                case_id = case_ids[index] if is_due else UUID(int=index)
                at = now - timedelta(hours=1) if is_due else now + timedelta(days=1 + index % 30)
                crossings = [
                    {
                        "level": "NOTICE",
                        "share": 0.5,
                        "at": at.isoformat(),
                        "department": "MARKETING",
                        "handler": "张伟",
                    }
                ]
                copy.write_row(
                    (
                        f"{case_id}:STAGE:SUPPLY_PLAN:9",
                        case_id,
                        numbers.get(case_id, f"YK-X-{index}"),
                        "HV_SINGLE",
                        "STAGE",
                        "SUPPLY_PLAN",
                        now - timedelta(days=5),
                        15,
                        now + timedelta(days=10),
                        False,
                        json.dumps(crossings),
                        "[]",
                        at,
                        "NOTICE",
                        False,
                        "SGCC_INTERNAL",
                        "2020.1",
                        "bench",
                    )
                )
    return now


def scan(database_url: str) -> dict[str, Any]:
    started = time.perf_counter()
    with psycopg.connect(database_url, autocommit=True) as conn:
        rows = conn.execute("SELECT * FROM sla_clocks WHERE stopped_at IS NULL").fetchall()
    seconds = time.perf_counter() - started
    return {"rows": len(rows), "seconds": round(seconds, 3)}


def main() -> None:
    configure_logging("INFO", json=False)  # to stderr: stdout is the JSON result
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--open-clocks", type=int, default=100_000)
    parser.add_argument("--due", type=int, default=1000)
    args = parser.parse_args()
    settings = Settings(state_dir=Path(tempfile.mkdtemp(prefix="yekuo-bench-sla-")))
    with running_stack(settings, ("postgres",)) as ends:
        database_url = os.environ.get("DATABASE_URL") or ends.database_url
        dbname = f"bench_sla_{os.getpid()}"
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{dbname}"')
        url = psycopg.conninfo.make_conninfo(database_url, dbname=dbname)
        app = build_case_application(settings, url)
        try:
            progress(f"populating {args.events} events …")
            history = populate(app, args.events)
            progress(f"history: {history}")
            baseline = raw_log_read(app)
            progress(f"raw log read: {baseline}")
            replay = whatif(app)
            progress(f"what-if: {replay}")
            now = open_clocks(url, app, args.open_clocks, args.due)
            full_scan = scan(url)
            started = time.perf_counter()
            counts = SlaClock(app, url, clock=lambda: now, batch=args.due).tick()
            tick_seconds = time.perf_counter() - started
            started = time.perf_counter()
            idle = SlaClock(app, url, clock=lambda: now - timedelta(days=1)).tick()
            idle_seconds = time.perf_counter() - started
        finally:
            app.close()
            with psycopg.connect(database_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
    result = {
        "history": history,
        "baselines": {"raw_log_read": baseline, "scan_open_clocks": full_scan},
        "whatif": {**replay, "vs_raw_log_read": round(replay["per_second"] / baseline["per_second"], 3)},
        "tick": {
            "open_clocks": args.open_clocks,
            "due": counts["due"],
            "recorded": counts["recorded"],
            "seconds": round(tick_seconds, 3),
            "crossings_per_second": round(counts["recorded"] / tick_seconds) if tick_seconds else None,
            "idle_tick_seconds": round(idle_seconds, 4),
            "idle_due": idle["due"],
            "idle_vs_scan": round(idle_seconds / full_scan["seconds"], 4) if full_scan["seconds"] else None,
        },
    }
    print(json.dumps(result, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
