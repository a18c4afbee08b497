"""Read routes: progress lookup (staff, customers), department queue and inbox, workload, SLA, KPIs."""

from __future__ import annotations

from datetime import date
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from api.access_log import record_access
from api.context import Services, allow, services
from api.encoding import json_object, json_rows
from api.security import Principal, Role
from app.application import CaseNotFoundError
from domain.case import Case
from domain.privacy import mask_id_number, mask_phone
from domain.vocabulary import CustomerStep, Department
from projections import queries
from projections.quality_reports import quality_json, quality_report
from projections.sla_reports import KpiReport, Tally, kpi_report

READERS = (Role.STAFF, Role.MANAGER, Role.AUDITOR)
OVERSEERS = (Role.MANAGER, Role.AUDITOR)

ReasonQuery = Query(
    None,
    max_length=500,
    description="Auditors only: why personal data is read unmasked; the read is recorded with it.",
)


def unmasked_read(
    svc: Services, principal: Principal, case_number: str, resource: str, reason: str | None
) -> bool:
    """Whether this read shows phone and ID numbers: an auditor's with a reason, recorded first."""
    if principal.role is not Role.AUDITOR or not (reason or "").strip():
        return False
    with svc.connection() as conn:
        record_access(conn, principal, case_number, resource, reason or "", svc.clock())
    return True


def _inspection_issues(svc: Services, case: Case) -> list[dict[str, Any]]:
    """Issues the customer must fix: the latest failed review/inspection of each kind not since passed."""
    if case.awaiting_step != CustomerStep.CUSTOMER_WORKS:
        return []
    latest: dict[str, Any] = {}
    for event in svc.app.events.get(case.id):
        if isinstance(event, Case.DesignReviewed | Case.MidInspectionRecorded | Case.CompletionInspected):
            latest[type(event).__name__] = event
    issues = []
    for kind, event in latest.items():
        if not event.passed:
            items = event.rectifications if isinstance(event, Case.CompletionInspected) else event.issues
            issues.append({"kind": kind, "at": event.occurred_at, "issues": list(items)})
    return issues


def progress_view(svc: Services, case: Case, *, unmasked: bool) -> dict[str, Any]:
    """Progress of one case: the read model's row, plus what only the case state knows."""
    with svc.connection() as conn:
        row = queries.case_progress(conn, case.case_number)
    answer: dict[str, Any] = (
        dict(row)
        if row
        else {
            "case_number": case.case_number,
            "customer_ref": case.customer_ref,
            "status": str(case.status_code),
            "current_stages": [
                {"stage": str(s.stage), "department": str(s.department)} for s in case.open_stages.values()
            ],
            "awaiting_customer": case.awaiting_step,
            "source": "event_store",
        }
    )
    answer["missing_documents"] = list(case.outstanding_documents)
    answer["inspection_issues"] = _inspection_issues(svc, case)
    answer["contact_phone"] = case.contact_phone if unmasked else mask_phone(case.contact_phone)
    answer["id_number"] = case.id_number if unmasked else mask_id_number(case.id_number)
    answer["case_version"] = case.version
    return json_object(answer)


def load_case(svc: Services, case_number: str) -> Case:
    try:
        return svc.app.get_case(case_number)
    except CaseNotFoundError:
        raise HTTPException(404, f"no case {case_number}") from None


def known_department(department: str) -> str:
    if department not in Department.__members__:
        raise HTTPException(404, f"no department {department}")
    return department


def scoped_department(principal: Principal, department: str) -> str:
    """Staff see their own department only; managers and auditors every one."""
    known_department(department)
    if principal.role is Role.STAFF and principal.department != department:
        raise HTTPException(403, f"staff of {principal.department} may not read {department}")
    return department


class CustomerLookup(BaseModel):
    case_number: str = Field(min_length=1, max_length=64)
    phone_last4: str = Field(pattern=r"^[0-9]{4}$", description="Last four digits of the contact phone.")


def tally_json(tally: Tally) -> dict[str, Any]:
    return {
        "clocks": tally.clocks,
        "on_time": tally.on_time,
        "on_time_rate": tally.on_time_rate,
        "average_seconds": tally.average_seconds,
        "longest_seconds": tally.longest_seconds,
    }


def kpi_json(report: KpiReport) -> dict[str, Any]:
    return {
        "by": {
            dimension: {group: tally_json(tally) for group, tally in groups.items()}
            for dimension, groups in report.by.items()
        },
        "energised": report.energised,
        "energised_on_time": report.energised_on_time,
        "cases_with_reviews": report.cases_with_reviews,
        "coordination_compliant": report.coordination_compliant,
        "breaches": jsonable_encoder(report.breaches),
    }


def read_router() -> APIRouter:
    router = APIRouter()

    @router.get("/cases/{case_number}/progress", tags=["progress"], response_class=JSONResponse)
    def progress(
        case_number: str,
        reason: str | None = ReasonQuery,
        principal: Principal = Depends(allow(*READERS, Role.CUSTOMER)),
        svc: Services = Depends(services),
    ) -> JSONResponse:
        """进度查询: stage, next step, expected date, missing documents (一次性告知), issues to fix."""
        case = load_case(svc, case_number)
        if principal.role is Role.CUSTOMER:
            if case.customer_ref != principal.person_id:
                raise HTTPException(404, f"no case {case_number}")
            return JSONResponse(progress_view(svc, case, unmasked=True))
        unmasked = unmasked_read(svc, principal, case_number, "progress", reason)
        return JSONResponse(progress_view(svc, case, unmasked=unmasked))

    @router.post(
        "/customer/progress",
        tags=["progress"],
        responses={
            404: {"description": "No case with this number and phone"},
            429: {"description": "Too many failures"},
        },
    )
    def customer_progress(
        lookup: CustomerLookup, request: Request, svc: Services = Depends(services)
    ) -> dict[str, Any]:
        """客户进度查询 without a token: case number plus the last four digits of the contact phone."""
        client = request.client.host if request.client else "unknown"
        wait = svc.failed_lookups.attempt(lookup.case_number, client)
        if wait is not None:
            raise HTTPException(429, "too many failed look-ups; try later", {"Retry-After": str(int(wait))})
        try:
            case = svc.app.get_case(lookup.case_number)
        except CaseNotFoundError:
            case = None
        if case is None or case.contact_phone.strip()[-4:] != lookup.phone_last4:
            raise HTTPException(404, "no case with this number and phone")
        svc.failed_lookups.succeeded(lookup.case_number, client)
        return progress_view(svc, case, unmasked=True)

    @router.get("/customers/me/cases", tags=["progress"])
    def my_cases(
        principal: Principal = Depends(allow(Role.CUSTOMER)), svc: Services = Depends(services)
    ) -> list[dict[str, Any]]:
        """A signed-in customer's cases (customer reference = the token's subject)."""
        with svc.connection() as conn:
            return json_rows(queries.cases_of_customer(conn, principal.person_id))

    @router.get("/departments/{department}/queue", tags=["departments"])
    def queue(
        department: str,
        principal: Principal = Depends(allow(*READERS)),
        svc: Services = Depends(services),
    ) -> list[dict[str, Any]]:
        """待办 open work items of a department with age and the deadline of its clock, in dispatch order:
        special care first, then the higher priority tier, the nearer deadline, the older item."""
        scoped_department(principal, department)
        with svc.connection() as conn:
            return json_rows(queries.department_queue(conn, department, svc.clock()))

    @router.get("/departments/{department}/inbox", tags=["inbox"])
    def inbox(
        department: str,
        principal: Principal = Depends(allow(*READERS)),
        svc: Services = Depends(services),
    ) -> list[dict[str, Any]]:
        """收件箱 unacknowledged notifications of a department, with age and due date."""
        scoped_department(principal, department)
        with svc.connection() as conn:
            return json_rows(queries.department_inbox(conn, department, svc.clock()))

    @router.get("/escalated-cases", tags=["departments"])
    def escalated_cases(
        department: str | None = None,
        limit: int = Query(200, ge=1, le=1000),
        _: Principal = Depends(allow(*OVERSEERS)),
        svc: Services = Depends(services),
    ) -> list[dict[str, Any]]:
        """督办案件 open cases under escalation, latest first; optionally those escalated to a department."""
        if department is not None:
            known_department(department)
        with svc.connection() as conn:
            return json_rows(queries.escalated_cases(conn, department, limit))

    @router.get("/workload", tags=["departments"])
    def workload(
        _: Principal = Depends(allow(*OVERSEERS)), svc: Services = Depends(services)
    ) -> list[dict[str, Any]]:
        """部门工作量 open items per department with ageing buckets."""
        with svc.connection() as conn:
            return json_rows(queries.department_workload(conn))

    @router.get("/sla/open-clocks", tags=["sla"])
    def open_clocks(
        department: str | None = None,
        limit: int = Query(200, ge=1, le=1000),
        principal: Principal = Depends(allow(*READERS)),
        svc: Services = Depends(services),
    ) -> list[dict[str, Any]]:
        """在途时限 running clocks, nearest deadline first (staff: their department's)."""
        if principal.role is Role.STAFF:
            department = scoped_department(principal, department or principal.department)
        elif department is not None:
            known_department(department)
        with svc.connection() as conn:
            return json_rows(queries.sla_open_clocks(conn, department, limit))

    @router.get("/sla/crossings", tags=["sla"])
    def crossings(
        level: str | None = Query(None, pattern="^(NOTICE|WARNING|BREACH)$"),
        department: str | None = None,
        from_: date | None = Query(None, alias="from"),
        to: date | None = None,
        limit: int = Query(200, ge=1, le=1000),
        principal: Principal = Depends(allow(*READERS)),
        svc: Services = Depends(services),
    ) -> list[dict[str, Any]]:
        """预警/超期 warnings and breaches recorded, newest first (staff: their department's)."""
        if principal.role is Role.STAFF:
            department = scoped_department(principal, department or principal.department)
        elif department is not None:
            known_department(department)
        with svc.connection() as conn:
            return json_rows(
                queries.sla_crossings(
                    conn, level=level, department=department, first=from_, last=to, limit=limit
                )
            )

    @router.get("/kpi", tags=["sla"])
    def kpi(
        from_: date | None = Query(None, alias="from", description="First day of clocks stopped."),
        to: date | None = Query(None, description="Last day of clocks stopped."),
        _: Principal = Depends(allow(*OVERSEERS)),
        svc: Services = Depends(services),
    ) -> dict[str, Any]:
        """指标 KPIs, the same report and filters as `yekuo kpi`: time KPIs and, under ``quality``,
        complaint rate, follow-up satisfaction and service error rate."""
        with svc.connection() as conn:
            return {
                **kpi_json(kpi_report(conn, from_, to)),
                "quality": quality_json(quality_report(conn, from_, to)),
            }

    return router
