"""Service quality KPIs (服务质量指标) for ``yekuo kpi`` and the API: complaint rate, satisfaction, errors.

The seeds (000 paper §4.5) warn against judging the process by time alone: service quality is measured
by 用户投诉率 and 服务差错率, customer satisfaction by the follow-up (回访). Definitions, for a period
(days in Asia/Shanghai, both ends included; no period: everything):
- **cases handled**: distinct cases with a work item (``work_items``: a stage or review) received in the
  period; for a department, stage, handler or month, the cases where it held such an item.
- **complaint rate** (投诉率) = complaints lodged in the period per 100 cases handled, overall and by the
  accountable department, the stage the complaint concerns, the handler it concerns and the month.
- **satisfaction** (满意度): follow-ups recorded in the period — average score, distribution 1-5, share of
  scores 1-2 (不满意率).
- **service error rate** (服务差错率) = service errors (returns, failed design reviews and inspections,
  rejected plan reviews, customers' objections to a replied plan) in the period per case handled.
``tally_quality`` is the arithmetic (pure, over rows); ``quality_report`` selects the rows.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from uuid import UUID

import psycopg

from domain.calendar import SHANGHAI

RATE_DIMENSIONS = ("department", "stage", "handler", "month")
ERROR_DIMENSIONS = ("department", "stage", "month")
SCORES = (1, 2, 3, 4, 5)


def _month(moment: datetime) -> str:
    return f"{moment.astimezone(SHANGHAI):%Y-%m}"


@dataclass
class Rate:
    """Events (complaints or errors) over cases handled, for one group."""

    events: int = 0
    case_ids: set[UUID] = field(default_factory=set)

    @property
    def cases(self) -> int:
        return len(self.case_ids)

    @property
    def per_case(self) -> float | None:
        return self.events / self.cases if self.cases else None

    @property
    def per_100(self) -> float | None:
        return None if self.per_case is None else 100 * self.per_case


@dataclass(frozen=True)
class Satisfaction:
    """Follow-up scores: how many of each, average and the share of 1-2 scores."""

    distribution: dict[int, int]

    @property
    def count(self) -> int:
        return sum(self.distribution.values())

    @property
    def average(self) -> float | None:
        return sum(s * n for s, n in self.distribution.items()) / self.count if self.count else None

    @property
    def low_share(self) -> float | None:
        return (self.distribution[1] + self.distribution[2]) / self.count if self.count else None


def satisfaction_of(scores: Iterable[int]) -> Satisfaction:
    counted = Counter(scores)
    return Satisfaction({score: counted.get(score, 0) for score in SCORES})


@dataclass
class QualityReport:
    complaints: Rate
    """all complaints lodged in the period over every case handled in it"""
    complaint_rate_by: dict[str, dict[str, Rate]]
    """dimension (``RATE_DIMENSIONS``) → group (a code, handler id or YYYY-MM; "" for none) → rate"""
    complaints_by_category: dict[str, int]
    complaints_by_status: dict[str, int]
    reopened: int
    """complaints whose resolution the customer refused at least once"""
    complaint_clocks: int
    complaint_clocks_on_time: int
    """complaint clocks stopped (resolutions given) in the period, and those within the limit"""
    satisfaction: Satisfaction
    satisfaction_by_month: dict[str, Satisfaction]
    errors: Rate
    error_rate_by: dict[str, dict[str, Rate]]
    errors_by_kind: dict[str, int]
    handler_names: dict[str, str]


def tally_quality(
    work: Iterable[Sequence[Any]],
    complaints: Iterable[Sequence[Any]],
    follow_ups: Iterable[Sequence[Any]],
    errors: Iterable[Sequence[Any]],
    complaint_clocks: Iterable[Sequence[Any]] = (),
) -> QualityReport:
    """The quality KPIs from rows of
    work (case_id, stage, department, handler_id, handler_name, received_at),
    complaints (case_id, category, status, concerns_stage, concerns_handler_id, concerns_handler_name,
    department, lodged_at, reopened), follow-ups (score, recorded_at),
    errors (case_id, kind, stage, department, occurred_at) and complaint clocks (on_time,)."""
    overall, overall_errors = Rate(), Rate()
    by: dict[str, dict[str, Rate]] = {d: defaultdict(Rate) for d in RATE_DIMENSIONS}
    errors_by: dict[str, dict[str, Rate]] = {d: defaultdict(Rate) for d in ERROR_DIMENSIONS}
    names: dict[str, str] = {}
    for case_id, stage, department, handler_id, handler_name, received_at in work:
        month = _month(received_at)
        groups = {"department": department, "stage": stage, "handler": handler_id, "month": month}
        overall.case_ids.add(case_id)
        overall_errors.case_ids.add(case_id)
        for dimension, group in groups.items():
            if group is not None:
                by[dimension][group].case_ids.add(case_id)
                if dimension in errors_by:
                    errors_by[dimension][group].case_ids.add(case_id)
        if handler_id is not None:
            names[handler_id] = handler_name or handler_id
    categories: Counter[str] = Counter()
    statuses: Counter[str] = Counter()
    reopened = 0
    for row in complaints:
        _, category, status, stage, handler_id, handler_name, department, lodged_at, times_reopened = row
        overall.events += 1
        categories[category] += 1
        statuses[status] += 1
        reopened += times_reopened > 0
        groups = {"department": department, "stage": stage, "handler": handler_id, "month": _month(lodged_at)}
        for dimension, group in groups.items():
            by[dimension][group or ""].events += 1
        if handler_id is not None:
            names.setdefault(handler_id, handler_name or handler_id)
    kinds: Counter[str] = Counter()
    for _, kind, stage, department, occurred_at in errors:
        overall_errors.events += 1
        kinds[kind] += 1
        groups = {"department": department, "stage": stage, "month": _month(occurred_at)}
        for dimension, group in groups.items():
            errors_by[dimension][group].events += 1
    scores_by_month: dict[str, list[int]] = defaultdict(list)
    scores = []
    for score, recorded_at in follow_ups:
        scores.append(score)
        scores_by_month[_month(recorded_at)].append(score)
    clocks = [bool(row[0]) for row in complaint_clocks]
    return QualityReport(
        complaints=overall,
        complaint_rate_by={d: dict(groups) for d, groups in by.items()},
        complaints_by_category=dict(categories),
        complaints_by_status=dict(statuses),
        reopened=reopened,
        complaint_clocks=len(clocks),
        complaint_clocks_on_time=sum(clocks),
        satisfaction=satisfaction_of(scores),
        satisfaction_by_month={m: satisfaction_of(s) for m, s in sorted(scores_by_month.items())},
        errors=overall_errors,
        error_rate_by={d: dict(groups) for d, groups in errors_by.items()},
        errors_by_kind=dict(kinds),
        handler_names=names,
    )


_WORK = """
SELECT case_id, stage, department, handler_id, handler_name, received_at FROM work_items
WHERE (%(from)s::date IS NULL OR (received_at AT TIME ZONE 'Asia/Shanghai')::date >= %(from)s)
  AND (%(to)s::date IS NULL OR (received_at AT TIME ZONE 'Asia/Shanghai')::date <= %(to)s)
"""
_COMPLAINTS = """
SELECT case_id, category, status, concerns_stage, concerns_handler_id, concerns_handler_name, department,
       lodged_at, reopened
FROM complaints
WHERE (%(from)s::date IS NULL OR (lodged_at AT TIME ZONE 'Asia/Shanghai')::date >= %(from)s)
  AND (%(to)s::date IS NULL OR (lodged_at AT TIME ZONE 'Asia/Shanghai')::date <= %(to)s)
"""
_FOLLOW_UPS = """
SELECT score, recorded_at FROM follow_ups
WHERE (%(from)s::date IS NULL OR (recorded_at AT TIME ZONE 'Asia/Shanghai')::date >= %(from)s)
  AND (%(to)s::date IS NULL OR (recorded_at AT TIME ZONE 'Asia/Shanghai')::date <= %(to)s)
"""
_ERRORS = """
SELECT case_id, kind, stage, department, occurred_at FROM service_errors
WHERE (%(from)s::date IS NULL OR (occurred_at AT TIME ZONE 'Asia/Shanghai')::date >= %(from)s)
  AND (%(to)s::date IS NULL OR (occurred_at AT TIME ZONE 'Asia/Shanghai')::date <= %(to)s)
"""
_COMPLAINT_CLOCKS = """
SELECT on_time FROM sla_clocks
WHERE kind = 'COMPLAINT' AND stopped_at IS NOT NULL AND on_time IS NOT NULL
  AND (%(from)s::date IS NULL OR (stopped_at AT TIME ZONE 'Asia/Shanghai')::date >= %(from)s)
  AND (%(to)s::date IS NULL OR (stopped_at AT TIME ZONE 'Asia/Shanghai')::date <= %(to)s)
"""


def quality_report(
    conn: psycopg.Connection[Any], first: date | None = None, last: date | None = None
) -> QualityReport:
    """Quality KPIs of the period from ``first`` to ``last`` (both included)."""
    period = {"from": first, "to": last}
    return tally_quality(
        conn.execute(_WORK, period).fetchall(),
        conn.execute(_COMPLAINTS, period).fetchall(),
        conn.execute(_FOLLOW_UPS, period).fetchall(),
        conn.execute(_ERRORS, period).fetchall(),
        conn.execute(_COMPLAINT_CLOCKS, period).fetchall(),
    )


def _rate_json(rate: Rate) -> dict[str, Any]:
    return {"events": rate.events, "cases": rate.cases, "per_100": rate.per_100, "per_case": rate.per_case}


def _satisfaction_json(value: Satisfaction) -> dict[str, Any]:
    return {
        "count": value.count,
        "average": value.average,
        "distribution": {str(score): n for score, n in value.distribution.items()},
        "low_share": value.low_share,
    }


def quality_json(report: QualityReport) -> dict[str, Any]:
    """The report as plain JSON-ready data (codes, not labels), for the API."""
    return {
        "complaints": _rate_json(report.complaints),
        "complaint_rate_by": {
            d: {g: _rate_json(r) for g, r in groups.items()} for d, groups in report.complaint_rate_by.items()
        },
        "complaints_by_category": report.complaints_by_category,
        "complaints_by_status": report.complaints_by_status,
        "reopened": report.reopened,
        "complaint_clocks": report.complaint_clocks,
        "complaint_clocks_on_time": report.complaint_clocks_on_time,
        "satisfaction": _satisfaction_json(report.satisfaction),
        "satisfaction_by_month": {m: _satisfaction_json(s) for m, s in report.satisfaction_by_month.items()},
        "service_errors": _rate_json(report.errors),
        "service_error_rate_by": {
            d: {g: _rate_json(r) for g, r in groups.items()} for d, groups in report.error_rate_by.items()
        },
        "service_errors_by_kind": report.errors_by_kind,
        "handler_names": report.handler_names,
    }
