"""Party performance rows from case events, and the A-D grading of parties from them."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta

from demo.samples import sample_walk
from domain.case import Case
from domain.commands import Command, FileComplaint, PartyCommand, SubmitApplication
from domain.parties import PartyKind, PartyQualification
from domain.party_grading import UNGRADED, StepFact, grade_party, step_on_time
from infra.messages import case_event_message
from infra.party_grading import grading_rules
from projections.party_performance import PartyPerformanceProjection
from projections.tables import CaseState

START = datetime(2025, 9, 1, 1, 0, tzinfo=UTC)
DESIGNER = PartyQualification(
    "DI-1", "武夷电力设计院", PartyKind.DESIGN_INSTITUTE, "GRADE_B", date(2030, 1, 1), False
)
BUILDER = PartyQualification(
    "CT-1", "闽北电力安装公司", PartyKind.CONTRACTOR, "CLASS_4", date(2030, 1, 1), False
)
RULES = grading_rules()


def named(commands: list[Command]) -> list[Command]:
    """The sample commands with the design institute and contractor named on their requests."""
    return [
        dataclasses.replace(
            c, party_id=DESIGNER.party_id if c.command_type == "SubmitDesign" else BUILDER.party_id
        )
        if isinstance(c, PartyCommand)
        else c
        for c in commands
    ]


def run(commands: list[Command]) -> Case:
    case: Case | None = None
    for command in commands:
        ctx = command.context(command.occurred_at)
        if isinstance(command, SubmitApplication):
            case = command.create(ctx)
        elif isinstance(command, PartyCommand):
            assert case is not None
            party = DESIGNER if command.party_id == DESIGNER.party_id else BUILDER
            command.execute_for(case, ctx, party)
        else:
            assert case is not None
            command.execute(case, ctx)
    assert case is not None
    return case


def project(case: Case) -> CaseState:
    state = CaseState()
    for position, event in enumerate(case.collect_events(), start=1):
        state.apply(PartyPerformanceProjection(), case_event_message(event, case.case_number, position))
    return state


def test_each_named_request_becomes_a_step_of_its_party_with_its_result() -> None:
    case = run(named(sample_walk("HV_DUAL", "YK-PG-1", START)))

    steps = project(case).rows["party_steps"]

    assert [(s["party_id"], s["stage"], s["attempt"], s["outcome"]) for s in steps] == [
        ("DI-1", "DESIGN_REVIEW", 1, "PASSED"),
        ("CT-1", "MID_INSPECTION", 1, "PASSED"),
        ("CT-1", "COMPLETION_INSPECTION", 1, "PASSED"),
    ]
    assert all(s["awaited_at"] is not None and s["awaited_at"] < s["submitted_at"] for s in steps)


def test_a_failed_inspection_counts_as_rework_and_the_resubmission_is_a_second_attempt() -> None:
    case = run(named(sample_walk("LV_NON_RESIDENTIAL", "YK-PG-2", START)))

    steps = [s for s in project(case).rows["party_steps"] if s["party_id"] == "CT-1"]

    assert [(s["attempt"], s["outcome"], s["findings"]) for s in steps] == [
        (1, "FAILED", 2),
        (2, "PASSED", 0),
    ]


def test_a_complaint_filed_while_the_contractor_works_is_linked_to_it() -> None:
    commands = named(sample_walk("HV_SINGLE", "YK-PG-3", START))
    at = next(i for i, c in enumerate(commands) if c.command_type == "ReportCompletion") + 1
    report = commands[at - 1]
    complaint = FileComplaint(
        command_id="cmp-1",
        case_number=report.case_number,
        actor=report.actor,
        occurred_at=report.occurred_at + timedelta(minutes=5),
        channel="CALL_CENTRE_95598",
        complaint_id="TS-1",
        summary="施工现场未围挡",
    )
    case = run([*commands[:at], complaint, *commands[at:]])

    complaints = project(case).rows["party_complaints"]

    assert [(c["party_id"], c["complaint_id"]) for c in complaints] == [("CT-1", "TS-1")]


def test_requests_naming_no_party_leave_no_rows() -> None:
    case = run(sample_walk("HV_DUAL", "YK-PG-4", START))

    assert project(case).rows["party_steps"] == []


def _step(attempt: int = 1, days: float = 5, outcome: str | None = "PASSED", n: int = 1) -> StepFact:
    submitted = START + timedelta(days=days)
    return StepFact(f"YK-{n}", "COMPLETION_INSPECTION", attempt, START, submitted, outcome)


def test_a_party_on_time_and_passing_first_time_everywhere_is_graded_a() -> None:
    record = grade_party("CT-1", [_step(n=n) for n in range(4)], 0, RULES)

    assert (record.grade, record.on_time_rate, record.first_pass_rate) == ("A", 1.0, 1.0)


def test_late_steps_failed_first_attempts_and_complaints_lower_the_grade() -> None:
    steps = [_step(n=1), _step(days=90, n=2), _step(outcome="FAILED", n=3), _step(2, 10, n=3), _step(n=4)]

    record = grade_party("CT-1", steps, 1, RULES)

    assert record.reworks == 1 and record.complaints == 1
    assert record.on_time_rate == 0.8 and record.first_pass_rate == 0.75
    assert record.grade == "C"


def test_a_party_meeting_no_band_is_graded_d() -> None:
    steps = [_step(days=90, outcome="FAILED", n=n) for n in range(4)]

    assert grade_party("CT-1", steps, 3, RULES).grade == "D"


def test_a_party_with_too_few_steps_is_not_graded_yet() -> None:
    assert grade_party("CT-1", [_step()], 0, RULES).grade == UNGRADED


def test_a_resubmission_is_timed_against_the_rework_limit() -> None:
    assert step_on_time(_step(attempt=2, days=RULES.rework_limit_days + 1), RULES) is False
    assert step_on_time(_step(attempt=1, days=RULES.rework_limit_days + 1), RULES) is True


def test_the_shipped_grading_data_runs_from_a_to_c_and_is_versioned() -> None:
    assert [band.grade for band in RULES.bands] == ["A", "B", "C"]
    assert RULES.version == "PARTY_GRADING_2025"
