"""The fast replay path gives exactly what the generic one gives: messages, rebuilt rows and what-if.

The reference is the path Yekuo used before (``CaseEventLog(app, fast=False)``): eventsourcing's mapper
builds each domain event object and ``case_event_message`` flattens it. The history is every demo route, plus stored records rewritten the way
older releases and other writers left them: a v1 record that must be upcast, and times stored with a
+08:00 offset.

A parallel rebuild (worker processes over case ranges, each reading its cases through the fast path and
COPYing them in its own transaction, the catch-up and swap in the caller) must give the serial rebuild's
rows, row for row, also when the log grows while the workers run.

A rebuild also evaluates each SLA clock once per case (``SlaProjection.replaying``) and estimates each
case's expected completion once (``ProgressProjection.replaying``) instead of after every event; live
workers do the same once per batch. On a history with running, paused, breached and answered-after-breach clocks, cases finished
and cases stopped mid-route, both must give the rows of the event-by-event projections.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import UUID

import orjson
import psycopg
import pytest

from app.application import CaseApplication
from app.bootstrap import build_case_application
from app.event_log import CaseEventLog, CaseRangeReader
from consumers.sla_clock import SlaClock
from demo.samples import CATEGORIES_FOR_DEMO, sample_walk
from domain.commands import PauseClock, ReplySupplyPlan, SubmitApplication
from domain.sla import RELEVANT_EVENTS
from infra.messages import CaseEventMessage
from infra.settings import Settings
from infra.sla_config import sla_config
from projections import registry
from projections.rebuild import RebuildReport, Workers, rebuild
from projections.sla_reports import compare
from projections.store import apply_events
from projections.tables import CaseRows, Projection, Table, all_tables

START = datetime(2025, 9, 1, 1, 0, tzinfo=UTC)


def reference_read_all(app: CaseApplication) -> Iterator[tuple[list[CaseEventMessage], int]]:
    """The generic path: every record through the mapper into a domain event, then flattened."""
    return CaseEventLog(app, fast=False).read_all(batch=500)


def rewrite(database_url: str, app: CaseApplication, topic_suffix: str, change: Any) -> None:
    """Rewrite the stored state of the first record of ``topic_suffix`` with ``change(fields)``."""
    table = app.recorder.events_table_name
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            f"SELECT notification_id, state FROM {table} WHERE topic LIKE %s ORDER BY 1 LIMIT 1",  # noqa: S608
            (f"%{topic_suffix}",),
        ).fetchone()
        assert row is not None, topic_suffix
        fields = orjson.loads(bytes(row[1]))
        change(fields)
        conn.execute(
            f"UPDATE {table} SET state = %s WHERE notification_id = %s",  # noqa: S608
            (orjson.dumps(fields), row[0]),
        )


def as_v1(fields: dict[str, Any]) -> None:
    fields.pop("class_version")
    fields.pop("party_id")


def in_shanghai_time(fields: dict[str, Any]) -> None:
    utc = datetime.fromisoformat(fields["occurred_at"]["_data_"])
    fields["occurred_at"]["_data_"] = utc.astimezone(timezone(timedelta(hours=8))).isoformat()


@pytest.fixture
def app(fresh_database_url: str) -> Iterator[CaseApplication]:
    application = build_case_application(Settings(), fresh_database_url)
    for index, (category, fast_track) in enumerate(CATEGORIES_FOR_DEMO):
        for command in sample_walk(
            category, f"YK-RP-{index:02d}", START + timedelta(days=index), fast_track=fast_track
        ):
            assert application.execute(command).accepted
    rewrite(fresh_database_url, application, "Case.CompletionReported", as_v1)
    rewrite(fresh_database_url, application, "Case.SiteSurveyCompleted", in_shanghai_time)
    yield application
    application.close()


def dumped(batches: Iterator[tuple[list[CaseEventMessage], int]]) -> list[dict[str, Any]]:
    return [message.model_dump(mode="json", by_alias=True) for messages, _ in batches for message in messages]


def test_the_fast_path_decodes_every_stored_event_into_the_same_message(app: CaseApplication) -> None:
    fast = dumped(CaseEventLog(app).read_all(batch=37))  # small pages: page ends fall mid-command
    reference = dumped(reference_read_all(app))

    assert len(fast) == len(reference) > 100
    assert fast == reference
    messages = [m for batch, _ in CaseEventLog(app).read_all() for m in batch]
    generic = [m for batch, _ in reference_read_all(app) for m in batch]
    assert messages == generic  # the instances too, as model_construct builds them
    assert [m.model_fields_set for m in messages] == [m.model_fields_set for m in generic]
    assert [m.actor.model_fields_set for m in messages] == [m.actor.model_fields_set for m in generic]
    upcast = [m for m in fast if m["type"] == "CompletionReported"]
    assert upcast and upcast[0]["payload"]["party_id"] == ""


def test_a_rebuild_and_a_what_if_from_the_fast_path_equal_those_from_the_generic_one(
    app: CaseApplication, fresh_database_url: str
) -> None:
    log = CaseEventLog(app)

    def rows() -> dict[str, list[tuple[Any, ...]]]:
        with psycopg.connect(fresh_database_url, autocommit=True) as conn:
            return {
                t.name: sorted(conn.execute(f"SELECT * FROM {t.name}").fetchall(), key=repr)  # noqa: S608
                for p in registry.select()
                for t in all_tables(p)
            }

    with psycopg.connect(fresh_database_url, autocommit=True) as conn:
        rebuild(conn, registry.select(), lambda after, until: reference_read_all(app), log.head)
    by_reference = rows()
    with psycopg.connect(fresh_database_url, autocommit=True) as conn:
        rebuild(conn, registry.select(), log.read_all, log.head)
    assert rows() == by_reference
    assert by_reference["case_progress"]

    def histories(
        batches: Iterator[tuple[list[CaseEventMessage], int]],
    ) -> dict[UUID, list[CaseEventMessage]]:
        found: dict[UUID, list[CaseEventMessage]] = defaultdict(list)
        for messages, _ in batches:
            for message in messages:
                found[message.case_id].append(message)
        return found

    config = sla_config()
    now = START + timedelta(days=200)
    fast = compare(config, "REG_2009", histories(log.read_all()), now)
    reference = compare(config, "REG_2009", histories(reference_read_all(app)), now)
    assert fast == reference
    assert fast.clocks > 0
    followed = compare(config, "REG_2009", histories(log.read_all(types=RELEVANT_EVENTS)), now)
    assert followed == reference  # the events the SLA tracker does not follow change nothing


class EventByEvent:
    """A projection without its replay stand-in: rows changed after every event, as live workers do."""

    def __init__(self, projection: Projection) -> None:
        self.projection = projection
        self.name = projection.name
        self.tables: Sequence[Table] = projection.tables
        self.views: Sequence[str] = projection.views

    def apply(self, rows: CaseRows, event: CaseEventMessage) -> None:
        self.projection.apply(rows, event)


def rebuilt_rows(
    database_url: str, app: CaseApplication, projections: Sequence[Projection]
) -> dict[str, Any]:
    log = CaseEventLog(app)
    with psycopg.connect(database_url, autocommit=True) as conn:
        rebuild(conn, projections, log.read_all, log.head)
        return {
            t.name: sorted(conn.execute(f"SELECT * FROM {t.name}").fetchall(), key=repr)  # noqa: S608
            for p in projections
            for t in all_tables(p)
        }


LATER = START + timedelta(days=90)


@pytest.fixture
def clocked_app(fresh_database_url: str) -> Iterator[CaseApplication]:
    """Whole demo routes; cases stopped before the plan reply (their clocks run into breach, the SLA
    clock records it, two are answered afterwards); a case stopped in a customer pause."""
    application = build_case_application(Settings(), fresh_database_url)
    replies = []
    for index in range(12):
        category, fast_track = CATEGORIES_FOR_DEMO[index % len(CATEGORIES_FOR_DEMO)]
        start = START + timedelta(hours=7 * index)
        for command in sample_walk(category, f"YK-CL-{index:02d}", start, fast_track=fast_track):
            if index >= len(CATEGORIES_FOR_DEMO) and isinstance(command, ReplySupplyPlan):
                replies.append(command)
                break
            assert application.execute(command).accepted
            if index >= len(CATEGORIES_FOR_DEMO) and isinstance(command, PauseClock):
                break
    for command in sample_walk("HV_SINGLE", "YK-CL-P", START):
        assert application.execute(command).accepted
        if isinstance(command, PauseClock):
            break
    rebuilt_rows(fresh_database_url, application, registry.select())  # the SLA clock reads the read model
    assert SlaClock(application, fresh_database_url, clock=lambda: LATER).tick()["recorded"] > 0
    for reply in replies[:2]:
        later = dataclasses.replace(reply, occurred_at=LATER + timedelta(hours=1))
        assert application.execute(later).accepted
    yield application
    application.close()


def test_a_rebuild_evaluating_each_clock_once_gives_the_rows_of_one_evaluation_per_event(
    clocked_app: CaseApplication, fresh_database_url: str
) -> None:
    event_by_event = rebuilt_rows(
        fresh_database_url, clocked_app, [EventByEvent(p) for p in registry.select()]
    )
    deferred = rebuilt_rows(fresh_database_url, clocked_app, registry.select())

    assert deferred == event_by_event
    clocks = {row[0]: row for row in deferred["sla_clocks"]}
    names = [c.name for c in registry.select()[3].tables[1].columns]
    stopped, paused, levels = names.index("stopped_at"), names.index("paused"), names.index("recorded_levels")
    assert any(row[stopped] is None and row[paused] for row in clocks.values())
    assert any(row[stopped] is None and "BREACH" in row[levels] for row in clocks.values())
    assert any(row[stopped] is not None and "BREACH" in row[levels] for row in clocks.values())
    assert deferred["sla_crossings"]


def test_a_live_worker_settling_each_case_once_per_batch_gives_the_rows_of_one_evaluation_per_event(
    clocked_app: CaseApplication, fresh_database_url: str
) -> None:
    """Live workers apply a batch of events with the replay stand-ins and settle each changed case once
    at the batch's end (``apply_delivered``); batches of 7 split cases' histories across batches."""
    event_by_event = rebuilt_rows(
        fresh_database_url, clocked_app, [EventByEvent(p) for p in registry.select()]
    )
    projections = registry.select()
    with psycopg.connect(fresh_database_url, autocommit=True) as conn:
        for table in [t for p in projections for t in all_tables(p)]:
            conn.execute(f"TRUNCATE {table.name}")
        messages = [m for batch, _ in CaseEventLog(clocked_app).read_all() for m in batch]
        applied = 0
        for start in range(0, len(messages), 7):
            with conn.transaction():
                applied += apply_events(conn, projections, messages[start : start + 7])
        per_batch = {
            t.name: sorted(conn.execute(f"SELECT * FROM {t.name}").fetchall(), key=repr)  # noqa: S608
            for p in projections
            for t in all_tables(p)
        }

    assert applied == len(messages) * len(projections)
    assert per_batch == event_by_event
    assert per_batch["sla_clocks"] and per_batch["case_progress"]


def add_generated_cases(app: CaseApplication, count: int) -> None:
    """``count`` more cases walked in memory along the demo routes and stored in bulk (as the benchmark's
    histories are), so that many cases fall in every case range of a parallel rebuild."""
    stored = []
    for index in range(count):
        category, fast_track = CATEGORIES_FOR_DEMO[index % len(CATEGORIES_FOR_DEMO)]
        case = None
        for command in sample_walk(
            category, f"YK-GEN-{index:03d}", START + timedelta(hours=5 * index), fast_track=fast_track
        ):
            ctx = command.context(command.occurred_at)
            if isinstance(command, SubmitApplication):
                case = command.create(ctx)
            else:
                command.execute(case, ctx)
        assert case is not None
        stored.extend(app.mapper.to_stored_event(event) for event in case.collect_events())
    app.recorder.insert_events(stored)


def rebuild_and_read(
    database_url: str, app: CaseApplication, **options: Any
) -> tuple[RebuildReport, dict[str, list[tuple[Any, ...]]]]:
    """Rebuild every read model and read back all their rows; ``first_head`` makes the rebuild start from
    that log position, as if the rest arrived while it ran (the caller then catches up)."""
    log = CaseEventLog(app)
    first_head = options.pop("first_head", None)
    heads = iter([first_head] if first_head is not None else [])

    def head() -> int:
        return next(heads, None) or log.head()

    with psycopg.connect(database_url, autocommit=True) as conn:
        report = rebuild(conn, registry.select(), log.read_all, head, **options)
        return report, {
            t.name: sorted(conn.execute(f"SELECT * FROM {t.name}").fetchall(), key=repr)  # noqa: S608
            for p in registry.select()
            for t in all_tables(p)
        }


@pytest.mark.parametrize("history", ["app", "clocked_app"])
def test_a_parallel_rebuild_over_case_ranges_gives_the_rows_of_the_serial_rebuild(
    history: str, request: pytest.FixtureRequest, fresh_database_url: str
) -> None:
    application: CaseApplication = request.getfixturevalue(history)
    add_generated_cases(application, 40)
    head = CaseEventLog(application).head()
    workers = Workers(
        fresh_database_url,
        CaseRangeReader(Settings(), fresh_database_url),
        jobs=2,
        tasks_per_job=3,
        flush_cases=4,  # several COPY rounds per range, a case's events split across read pages
    )

    serial_report, serial = rebuild_and_read(fresh_database_url, application, workers=None)
    parallel_report, parallel = rebuild_and_read(fresh_database_url, application, workers=workers)
    caught_up_report, caught_up = rebuild_and_read(
        fresh_database_url, application, workers=workers, first_head=head * 2 // 3
    )

    assert parallel == serial
    assert caught_up == serial
    assert serial["case_progress"] and serial["sla_clocks"] and serial["notifications"]
    expected = (serial_report.events, serial_report.cases, serial_report.position)
    assert (parallel_report.events, parallel_report.cases, parallel_report.position) == expected
    assert (caught_up_report.events, caught_up_report.cases, caught_up_report.position) == expected
