"""The managers' dashboard (管理驾驶舱) over HTTP: its pages and the JSON they poll every two seconds.

The pages (``dashboard/assets``) carry no data and need no token; every JSON route takes the same bearer
token as the rest of the API, with the same scoping: managers and auditors see every department, staff
their own (another department: 403; a case their department never held: 404). The JSON reuses the read
queries of ``projections.queries`` and the reports of ``projections.sla_reports``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from api.context import Services, allow, services
from api.encoding import json_object, json_rows
from api.reads import OVERSEERS, READERS, scoped_department, tally_json
from api.security import Principal, Role
from app.parties import PartyRegistry
from dashboard import ASSETS, ECHARTS, PAGES
from domain.parties import PartyKind
from domain.vocabulary import LABELS
from infra.party_grading import grading_rules
from projections import queries
from projections.party_performance import STEPS, read_party_records
from projections.sla_reports import kpi_report, kpi_trend
from projections.store import table_exists

LEVEL_LABELS = {"NOTICE": "时限过半", "WARNING": "时限预警", "BREACH": "已超期"}
KIND_LABELS = {"STAGE": "环节", "REVIEW": "会签", "CASE": "全流程"}
ASSET_TYPES = {"dashboard.js": "text/javascript", "dashboard.css": "text/css"}


def labels() -> dict[str, dict[str, str]]:
    """Chinese labels of the codes the JSON carries, by enum name (``Stage``, ``Department``, …)."""
    found: dict[str, dict[str, str]] = {"Level": LEVEL_LABELS, "Kind": KIND_LABELS}
    for member, label in LABELS.items():
        found.setdefault(type(member).__name__, {})[member.value] = label
    return found


def overview(svc: Services, first: Any = None, last: Any = None) -> dict[str, Any]:
    """Everything the overview page shows, as of the API's clock."""
    now = svc.clock()
    with svc.connection() as conn:
        report = kpi_report(conn, first, last)
        trend = kpi_trend(conn, first, last)
        answer = {
            "now": now,
            "open_by_stage": queries.open_cases_by_stage(conn),
            "kpi": {
                dimension: {g: tally_json(t) for g, t in groups.items()}
                for dimension, groups in report.by.items()
            },
            "energised": report.energised,
            "energised_on_time": report.energised_on_time,
            "trend": {
                dimension: {
                    month: {g: tally_json(t) for g, t in groups.items()} for month, groups in months.items()
                }
                for dimension, months in trend.items()
            },
            "crossings": queries.sla_crossing_counts(conn),
            "ageing": queries.department_workload(conn),
            "bottlenecks": queries.stage_bottlenecks(conn, now),
        }
    return json_object(answer)


def parties(svc: Services) -> dict[str, Any]:
    """Every graded party (``party_performance`` read model, thresholds from ``infra/data``) with its
    registered name and kind; no rows while the read model is not built yet."""
    rules = grading_rules()
    with svc.connection() as conn:
        records = read_party_records(conn, rules) if table_exists(conn, STEPS.name) else []
    registry = PartyRegistry(svc.app)
    rows = []
    for record in records:
        party = registry.get(record.party_id)
        rows.append(
            {
                "party_id": record.party_id,
                "name": party.name if party else None,
                "kind": party.kind_code if party else None,
                "kind_label": PartyKind(party.kind_code).label if party else None,
                "suspended": party.suspended if party else None,
                "cases": record.cases,
                "steps": record.steps,
                "timed_steps": record.timed_steps,
                "on_time_steps": record.on_time_steps,
                "on_time_rate": record.on_time_rate,
                "first_attempts": record.first_attempts,
                "first_passes": record.first_passes,
                "first_pass_rate": record.first_pass_rate,
                "reworks": record.reworks,
                "complaints": record.complaints,
                "grade": record.grade,
            }
        )
    return {"rules_version": rules.version, "parties": rows}


def dashboard_router() -> APIRouter:
    router = APIRouter()

    @router.get("/dashboard", include_in_schema=False)
    def home() -> RedirectResponse:
        return RedirectResponse("/dashboard/overview")

    @router.get("/dashboard/assets/{name}", include_in_schema=False)
    def asset(name: str) -> FileResponse:
        if name not in ASSET_TYPES:
            raise HTTPException(404, f"no asset {name}")
        return FileResponse(ASSETS / name, media_type=ASSET_TYPES[name])

    @router.get("/dashboard/vendor/echarts.min.js", include_in_schema=False)
    def echarts() -> Response:
        if not ECHARTS.exists():
            return Response(
                "/* ECharts is not installed: run `npm install` at the repository root (./dev.sh does) */",
                status_code=503,
                media_type="text/javascript",
            )
        return FileResponse(ECHARTS, media_type="text/javascript")

    @router.get("/dashboard/{page}", include_in_schema=False, response_class=HTMLResponse)
    def page(page: str) -> HTMLResponse:
        if page not in PAGES:
            raise HTTPException(404, f"no dashboard page {page}")
        shell = (ASSETS / "page.html").read_text(encoding="utf-8")
        return HTMLResponse(shell.replace("{{page}}", page).replace("{{title}}", PAGES[page]))

    @router.get("/dashboard/api/me", tags=["dashboard"])
    def me(principal: Principal = Depends(allow(*READERS))) -> dict[str, Any]:
        """The caller (role, department: what the pages may show) and the labels of every code."""
        return {
            "person_id": principal.person_id,
            "name": principal.name,
            "role": principal.role.value,
            "department": principal.department,
            "labels": labels(),
        }

    @router.get("/dashboard/api/overview", tags=["dashboard"])
    def overview_json(
        _: Principal = Depends(allow(*OVERSEERS)), svc: Services = Depends(services)
    ) -> dict[str, Any]:
        """总览: open cases by stage and category, KPIs by stage and category with the monthly trend,
        warnings and breaches by department and handler, ageing buckets, bottleneck stages."""
        return overview(svc)

    @router.get("/dashboard/api/parties", tags=["dashboard"])
    def parties_json(
        _: Principal = Depends(allow(*OVERSEERS)), svc: Services = Depends(services)
    ) -> dict[str, Any]:
        """参建单位: design institutes and contractors with cases, on-time and first-pass rates, reworks,
        complaints and their grade (供应商动态评级)."""
        return parties(svc)

    @router.get("/dashboard/api/departments/{department}", tags=["dashboard"])
    def department_json(
        department: str,
        principal: Principal = Depends(allow(*READERS)),
        svc: Services = Depends(services),
    ) -> dict[str, Any]:
        """部门: queue, unacknowledged notifications, time in hand, handlers, open clocks and crossings."""
        scoped_department(principal, department)
        now = svc.clock()
        with svc.connection() as conn:
            return json_object(
                {
                    "now": now,
                    "department": department,
                    "queue": queries.department_queue(conn, department, now),
                    "inbox": queries.department_inbox(conn, department, now),
                    "time_in_hand": queries.department_time_in_hand(conn, department),
                    "handlers": queries.handler_workload(conn, department),
                    "open_clocks": queries.sla_open_clocks(conn, department, 50),
                    "crossings": queries.sla_crossing_counts(conn, department),
                }
            )

    @router.get("/dashboard/api/cases/{case_number}/holders", tags=["dashboard"])
    def holders(
        case_number: str,
        principal: Principal = Depends(allow(*READERS)),
        svc: Services = Depends(services),
    ) -> list[dict[str, Any]]:
        """Who held each stage and review of the case (责任人), oldest first; staff: a case their
        department held (else 404)."""
        with svc.connection() as conn:
            items = queries.case_work_items(conn, case_number)
        if principal.role is Role.STAFF and not any(i["department"] == principal.department for i in items):
            raise HTTPException(404, f"no case {case_number} held by {principal.department}")
        return json_rows(items)

    return router
