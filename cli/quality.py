"""The service-quality part of ``yekuo kpi``: complaint rate, satisfaction and service errors.

The figures are computed by ``projections.quality_reports``; this module only shows them, Chinese first.
"""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from cli.common import department_label, label
from domain.complaints import STATUS_LABELS, ComplaintCategory
from domain.vocabulary import Stage
from projections.quality_reports import ERROR_DIMENSIONS, RATE_DIMENSIONS, QualityReport, Rate

DIMENSION_LABELS = {
    "department": "部门 department",
    "stage": "环节 stage",
    "handler": "责任人 handler",
    "month": "月份 month",
}
ERROR_LABELS = {
    "RETURNED": "退回",
    "DESIGN_REVIEW_FAILED": "设计审查未通过",
    "MID_INSPECTION_FAILED": "中间检查未通过",
    "COMPLETION_INSPECTION_FAILED": "竣工检验未通过",
    "PLAN_REVIEW_REJECTED": "会签不同意",
    "PLAN_CONFIRMATION_REFUSED": "客户不确认供电方案",
}


def _share(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def _number(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _group(dimension: str, group: str, names: dict[str, str]) -> str:
    if dimension == "department":
        return department_label(group) if group else "(未指明)"
    if dimension == "stage":
        return label(group, Stage) if group else "(未指明环节)"
    if dimension == "handler":
        return f"{names.get(group, group)} ({group})" if group else "(未指明责任人)"
    return group


def _order(dimension: str, group: str) -> tuple[int, str]:
    """Stages in process order, then the others by code; "none given" last."""
    if not group:
        return (len(Stage) + 1, "")
    if dimension == "stage" and group in Stage.__members__:
        return (Stage(group).position, group)
    return (len(Stage), group)


def _rate_table(
    title: str, dimension: str, groups: dict[str, Rate], names: dict[str, str], per: str
) -> Table:
    table = Table(title=title)
    for column in ("", "件数 count", "办理案件 cases", per):
        table.add_column(column)
    for group, rate in sorted(groups.items(), key=lambda item: _order(dimension, item[0])):
        value = rate.per_100 if per.startswith("投诉率") else rate.per_case
        table.add_row(_group(dimension, group, names), str(rate.events), str(rate.cases), _number(value))
    return table


def print_quality(console: Console, report: QualityReport) -> None:
    """The quality KPIs after the time KPIs (the seeds: time alone does not judge the service)."""
    complaints = report.complaints
    console.print(
        f"投诉率 complaint rate: {complaints.events} 件投诉 / {complaints.cases} 件办理案件 = "
        f"{_number(complaints.per_100)} 件/百件 per 100 cases; 重新处理 reopened {report.reopened}; "
        f"按时处理 resolved on time {report.complaint_clocks_on_time} of {report.complaint_clocks}"
    )
    by_category = ", ".join(
        f"{ComplaintCategory(c).label} {n}" for c, n in sorted(report.complaints_by_category.items())
    )
    by_status = ", ".join(
        f"{STATUS_LABELS.get(s, s)} {n}" for s, n in sorted(report.complaints_by_status.items())
    )
    console.print(f"投诉分类 by category: {by_category or '—'}; 状态 by status: {by_status or '—'}")
    for dimension in RATE_DIMENSIONS:
        console.print(
            _rate_table(
                f"投诉率 complaint rate by {DIMENSION_LABELS[dimension]}",
                dimension,
                report.complaint_rate_by[dimension],
                report.handler_names,
                "投诉率 per 100",
            )
        )
    satisfaction = report.satisfaction
    table = Table(title="回访满意度 follow-up satisfaction (1-5)")
    for column in ("", "回访 follow-ups", "平均分 average", "1", "2", "3", "4", "5", "不满意率 share 1-2"):
        table.add_column(column)
    for name, value in (("合计 all", satisfaction), *report.satisfaction_by_month.items()):
        table.add_row(
            name,
            str(value.count),
            _number(value.average),
            *(str(value.distribution[score]) for score in (1, 2, 3, 4, 5)),
            _share(value.low_share),
        )
    console.print(table)
    errors = report.errors
    kinds = ", ".join(f"{ERROR_LABELS.get(k, k)} {n}" for k, n in sorted(report.errors_by_kind.items()))
    console.print(
        f"服务差错率 service error rate: {errors.events} 次差错 / {errors.cases} 件办理案件 = "
        f"{_number(errors.per_case)} 次/件 per case ({kinds or '无差错'})"
    )
    for dimension in ERROR_DIMENSIONS:
        console.print(
            _rate_table(
                f"服务差错率 service errors by {DIMENSION_LABELS[dimension]}",
                dimension,
                report.error_rate_by[dimension],
                report.handler_names,
                "差错/件 per case",
            )
        )
