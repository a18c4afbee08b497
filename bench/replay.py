"""Replay benchmark: rebuild and what-if against the raw log read, and how their cost grows with history.

Not a test. Prints one JSON document (progress on stderr).

For each size of ``--sizes`` (default 100 k and 1 M case events; add 5000000 for the third row of the
growth table), the history is extended to that size (``bench/histories.py``: sample cases walked in memory
and stored in bulk), then measured in the same run:

  1. baseline ``raw_log_read``: ``recorder.select_notifications(limit=1000)`` over the whole log — the
     store's own read, with no decoding;
  2. ``decode``: ``CaseEventLog.read_all`` alone — the fast path's paged SQL read and orjson decoding into
     published messages;
  3. ``rebuild``: ``projections.rebuild.rebuild`` of every registered projection (shadow tables, COPY, swap),
     serial in this process;
  4. ``parallel_rebuild``: the same with ``--jobs`` worker processes over case ranges (default: one per
     core, at most 4), each reading its cases through the fast path and COPYing in its own transaction;
  5. ``whatif``: every history read and compared under REG_2009 (``projections.sla_reports.compare``);
     only the events the SLA tracker follows are decoded, and the rate counts every case event.

At the first size the generic path (``CaseEventLog(app, fast=False)``: eventsourcing's mapper and a domain
event object per record, what rebuild and what-if used before) is measured for decode and rebuild too, so
the speed-up is a same-run ratio. Ratios are against the raw log read of the same size; each row also
gives the time each step took per million events.

    python bench/replay.py [--sizes 100000,1000000[,5000000]] [--jobs N]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from histories import populate, raw_log_read

from app.bootstrap import build_case_application
from app.event_log import CaseEventLog, CaseRangeReader
from domain.sla import RELEVANT_EVENTS
from infra.log_setup import configure_logging
from infra.messages import CaseEventMessage
from infra.settings import Settings
from infra.sla_config import sla_config
from infra.stack import running_stack
from projections import registry
from projections.rebuild import Workers, default_jobs, rebuild
from projections.sla_reports import compare

AIM = 0.3
"""Rebuild and what-if aim: at least 0.3x the raw log read (issue 13)."""


def progress(message: str) -> None:
    print(f"[replay] {message}", file=sys.stderr, flush=True)


def timed(work: Callable[..., int], *args: Any) -> dict[str, Any]:
    started = time.perf_counter()
    events = work(*args)
    seconds = time.perf_counter() - started
    return {"events": events, "seconds": round(seconds, 2), "per_second": round(events / seconds)}


def decode(log: CaseEventLog) -> int:
    return sum(len(messages) for messages, _ in log.read_all())


def rebuild_all(database_url: str, log: CaseEventLog, workers: Workers | None = None) -> int:
    with psycopg.connect(database_url, autocommit=True) as conn:
        return rebuild(conn, registry.select(), log.read_all, log.head, workers=workers).events


def whatif(log: CaseEventLog, events: int) -> int:
    """What-if over a history of ``events`` case events: it decodes only the events the SLA tracker
    follows (the others change no clock), so its rate is counted over the whole history."""
    histories: dict[UUID, list[CaseEventMessage]] = defaultdict(list)
    for messages, _ in log.read_all(types=RELEVANT_EVENTS):
        for message in messages:
            histories[message.case_id].append(message)
    compare(sla_config(), "REG_2009", histories, datetime(2026, 6, 1, tzinfo=UTC))
    return events


def ratio(subject: dict[str, Any], baseline: dict[str, Any]) -> float:
    return round(subject["per_second"] / baseline["per_second"], 3)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="100000,1000000", help="history sizes in case events, ascending")
    parser.add_argument(
        "--jobs", type=int, default=default_jobs(), help="the parallel rebuild's worker processes"
    )
    args = parser.parse_args()
    sizes = sorted(int(size) for size in args.sizes.split(","))
    configure_logging("WARNING", json=False)
    rows: list[dict[str, Any]] = []
    generic: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="yekuo-replay-") as work:
        settings = Settings(state_dir=Path(work) / "stack")
        with running_stack(settings, ("postgres",)) as endpoints:
            database_url = os.environ.get("DATABASE_URL") or endpoints.database_url
            app = build_case_application(settings, database_url)
            try:
                events, next_case = 0, 0
                for size in sizes:
                    progress(f"extending the history to {size:,} events")
                    added = populate(app, size - events, first_case=next_case)
                    events, next_case = events + added["events"], added["next_case"]
                    log = CaseEventLog(app)
                    workers = Workers(database_url, CaseRangeReader(settings, database_url), jobs=args.jobs)
                    progress(f"{events:,} events: raw log read, decode, rebuild, parallel rebuild, what-if")
                    row: dict[str, Any] = {
                        "events": events,
                        "populate": added,
                        "jobs": workers.processes,
                        "raw_log_read": raw_log_read(app),
                    }
                    row["decode"] = timed(decode, log)
                    row["rebuild"] = timed(rebuild_all, database_url, log)
                    row["parallel_rebuild"] = timed(rebuild_all, database_url, log, workers)
                    row["whatif"] = timed(whatif, log, row["decode"]["events"])
                    row["raw_log_read_after"] = raw_log_read(app)  # the machine's load drifts: bracket it
                    for subject in ("raw_log_read", "decode", "rebuild", "parallel_rebuild", "whatif"):
                        row[f"{subject}_seconds_per_million_events"] = round(
                            row[subject]["seconds"] * 1_000_000 / events, 1
                        )
                    for subject in ("decode", "rebuild", "parallel_rebuild", "whatif"):
                        row[f"{subject}_vs_raw_log_read"] = ratio(row[subject], row["raw_log_read"])
                    row["parallel_vs_serial_rebuild"] = ratio(row["parallel_rebuild"], row["rebuild"])
                    progress(json.dumps(row))
                    if not generic:
                        progress("the generic path (mapper, one domain object per event) at the first size")
                        slow = CaseEventLog(app, fast=False)
                        generic = {
                            "events": events,
                            "decode": timed(decode, slow),
                            "rebuild": timed(rebuild_all, database_url, slow),
                        }
                        generic["fast_rebuild_vs_generic_rebuild"] = ratio(row["rebuild"], generic["rebuild"])
                        generic["generic_rebuild_vs_raw_log_read"] = ratio(
                            generic["rebuild"], row["raw_log_read"]
                        )
                    rows.append(row)
            finally:
                app.close()
    largest = rows[-1]
    print(
        json.dumps(
            {
                "growth": rows,
                "generic_path": generic,
                "aims": {
                    "rebuild >= 0.3x raw log read": largest["rebuild_vs_raw_log_read"] >= AIM,
                    "parallel rebuild >= 0.3x raw log read": (
                        largest["parallel_rebuild_vs_raw_log_read"] >= AIM
                    ),
                    "what-if >= 0.3x raw log read": largest["whatif_vs_raw_log_read"] >= AIM,
                },
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
