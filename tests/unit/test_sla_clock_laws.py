"""Property tests: the SLA engine obeys the clock laws and agrees with an independent reference of
BRIEF §2.4's counting rule (``tests/sla_reference.py``) on random, legal case histories."""

from __future__ import annotations

from datetime import datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.case import PENDING, Case
from domain.sla import SlaTracker
from tests.sla_reference import (
    CALENDAR,
    DEPARTMENTS,
    GAPS,
    RANDOM_ACTIONS,
    RULE_SETS,
    STARTS,
    US,
    History,
    agreement,
    build,
    disagreements,
    ref_elapsed,
    track,
)
from tests.unit.case_builders import ROUTE_KINDS

plans = st.lists(
    st.tuples(
        st.integers(0, 99),
        st.integers(0, len(RANDOM_ACTIONS) - 1),
        st.sampled_from(DEPARTMENTS),
        st.integers(0, len(GAPS) - 1),
    ),
    max_size=45,
)
histories = st.sampled_from(ROUTE_KINDS).flatmap(
    lambda kind: st.builds(build, st.just(kind[0]), st.just(kind[1]), st.sampled_from(STARTS), plans)
)
rule_sets = st.sampled_from(RULE_SETS)


# ---- the laws ----------------------------------------------------------------------------------------

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(histories, rule_sets)
def test_the_engine_agrees_with_the_reference_on_deadline_elapsed_crossings_and_verdict(
    history: History, rule_set: str
) -> None:
    for clock, reading, expected in agreement(history, rule_set):
        assert disagreements(reading, expected) == [], (clock, reading, expected)


@SETTINGS
@given(histories, rule_sets)
def test_the_deadline_moves_by_exactly_the_excluded_working_time_and_levels_sit_where_elapsed_equals_their_share(
    history: History, rule_set: str
) -> None:
    for clock, reading, _ in agreement(history, rule_set):
        start = datetime.fromisoformat(clock["started_at"])
        windows = [
            (datetime.fromisoformat(a), datetime.fromisoformat(b) if b else None)
            for a, b, *_ in clock["excluded"]
        ]
        if reading.deadline is not None:
            plain = CALENDAR.deadline(start, clock["limit_days"])
            moved = CALENDAR.position(reading.deadline) - CALENDAR.position(plain)
            excluded = ref_elapsed(start, [], reading.deadline) - ref_elapsed(
                start, windows, reading.deadline
            )
            assert moved == excluded // US
        for crossing in reading.crossings:
            if crossing.at is None:
                continue
            target = timedelta(seconds=round(reading.limit_seconds * crossing.share))
            assert ref_elapsed(start, windows, crossing.at) == target
            assert ref_elapsed(start, windows, crossing.at - US) < target


@SETTINGS
@given(histories, rule_sets)
def test_no_review_clock_runs_unless_its_review_is_pending_and_no_clock_runs_twice(
    history: History, rule_set: str
) -> None:
    def check(tracker: SlaTracker, case: Case) -> None:
        running = tracker.running()
        for clock in running:
            if clock["kind"] == "REVIEW":
                assert case.plan_reviews.get(clock["department"]) == PENDING, clock
        keys = [(c["kind"], c["stage"], c["department"]) for c in running]
        assert len(keys) == len(set(keys))

    track(history, rule_set, check)


@SETTINGS
@given(histories, rule_sets)
def test_a_stopped_clock_is_on_time_exactly_when_it_has_no_breach_crossing(
    history: History, rule_set: str
) -> None:
    for clock, reading, _ in agreement(history, rule_set):
        if clock["stopped_at"] is None:
            assert reading.on_time is None
        else:
            assert reading.on_time == (reading.crossings[-1].at is None)
