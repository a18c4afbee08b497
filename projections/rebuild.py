"""Rebuild read models from the event store, not through Kafka, into shadow tables swapped in atomically.

1. Create ``<table>__shadow`` for each table of the projection and apply the whole log to per-case state
   in memory, bulk-loading it with COPY (no lock on the live tables: readers and live workers go on).
2. Lock the live tables (``ACCESS EXCLUSIVE``: live workers wait), apply what the log gained meanwhile,
   then drop the live tables and rename the shadows into place — one transaction, so readers see either
   the old or the new rows, never an empty or partial model.
   A projection that can replay whole histories more cheaply than event by event offers ``replaying()``:
   a stand-in with the same tables that defers work, and ``settle(case_id, rows)`` to finish a case's
   rows before they are written (the SLA projection evaluates each clock once instead of after every
   event of its case; the progress projection estimates the expected completion once). It must give
   the rows ``apply`` gives; ``tests/integration/test_replay_path.py`` compares both.
3. Parked events (``parked_events``) that the rebuilt rows already contain are discarded in the swap.
4. Live workers resume from their own Kafka positions: every event they apply after the swap is either
   newer than the rebuild (applied) or already in it (skipped by its case version).

Parallel (``workers=Workers(...)`` with ``jobs`` > 1): step 1 runs in worker processes over ranges of case
ids. Every read model is per case (``projections.tables``: a projection's rows all belong to one case and
``apply`` sees only that case's rows and event; notification ids are uuid5 of case, version and
recipient; department workloads and KPIs are views aggregating over the tables in SQL), so a case's rows
depend only on its own events in version order, and the ranges can be rebuilt independently. Each task
reads its cases' events up to the log position taken at the start (``ReadCases``: case by case, so a
case's rows are written as soon as it is complete) and COPYs them into the shadow tables in its own
transaction. Step 2 stays in the caller: it loads the shadow rows of the cases the log gained meanwhile,
applies those events and swaps, as the serial rebuild does. ``tests/integration/test_replay_path.py``
compares the rows with the serial rebuild's.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import psycopg
import structlog

from infra.messages import CaseEventMessage
from projections.store import SHADOW, create_schema, discard_parked_behind, load_states, write_states
from projections.tables import CaseState, Outcome, Projection, all_tables, replaying, settle

log = structlog.get_logger("yekuo.rebuild")

ReadLog = Callable[[int, int], Iterable[tuple[list[CaseEventMessage], int]]]
"""``read_log(after, until)``: batches of (messages, position) of the log in order."""

ReadCases = Callable[[UUID | None, UUID | None, int], Iterable[list[CaseEventMessage]]]
"""``read_cases(low, high, until)``: batches of the events at log positions up to ``until`` of the cases
with ``low <= case_id < high`` (None: unbounded), case after case, each case's in version order. It is sent
to worker processes: it must be picklable (``app.event_log.CaseRangeReader``)."""

Progress = Callable[[int, int], None]
"""``progress(events, of)``: events applied so far of the log positions to read (the store's case log has
no gaps, so that is the number of events)."""


def default_jobs() -> int:
    """Worker processes for a parallel rebuild: one per core, at most four."""
    return min(os.cpu_count() or 1, 4)


@dataclass(frozen=True)
class Workers:
    """How a parallel rebuild's worker processes read the log and reach the read-model database."""

    database_url: str
    read_cases: ReadCases
    jobs: int = 0
    """Worker processes (0: ``default_jobs()``); 1 rebuilds serially in the caller."""
    tasks_per_job: int = 4
    """Case ranges per worker: a worker slowed by other load on the machine takes fewer of them."""
    flush_cases: int = 2_000
    """A worker COPYs its complete cases every this many cases (its memory stays bounded by it)."""

    @property
    def processes(self) -> int:
        return self.jobs or default_jobs()


def settle_all(
    projections: Sequence[Projection], states: dict[str, dict[UUID, CaseState]], cases: Iterable[UUID]
) -> None:
    """Finish the deferred work of ``cases`` in every projection that defers some."""
    case_ids = list(cases)
    for projection in projections:
        rows_of = states[projection.name]
        settle(projection, {case_id: rows_of[case_id] for case_id in case_ids if case_id in rows_of})


@dataclass(frozen=True)
class RebuildReport:
    projections: list[str]
    events: int
    cases: int
    position: int
    seconds: float

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


def rebuild(
    conn: psycopg.Connection[Any],
    projections: Sequence[Projection],
    read_log: ReadLog,
    head: Callable[[], int],
    *,
    workers: Workers | None = None,
    progress: Progress | None = None,
) -> RebuildReport:
    """Rebuild ``projections`` from the log up to its head at the moment of the swap; with ``workers``
    (more than one process), the log up to the head at the start in parallel over case ranges."""
    started = time.perf_counter()
    create_schema(conn, projections)
    originals = list(projections)
    projections = [replaying(p) for p in projections]
    states: dict[str, dict[UUID, CaseState]] = {p.name: {} for p in projections}
    with conn.transaction():
        for projection in projections:
            for table in all_tables(projection):
                conn.execute(f"DROP TABLE IF EXISTS {table.name}{SHADOW}")
                for statement in table.ddl(SHADOW):
                    conn.execute(statement)
    target = head()
    parallel = workers is not None and workers.processes > 1
    if workers is not None and parallel:
        events, case_count = _rebuild_in_workers(originals, workers, target, progress)
    else:
        events = _apply(projections, states, read_log(0, target), progress=progress, of=target)
        settle_all(projections, states, {case_id for cases in states.values() for case_id in cases})
        with conn.transaction():
            _write(conn, projections, states)
        case_count = max((len(s) for s in states.values()), default=0)
    with conn.transaction():
        live = [t.name for p in projections for t in all_tables(p)]
        conn.execute(f"LOCK TABLE {', '.join(live)} IN ACCESS EXCLUSIVE MODE")
        final = head()
        touched: set[UUID] = set()
        if parallel:
            # The caught-up cases' rows are in the shadow tables, not here: load them first.
            batches = list(read_log(target, final))
            cases = list(dict.fromkeys(m.case_id for messages, _ in batches for m in messages))
            states = {p.name: load_states(conn, p, cases, SHADOW) for p in projections}
            case_count += sum(1 for case_id in cases if states[projections[0].name][case_id].version == 0)
            events += _apply(projections, states, batches, touched)
        else:
            events += _apply(projections, states, read_log(target, final), touched)
            case_count = max((len(s) for s in states.values()), default=0)
        settle_all(projections, states, touched)
        for projection in projections:
            cases_of = states[projection.name]
            write_states(conn, projection, {case_id: cases_of[case_id] for case_id in touched}, SHADOW)
        for projection in projections:
            for table in all_tables(projection):
                conn.execute(f"DROP TABLE {table.name} CASCADE")
                conn.execute(f"ALTER TABLE {table.name}{SHADOW} RENAME TO {table.name}")
                pkey = f"{table.name}_pkey"
                conn.execute(
                    f"ALTER TABLE {table.name} RENAME CONSTRAINT {table.name}{SHADOW}_pkey TO {pkey}"
                )
            for view in projection.views:
                conn.execute(view)
            discard_parked_behind(conn, projection)
    report = RebuildReport(
        [p.name for p in projections], events, case_count, final, time.perf_counter() - started
    )
    log.info(
        "rebuilt",
        projections=report.projections,
        events=events,
        seconds=report.seconds,
        jobs=workers.processes if workers is not None and parallel else 1,
    )
    return report


def case_ranges(count: int) -> list[tuple[UUID | None, UUID | None]]:
    """``count`` ranges of case ids splitting the uuid space evenly (case ids are uniform: uuid4/uuid5);
    the first and last are open-ended."""
    step = (1 << 128) // count
    bounds: list[UUID | None] = [None, *(UUID(int=step * index) for index in range(1, count)), None]
    return list(itertools.pairwise(bounds))


@dataclass(frozen=True)
class _Task:
    projections: Sequence[Projection]
    workers: Workers


_worker: _Task | None = None
"""In a worker process: what its tasks share (set by ``_start_worker``)."""
_applied: Any = None
"""Events applied by all workers so far (a shared counter the caller reads for progress)."""


def _start_worker(task: _Task, applied: Any) -> None:
    global _worker, _applied  # per worker process, set once when it starts
    _worker, _applied = task, applied


def _rebuild_in_workers(
    projections: Sequence[Projection], workers: Workers, target: int, progress: Progress | None
) -> tuple[int, int]:
    """Step 1 over case ranges in worker processes, each range in its own transaction: (events, cases)."""
    context = multiprocessing.get_context("spawn")  # no fork of the caller's pools and threads
    applied = context.Value("q", 0)
    ranges = case_ranges(workers.processes * workers.tasks_per_job)
    with ProcessPoolExecutor(
        workers.processes,
        mp_context=context,
        initializer=_start_worker,
        initargs=(_Task(projections, workers), applied),
    ) as pool:
        futures: list[Future[tuple[int, int]]] = [
            pool.submit(_rebuild_range, low, high, target) for low, high in ranges
        ]
        pending = set(futures)
        while pending:
            done, pending = wait(pending, timeout=0.25, return_when=FIRST_EXCEPTION)
            for future in done:
                future.result()  # a failed range fails the rebuild (the shadow tables are dropped next time)
            if progress is not None:
                progress(applied.value, target)
    results = [future.result() for future in futures]
    return sum(events for events, _ in results), sum(cases for _, cases in results)


def _rebuild_range(low: UUID | None, high: UUID | None, until: int) -> tuple[int, int]:
    """In a worker: rebuild the cases with ``low <= case_id < high`` from the log up to ``until`` into the
    shadow tables, in one transaction; (events applied, cases)."""
    if _worker is None:
        raise RuntimeError("_rebuild_range runs in a rebuild worker process")
    projections = [replaying(p) for p in _worker.projections]
    states: dict[str, dict[UUID, CaseState]] = {p.name: {} for p in projections}
    first = states[projections[0].name]
    events = cases = 0
    with psycopg.connect(_worker.workers.database_url, autocommit=True) as conn, conn.transaction():
        for messages in _worker.workers.read_cases(low, high, until):
            if not messages:
                continue
            events += _apply(projections, states, ((messages, 0),))
            with _applied.get_lock():
                _applied.value += len(messages)
            if len(first) >= _worker.workers.flush_cases:
                cases += _flush(conn, projections, states, keep=messages[-1].case_id)
        cases += _flush(conn, projections, states, keep=None)
    return events, cases


def _flush(
    conn: psycopg.Connection[Any],
    projections: Sequence[Projection],
    states: dict[str, dict[UUID, CaseState]],
    keep: UUID | None,
) -> int:
    """Settle and COPY every case held but ``keep`` (the case being read, maybe not complete yet)."""
    complete = [case_id for case_id in states[projections[0].name] if case_id != keep]
    settle_all(projections, states, complete)
    for projection in projections:
        held = states[projection.name]
        write_states(
            conn, projection, {case_id: held.pop(case_id) for case_id in complete}, SHADOW, replace=False
        )
    return len(complete)


def _apply(
    projections: Sequence[Projection],
    states: dict[str, dict[UUID, CaseState]],
    batches: Iterable[tuple[list[CaseEventMessage], int]],
    touched: set[UUID] | None = None,
    *,
    progress: Progress | None = None,
    of: int = 0,
) -> int:
    """Apply the batches to every projection's case states. Every projection's state of a case has seen
    the same events (a rebuild applies each event to all of them; the caught-up cases' states are loaded
    from shadow rows written together), so ``CaseState.check`` gives the same verdict for each: it is
    taken once per event, from the first projection's state."""
    count = 0
    held = [(projection, states[projection.name]) for projection in projections]
    for messages, _ in batches:
        for message in messages:
            case_id = message.case_id
            case_states: list[CaseState] = []
            for _projection, cases in held:
                state = cases.get(case_id)
                if state is None:
                    state = cases[case_id] = CaseState()
                case_states.append(state)
            verdict = case_states[0].check(message)
            if verdict.outcome is Outcome.APPLIED:
                for (projection, _cases), state in zip(held, case_states, strict=True):
                    projection.apply(state.rows, message)
                    state.advance(message)
            elif verdict.outcome in (Outcome.GAP, Outcome.REJECTED):  # live processing would not apply it
                for projection in projections:
                    log.warning("event not applied", projection=projection.name, reason=verdict.reason)
            if touched is not None:
                touched.add(case_id)
        count += len(messages)
        if progress is not None:
            progress(count, of)
    return count


def _write(
    conn: psycopg.Connection[Any], projections: Sequence[Projection], states: dict[str, dict[UUID, CaseState]]
) -> None:
    for projection in projections:
        write_states(conn, projection, states[projection.name], SHADOW, replace=False)
