"""Histories for the benchmarks: sample cases walked in memory through the domain and stored in bulk, and the
raw log read that replay figures are compared with. Imported by ``bench/sla.py`` and ``bench/replay.py``."""

from __future__ import annotations

import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from demo.samples import CATEGORIES_FOR_DEMO, sample_walk
from domain.commands import SubmitApplication

START = datetime(2025, 3, 3, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai"))


def populate(app: Any, events: int, first_case: int = 0) -> dict[str, Any]:
    """Walk cases in memory and store ``events`` more events in bulk, numbering cases from ``first_case``
    (command receipts are not written: these histories are for reading)."""
    started, written, cases, batch = time.perf_counter(), 0, first_case, []
    while written < events:
        category, fast_track = CATEGORIES_FOR_DEMO[cases % len(CATEGORIES_FOR_DEMO)]
        commands = sample_walk(
            category, f"YK-B-{cases:07d}", START + timedelta(minutes=cases), fast_track=fast_track
        )
        case = None
        for command in commands:
            ctx = command.context(command.occurred_at)
            if isinstance(command, SubmitApplication):
                case = command.create(ctx)
            else:
                command.execute(case, ctx)
        if case is None:
            raise RuntimeError("a sample walk starts with its application")
        pending = case.collect_events()
        batch.extend(app.mapper.to_stored_event(event) for event in pending)
        written += len(pending)
        cases += 1
        if len(batch) >= 5000:
            app.recorder.insert_events(batch)
            batch = []
    if batch:
        app.recorder.insert_events(batch)
    seconds = time.perf_counter() - started
    return {
        "cases": cases - first_case,
        "next_case": cases,
        "events": written,
        "seconds": round(seconds, 2),
        "per_second": round(written / seconds),
    }


def raw_log_read(app: Any) -> dict[str, Any]:
    started, position, count = time.perf_counter(), 0, 0
    while True:
        notifications = app.recorder.select_notifications(
            start=position, limit=1000, inclusive_of_start=False
        )
        if not notifications:
            break
        count += len(notifications)
        position = notifications[-1].id
    seconds = time.perf_counter() - started
    return {"notifications": count, "seconds": round(seconds, 2), "per_second": round(count / seconds)}
