"""Audit routes (审计): a case's history with payloads, its state as of a version or a time (replayed from
the event store), hash-chain verification, the responsibility report and the what-if replay."""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from datetime import date, datetime
from typing import Any
from uuid import UUID

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.encoders import jsonable_encoder

from api.context import Services, allow, services
from api.encoding import json_object
from api.reads import OVERSEERS, ReasonQuery, unmasked_read
from api.security import Principal
from app.event_log import CaseEventLog
from domain.case import Case
from domain.commands import case_id_for
from domain.privacy import mask_personal_data
from domain.sla import RELEVANT_EVENTS
from domain.sla_rules import UnknownRuleSetError
from infra.messages import CaseEventMessage
from infra.sla_config import SlaConfig, sla_config
from projections.sla_reports import compare, responsibility_report

_HIDDEN = frozenset({"originator_id", "originator_version", "timestamp", "originator_topic"})


def _event_json(event: Case.Event, *, unmasked: bool) -> dict[str, Any]:
    fields = {k: v for k, v in vars(event).items() if k not in _HIDDEN}
    payload = fields if unmasked else mask_personal_data(fields)
    return json_object(
        {
            "version": event.originator_version,
            "type": type(event).__name__,
            "recorded_at": event.timestamp,
            **payload,
        }
    )


def _state_json(case: Case, *, unmasked: bool) -> dict[str, Any]:
    fields = {k: v for k, v in vars(case).items() if not k.startswith("_")}
    fields = fields if unmasked else mask_personal_data(fields)
    return json_object(
        {"case_id": case.id, "version": case.version, "modified_at": case.modified_on, **fields},
        custom_encoder={set: sorted, frozenset: sorted},
    )


def _events(svc: Services, case_number: str, lte: int | None = None) -> list[Case.Event]:
    events = list(svc.app.events.get(case_id_for(case_number), lte=lte))
    if not events:
        raise HTTPException(404, f"no case {case_number}")
    return [e for e in events if isinstance(e, Case.Event)]


def audit_router() -> APIRouter:
    router = APIRouter(tags=["audit"])

    @router.get("/cases/{case_number}/history")
    def history(
        case_number: str,
        reason: str | None = ReasonQuery,
        principal: Principal = Depends(allow(*OVERSEERS)),
        svc: Services = Depends(services),
    ) -> list[dict[str, Any]]:
        """Every event of the case with its payload, actor, channel, reason and hash, oldest first."""
        events = _events(svc, case_number)
        unmasked = unmasked_read(svc, principal, case_number, "history", reason)
        return [_event_json(event, unmasked=unmasked) for event in events]

    @router.get("/cases/{case_number}/state")
    def state(
        case_number: str,
        version: int | None = Query(None, ge=1, description="State after this case version."),
        at: datetime | None = Query(None, description="State as recorded at this moment (with time zone)."),
        reason: str | None = ReasonQuery,
        principal: Principal = Depends(allow(*OVERSEERS)),
        svc: Services = Depends(services),
    ) -> dict[str, Any]:
        """The case as it stood after a version, or at a past moment: its events replayed from the store."""
        if at is not None and at.tzinfo is None:
            raise HTTPException(422, "`at` needs a time zone (e.g. 2025-09-26T15:00:00+08:00)")
        events = _events(svc, case_number, lte=version)
        if at is not None:
            events = [e for e in events if e.timestamp <= at]
        if not events:
            raise HTTPException(404, f"case {case_number} did not exist then")
        case: Case | None = None
        for event in events:
            case = event.mutate(case)
        if case is None:
            raise HTTPException(404, f"case {case_number} did not exist then")
        unmasked = unmasked_read(svc, principal, case_number, "state", reason)
        return _state_json(case, unmasked=unmasked)

    @router.get("/cases/{case_number}/verify")
    def verify(
        case_number: str, _: Principal = Depends(allow(*OVERSEERS)), svc: Services = Depends(services)
    ) -> dict[str, Any]:
        """Recompute the hash chain from the stored records: was any event altered, removed or reordered?"""
        _events(svc, case_number, lte=1)
        verdict = svc.app.verify(case_number)
        return {"intact": verdict.intact, **jsonable_encoder(dataclasses.asdict(verdict))}

    @router.get("/cases/{case_number}/responsibility")
    def responsibility(
        case_number: str,
        now: datetime | None = Query(None, description="Report as of (default: now)."),
        _: Principal = Depends(allow(*OVERSEERS)),
        svc: Services = Depends(services),
    ) -> dict[str, Any]:
        """责任分析 time in hand per department and handler; who held each clock when it crossed a level."""
        history = CaseEventLog(svc.app).history(case_id_for(case_number))
        if not history:
            raise HTTPException(404, f"no case {case_number}")
        report = responsibility_report(_config(svc), history, now or svc.clock())
        return json_object(
            {
                "rule_set": report.rule_set,
                "clocks": [
                    {
                        "clock": line.clock,
                        "reading": dataclasses.asdict(line.reading),
                        "verdict": line.verdict,
                        "recorded": [{"level": level, "at": at} for level, at in line.recorded],
                    }
                    for line in report.clocks
                ],
                "in_hand": [
                    {"department": department, "handler": handler, "seconds": seconds}
                    for (department, handler), seconds in sorted(report.in_hand.items())
                ],
                "customer_seconds": report.customer_seconds,
            }
        )

    @router.get("/whatif")
    def whatif(
        rules: str = Query(..., max_length=64, description="The rule set to replay under, e.g. REG_2009."),
        from_: date | None = Query(None, alias="from", description="Clocks started on or after."),
        to: date | None = Query(None, description="Clocks started on or before."),
        now: datetime | None = None,
        _: Principal = Depends(allow(*OVERSEERS)),
        svc: Services = Depends(services),
    ) -> dict[str, Any]:
        """假设分析 every history replayed under another rule set: verdicts that change (`yekuo whatif`)."""
        moment = now or svc.clock()
        config = _config(svc)
        try:
            config.rules.in_force(rules, moment.date())
        except UnknownRuleSetError as error:
            raise HTTPException(422, f"rule set {rules!r}: {error}") from None
        histories: dict[UUID, list[CaseEventMessage]] = defaultdict(list)
        for messages, _position in CaseEventLog(svc.app).read_all(types=RELEVANT_EVENTS):
            for message in messages:
                histories[message.case_id].append(message)
        report = compare(config, rules, histories, moment, from_, to)
        return json_object(
            {
                "active": config.rule_set,
                "other": rules,
                "clocks": report.clocks,
                "changed": [dataclasses.asdict(c) for c in report.changed],
                "limit_only_in_one": dict(report.limit_only_in_one),
            }
        )

    return router


def _config(svc: Services) -> SlaConfig:
    return sla_config(svc.settings)
