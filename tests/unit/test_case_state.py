"""CaseState applies exactly a case's next version: repeats are skipped, gaps wait, forgeries are refused."""

from __future__ import annotations

from domain.case import Case
from infra.messages import CaseEventMessage, case_event_message
from infra.settings import Settings
from infra.sla_config import sla_config
from projections.progress import ProgressProjection
from projections.tables import CaseState, Outcome
from tests.unit.case_builders import walk

PROJECTION = ProgressProjection(sla_config(Settings()))


def messages_of(case: Case) -> list[CaseEventMessage]:
    return [
        case_event_message(event, case.case_number, position)
        for position, event in enumerate(case.collect_events(), start=1)
    ]


def applied_through(messages: list[CaseEventMessage], version: int) -> CaseState:
    state = CaseState()
    for message in messages[:version]:
        assert state.apply(PROJECTION, message).outcome is Outcome.APPLIED
    return state


def forged(message: CaseEventMessage, **changes: object) -> CaseEventMessage:
    return message.model_copy(update=changes)


def test_a_whole_history_in_order_is_applied_event_by_event() -> None:
    case, _ = walk("HV_SINGLE")
    messages = messages_of(case)

    state = applied_through(messages, len(messages))

    assert state.version == len(messages) and state.case_number == case.case_number
    assert state.last_hash == messages[-1].hash


def test_a_repeated_version_is_skipped_and_changes_nothing() -> None:
    case, _ = walk("RESIDENTIAL")
    messages = messages_of(case)
    state = applied_through(messages, 6)
    rows = repr(state.rows)

    verdict = state.apply(PROJECTION, messages[3])

    assert verdict.outcome is Outcome.REPEAT and not verdict
    assert state.version == 6 and repr(state.rows) == rows


def test_an_event_after_a_gap_is_not_applied_and_says_which_version_is_missing() -> None:
    case, _ = walk("RESIDENTIAL")
    messages = messages_of(case)
    state = applied_through(messages, 3)
    rows = repr(state.rows)

    verdict = state.apply(PROJECTION, messages[5])

    assert verdict.outcome is Outcome.GAP
    assert "is at version 3" in verdict.reason and "v6" in verdict.reason
    assert state.version == 3 and repr(state.rows) == rows


def test_an_absurd_version_is_a_gap_not_the_new_version_of_the_case() -> None:
    case, _ = walk("RESIDENTIAL")
    messages = messages_of(case)
    state = applied_through(messages, 4)

    verdict = state.apply(PROJECTION, forged(messages[4], case_version=10**9))

    assert verdict.outcome is Outcome.GAP and state.version == 4


def test_a_forged_cancellation_under_another_case_number_is_rejected() -> None:
    case, _ = walk("RESIDENTIAL")
    messages = messages_of(case)
    state = applied_through(messages, 4)

    cancellation = forged(
        messages[4], case_number="YK-FORGED", type="CaseCancelled", payload={"reason": "forged"}
    )
    verdict = state.apply(PROJECTION, cancellation)

    assert verdict.outcome is Outcome.REJECTED
    assert "'YK-FORGED' disagrees with the case's" in verdict.reason
    assert state.version == 4


def test_a_second_application_for_an_existing_case_is_rejected() -> None:
    case, _ = walk("RESIDENTIAL")
    messages = messages_of(case)
    state = applied_through(messages, 4)

    phantom = forged(messages[0], case_version=5, previous_hash=messages[3].hash)
    verdict = state.apply(PROJECTION, phantom)

    assert verdict.outcome is Outcome.REJECTED and "already has rows" in verdict.reason
    assert state.version == 4


def test_a_next_version_that_does_not_continue_the_hash_chain_is_rejected() -> None:
    case, _ = walk("RESIDENTIAL")
    messages = messages_of(case)
    state = applied_through(messages, 4)

    verdict = state.apply(PROJECTION, forged(messages[4], previous_hash="0" * 64))

    assert verdict.outcome is Outcome.REJECTED and "hash chain" in verdict.reason
    assert state.version == 4
