"""Quality KPI arithmetic (服务质量指标): complaint rate per 100 cases, satisfaction, service errors."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID, uuid4

import pytest

from domain.calendar import SHANGHAI
from domain.commands import DraftSupplyPlan, InspectCompletion
from domain.vocabulary import Stage
from projections.quality import QualityProjection
from projections.quality_reports import satisfaction_of, tally_quality
from tests.unit.case_builders import STAFF, SURVEYOR, before
from tests.unit.test_complaints import messages_of, project

A, B, C, D = (uuid4() for _ in range(4))
SEPT, OCT = datetime(2025, 9, 10, 10, tzinfo=SHANGHAI), datetime(2025, 10, 10, 10, tzinfo=SHANGHAI)


def work(case_id: UUID, stage: str, department: str, handler: str | None, at: datetime) -> tuple[object, ...]:
    return (case_id, stage, department, handler, f"name-{handler}" if handler else None, at)


WORK = [
    work(A, "SITE_SURVEY", "OPERATIONS", "op-1", SEPT),
    work(A, "CONNECTION", "METERING", "mt-1", SEPT),
    work(B, "SITE_SURVEY", "OPERATIONS", "op-1", SEPT),
    work(C, "SITE_SURVEY", "OPERATIONS", "op-2", OCT),
    work(D, "SUPPLY_PLAN", "MARKETING", None, OCT),
]
COMPLAINTS = [
    (A, "SERVICE_ATTITUDE", "CLOSED", "SITE_SURVEY", "op-1", "name-op-1", "OPERATIONS", SEPT, 0),
    (B, "HANDLING_DELAY", "OPEN", "SITE_SURVEY", "op-1", "name-op-1", "OPERATIONS", OCT, 1),
    (D, "OTHER", "RESOLVED", None, None, None, "CUSTOMER_SERVICE", OCT, 0),
]


def test_the_complaint_rate_is_per_100_cases_handled_overall_and_by_each_dimension() -> None:
    report = tally_quality(WORK, COMPLAINTS, [], [])

    assert (report.complaints.events, report.complaints.cases, report.complaints.per_100) == (3, 4, 75.0)
    operations = report.complaint_rate_by["department"]["OPERATIONS"]
    assert (operations.events, operations.cases, operations.per_100) == (2, 3, pytest.approx(66.667, 1e-3))
    assert report.complaint_rate_by["department"]["METERING"].per_100 == 0.0
    assert report.complaint_rate_by["department"]["CUSTOMER_SERVICE"].per_100 is None  # held no case
    assert report.complaint_rate_by["stage"]["SITE_SURVEY"].per_100 == pytest.approx(66.667, 1e-3)
    assert report.complaint_rate_by["stage"][""].events == 1  # no stage named
    op1 = report.complaint_rate_by["handler"]["op-1"]
    assert (op1.events, op1.cases, op1.per_100) == (2, 2, 100.0)
    assert report.complaint_rate_by["handler"]["op-2"].per_100 == 0.0
    months = report.complaint_rate_by["month"]
    assert (months["2025-09"].events, months["2025-09"].cases) == (1, 2)
    assert (months["2025-10"].events, months["2025-10"].cases, months["2025-10"].per_100) == (2, 2, 100.0)
    assert report.complaints_by_category == {"SERVICE_ATTITUDE": 1, "HANDLING_DELAY": 1, "OTHER": 1}
    assert report.complaints_by_status == {"CLOSED": 1, "OPEN": 1, "RESOLVED": 1}
    assert report.reopened == 1
    assert report.handler_names["op-1"] == "name-op-1"


def test_satisfaction_gives_the_average_the_distribution_and_the_share_of_one_and_two() -> None:
    scores = [(5, SEPT), (4, SEPT), (1, OCT), (2, OCT), (5, OCT)]

    report = tally_quality([], [], scores, [])

    assert report.satisfaction.distribution == {1: 1, 2: 1, 3: 0, 4: 1, 5: 2}
    assert report.satisfaction.average == pytest.approx(3.4)
    assert report.satisfaction.low_share == pytest.approx(0.4)
    assert report.satisfaction_by_month["2025-09"].average == 4.5
    assert report.satisfaction_by_month["2025-10"].low_share == pytest.approx(2 / 3)


def test_no_follow_ups_and_no_cases_give_no_figures_rather_than_zeros() -> None:
    report = tally_quality([], [], [], [])

    assert satisfaction_of([]).average is None and report.satisfaction.low_share is None
    assert report.complaints.per_100 is None and report.errors.per_case is None


def test_the_service_error_rate_is_errors_per_case_handled_by_kind_department_and_stage() -> None:
    errors = [
        (A, "RETURNED", "SITE_SURVEY", "MARKETING", SEPT),
        (A, "COMPLETION_INSPECTION_FAILED", "COMPLETION_INSPECTION", "OPERATIONS", SEPT),
        (C, "PLAN_CONFIRMATION_REFUSED", "SUPPLY_PLAN", "CUSTOMER", OCT),
    ]

    report = tally_quality(WORK, [], [], errors, [(True,), (False,)])

    assert (report.errors.events, report.errors.cases, report.errors.per_case) == (3, 4, 0.75)
    assert report.errors_by_kind == {
        "RETURNED": 1,
        "COMPLETION_INSPECTION_FAILED": 1,
        "PLAN_CONFIRMATION_REFUSED": 1,
    }
    assert report.error_rate_by["department"]["OPERATIONS"].per_case == pytest.approx(1 / 3)
    assert report.error_rate_by["month"]["2025-09"].per_case == 1.0
    assert (report.complaint_clocks, report.complaint_clocks_on_time) == (2, 1)


def test_a_failed_inspection_and_a_return_are_service_errors_of_the_case() -> None:
    case, clock = before(InspectCompletion, "LV_NON_RESIDENTIAL")
    case.inspect_completion(clock.ctx(SURVEYOR), passed=False, rectifications=["接地电阻超标"])
    plain, later = before(DraftSupplyPlan, "RESIDENTIAL")
    plain.return_to_stage(later.ctx(STAFF["MARKETING"], "勘查数据有误"), Stage.SITE_SURVEY)

    failed = project(QualityProjection(), messages_of(case)).rows["service_errors"]
    returned = project(QualityProjection(), messages_of(plain)).rows.get("service_errors", [])

    assert [(e["kind"], e["stage"]) for e in failed] == [
        ("COMPLETION_INSPECTION_FAILED", "COMPLETION_INSPECTION")
    ]
    assert [(e["kind"], e["stage"]) for e in returned] == [("RETURNED", "SITE_SURVEY")]
