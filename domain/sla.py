"""SLA clocks (时限计时) of one case, derived from its history (BRIEF §2.4).

``SlaTracker`` follows a case's events and keeps its clocks in a JSON-ready ``state`` dict (so a read
model can store it between events); ``read_clock`` evaluates one clock with the working-day calendar.

Which clocks, and what starts and stops them:
- ``SUPPLY_PLAN`` (stage clock): acceptance → plan replied to the customer; site survey and the internal
  reviews run inside it. A customer's objection starts a new one (the utility must answer again).
- ``DESIGN_REVIEW``, ``MID_INSPECTION``, ``COMPLETION_INSPECTION``: the customer's request (design
  submitted, inspection requested, completion reported) → the result. A failed result stops the clock
  (the utility answered); the customer's next request starts a new clock for the same stage.
- ``CONNECTION``: completion inspection passed and contract signed (flows without inspection: contract
  signed; 三零: acceptance with the contract) → energised.
- ``REVIEW`` (one per department of a parallel plan review): requested → that department's answer; a
  rejection by another department withdraws the others (the plan goes back to drafting).
- ``CASE`` (whole case, when the rule set has a limit): acceptance → energised, customer time excluded
  (waiting for the customer's documents, confirmation or works, and pauses).
- ``COMPLAINT`` (one per complaint, 投诉处理时限, when the rule set has complaint limits): lodged →
  resolved; the customer's refusal of the resolution starts a new clock for the same complaint. It is
  held by the complaint's accountable department and handler, is not paused by the case's customer
  pauses and is not stopped by a cancellation: a complaint is answered whatever became of the case.
Customer-caused pauses stop every running clock's count. Rejections inside a utility stage and returns
(退回) to an earlier step keep running clocks going: rework is utility time. Cancellation stops all.
A stage without a limit in the rule set has no clock. Limits come from the rule-set version in force
on the day the clock starts; each clock records that version and the calendar's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from domain.calendar import DAY_SECONDS, MICROS, WorkingCalendar
from domain.sla_rules import DEFAULT_LEVELS, RuleBook

State = dict[str, Any]

_COVERED = {"SUPPLY_PLAN": ("SITE_SURVEY", "SUPPLY_PLAN")}
_UTILITY_STAGES = (
    "SITE_SURVEY",
    "SUPPLY_PLAN",
    "DESIGN_REVIEW",
    "MID_INSPECTION",
    "COMPLETION_INSPECTION",
    "CONTRACT",
    "CONNECTION",
)
_CUSTOMER_ACTS = {
    "SupplyPlanConfirmed",
    "SupplyPlanObjected",
    "DesignSubmitted",
    "MidInspectionRequested",
    "CompletionReported",
}
_REQUESTED = {
    "DesignSubmitted": "DESIGN_REVIEW",
    "MidInspectionRequested": "MID_INSPECTION",
    "CompletionReported": "COMPLETION_INSPECTION",
}
_ANSWERED = {
    "DesignReviewed": "DESIGN_REVIEW",
    "MidInspectionRecorded": "MID_INSPECTION",
    "CompletionInspected": "COMPLETION_INSPECTION",
}


RELEVANT_EVENTS = frozenset(
    {
        "ApplicationSubmitted",
        "ApplicationAccepted",
        "StageOpened",
        "HandlerAssigned",
        "HandlerReassigned",
        "StageCompleted",
        "PlanReviewsRequested",
        "PlanReviewApproved",
        "PlanReviewRejected",
        "SupplyPlanReplied",
        "SupplyPlanObjected",
        "ContractSigned",
        "Energised",
        "CaseReturned",
        "CaseCancelled",
        "ClockPaused",
        "ClockResumed",
        "CustomerStepAwaited",
        "SupplementProvided",
        "SlaThresholdCrossed",
        "SlaDeadlineRevised",
        *_CUSTOMER_ACTS,
        *_REQUESTED,
        *_ANSWERED,
        "ComplaintFiled",
        "ComplaintLodged",
        "ComplaintAssigned",
        "ComplaintResolved",
        "ComplaintResolutionRejected",
    }
)
"""The events that start, stop, pause or re-attribute clocks; the others leave them as they are."""


@dataclass(frozen=True)
class Fact:
    """What the SLA needs of one case event."""

    type: str
    occurred_at: datetime
    department: str
    payload: Mapping[str, Any]


COMPLAINT = "COMPLAINT"
"""The kind (and stage) of a complaint's clock."""


def _key(clock: State) -> tuple[str, str, str | None, str | None]:
    return clock["kind"], clock["stage"], clock["department"], clock.get("complaint_id")


PAUSE, CUSTOMER = "PAUSE", "CUSTOMER"
"""Why a clock's time is excluded: a customer-caused pause (every clock), or the case waiting for the
customer (the whole-case clock only). Each exclusion window is ``[from, until or None, reason]``."""
_VOIDS_REVIEWS = {"SITE_SURVEY", "SUPPLY_PLAN"}
"""Return targets that send the plan back before its review: pending reviews are void (the aggregate
clears them)."""


def _reason(window: list[Any]) -> str | None:
    return window[2] if len(window) > 2 else None  # windows stored before reasons were kept have none


def _open_exclusion(clock: State, at: str, reason: str) -> None:
    if not any(w[1] is None and _reason(w) in (reason, None) for w in clock["excluded"]):
        clock["excluded"].append([at, None, reason])


class SlaTracker:
    """Keeps one case's clocks in ``state`` as its events arrive."""

    def __init__(self, rules: RuleBook, rule_set: str, calendar: WorkingCalendar, state: State | None = None):
        self.rules = rules
        self.rule_set = rule_set
        self.calendar = calendar
        self.state: State = state if state is not None else {"clocks": [], "holders": {}, "flags": {}}

    # ---- events -------------------------------------------------------------------------------------

    def apply(self, case_id: str, fact: Fact) -> bool:
        """Follow one event; False when the event means nothing to the clocks (nothing changed)."""
        kind = fact.type
        if kind not in RELEVANT_EVENTS:
            return False
        s, p, at = self.state, fact.payload, fact.occurred_at.isoformat()
        if kind in _CUSTOMER_ACTS or (kind == "SupplementProvided" and not p.get("still_missing")):
            self._end_exclusions(at, CUSTOMER)  # the customer acted: its time ends, even during a pause
        if kind == "ApplicationSubmitted":
            s.update(
                case_id=case_id, category=p["category"], external=p["external_line_works"], route=p["route"]
            )
        elif kind == "ApplicationAccepted":
            self._start("STAGE", "SUPPLY_PLAN", at)
            self._start("CASE", "CASE", at)
            if p.get("contract_signed_at_acceptance"):
                s["flags"]["contract"] = True
                self._maybe_start_connection(at)
        elif kind == "StageOpened":
            s["holders"][p["stage"]] = [p["department"], None]
            self._rehold(at)
        elif kind in ("HandlerAssigned", "HandlerReassigned"):
            department = p.get("department") or s["holders"].get(p["stage"], [None])[0]
            s["holders"][p["stage"]] = [department, p["handler"]["name"]]
            self._rehold(at)
        elif kind == "StageCompleted":
            s["holders"].pop(p["stage"], None)
            self._rehold(at)
        elif kind == "PlanReviewsRequested":
            for department in p["departments"]:
                self._start("REVIEW", "SUPPLY_PLAN", at, department)
        elif kind in ("PlanReviewApproved", "PlanReviewRejected"):
            outcome = "APPROVED" if kind == "PlanReviewApproved" else "REJECTED"
            self._stop(at, outcome, kind="REVIEW", department=p["department"])
            if kind == "PlanReviewRejected":
                self._stop(at, "WITHDRAWN", kind="REVIEW")
        elif kind == "SupplyPlanReplied":
            self._stop(at, "ANSWERED", kind="STAGE", stage="SUPPLY_PLAN")
        elif kind == "SupplyPlanObjected":
            self._start("STAGE", "SUPPLY_PLAN", at)
        elif kind in _REQUESTED:
            self._start("STAGE", _REQUESTED[kind], at)
        elif kind in _ANSWERED:
            passed = bool(p["passed"])
            self._stop(at, "PASSED" if passed else "FAILED", kind="STAGE", stage=_ANSWERED[kind])
            if kind == "CompletionInspected" and passed:
                s["flags"]["inspection"] = True
                self._maybe_start_connection(at)
        elif kind == "ContractSigned":
            s["flags"]["contract"] = True
            self._maybe_start_connection(at)
        elif kind == "Energised":
            self._stop(at, "ENERGISED", kind="STAGE", stage="CONNECTION")
            self._stop(at, "ENERGISED", kind="CASE")
        elif kind == "CaseReturned":  # the withdrawn stages have no holder until they open again
            withdrawn = p.get("withdrawn_stages", ())
            for stage in withdrawn:
                s["holders"].pop(stage, None)
            if "SUPPLY_PLAN" in withdrawn or p.get("target_stage") in _VOIDS_REVIEWS:
                self._stop(at, "VOIDED", kind="REVIEW")  # the pending reviews are void
            # The return ends any pause and any wait for the customer: rework is utility time.
            s["flags"].pop("paused", None)
            self._end_exclusions(at, PAUSE)
            self._end_exclusions(at, CUSTOMER)
            self._rehold(at)
        elif kind == "CaseCancelled":
            for cancelled in ("STAGE", "REVIEW", "CASE"):
                self._stop(at, "CANCELLED", kind=cancelled)
        elif kind == "ClockPaused":
            s["flags"]["paused"] = at
            for clock in self.running():
                if clock["kind"] != COMPLAINT:
                    _open_exclusion(clock, at, PAUSE)
        elif kind == "ClockResumed":
            s["flags"].pop("paused", None)
            self._end_exclusions(at, PAUSE)
        elif kind == "CustomerStepAwaited":
            for clock in self.running("CASE"):
                _open_exclusion(clock, at, CUSTOMER)
        elif kind == "SlaThresholdCrossed":
            for clock in s["clocks"]:
                if clock["id"] == p["clock_id"] and p["level"] not in clock["recorded"]:
                    clock["recorded"].append(p["level"])
        elif kind == "SlaDeadlineRevised":  # a holiday notice was loaded: the clock now counts with it
            for clock in s["clocks"]:
                if clock["id"] == p["clock_id"]:
                    clock["calendar_version"] = p["calendar_version"]
        elif kind.startswith("Complaint"):
            self._complaint(kind, p, at)
        return True

    def _complaint(self, kind: str, p: Mapping[str, Any], at: str) -> None:
        """Complaint facts: lodged (or filed, the short form: customer service) and reopened start a clock,
        resolved stops it, an assignment re-attributes it."""
        holders = self.state.setdefault("complaints", {})
        complaint_id = p["complaint_id"]
        if kind in ("ComplaintFiled", "ComplaintLodged"):
            holders[complaint_id] = [p.get("department") or "CUSTOMER_SERVICE", None]
            self._start(COMPLAINT, COMPLAINT, at, complaint_id=complaint_id)
        elif kind == "ComplaintAssigned":
            holders[complaint_id] = [p["department"], p["handler"]["name"]]
            self._rehold(at)
        elif kind == "ComplaintResolved":
            self._stop(at, "RESOLVED", kind=COMPLAINT, complaint_id=complaint_id)
        elif kind == "ComplaintResolutionRejected":
            self._start(COMPLAINT, COMPLAINT, at, complaint_id=complaint_id)

    def running(self, kind: str | None = None) -> list[State]:
        return [c for c in self.state["clocks"] if c["stopped_at"] is None and kind in (None, c["kind"])]

    def _start(
        self, kind: str, stage: str, at: str, department: str | None = None, complaint_id: str | None = None
    ) -> None:
        s = self.state
        if kind == "STAGE" and stage not in s.get("route", ()):
            return
        rules = self.rules.in_force(self.rule_set, datetime.fromisoformat(at).date())
        if kind == "STAGE":
            limit = rules.stage_limit(s["category"], stage)
        elif kind == "REVIEW":
            limit = rules.review_limit_days
        elif kind == COMPLAINT:
            limit = rules.complaint_limit(s["category"])
        else:
            limit = rules.whole_case_limit(s["category"], s["external"])
        if limit is None:
            return
        key = (kind, stage, department, complaint_id)
        if any(_key(c) == key for c in self.running()):
            return  # still running (e.g. through a return): rework goes on the same clock
        number = 1 + sum(1 for c in s["clocks"] if _key(c) == key)
        subject = department or complaint_id
        clock: State = {
            "id": f"{s['case_id']}:{kind}:{stage}{':' + subject if subject else ''}:{number}",
            "kind": kind, "stage": stage, "department": department, "started_at": at, "stopped_at": None,
            "outcome": None, "limit_days": limit, "rule_set": rules.name, "rule_version": rules.version,
            "calendar_version": self.calendar.version, "excluded": [], "holdings": [], "recorded": [],
        }  # fmt: skip
        if complaint_id is not None:
            clock["complaint_id"] = complaint_id
        if "paused" in s["flags"] and kind != COMPLAINT:
            _open_exclusion(clock, at, PAUSE)
        s["clocks"].append(clock)
        self._hold(clock, at)

    def _maybe_start_connection(self, at: str) -> None:
        flags = self.state["flags"]
        needs_inspection = "COMPLETION_INSPECTION" in self.state.get("route", ())
        started = any(c["stage"] == "CONNECTION" for c in self.state["clocks"])
        if flags.get("contract") and (flags.get("inspection") or not needs_inspection) and not started:
            self._start("STAGE", "CONNECTION", at)

    def _stop(self, at: str, outcome: str, *, kind: str | None = None, **match: str) -> None:
        for clock in self.running(kind):
            if all(clock.get(key) == value for key, value in match.items()):
                clock["stopped_at"], clock["outcome"] = at, outcome
                for window in clock["excluded"]:
                    window[1] = window[1] or at
                if clock["holdings"] and clock["holdings"][-1][3] is None:
                    clock["holdings"][-1][3] = at

    def _end_exclusions(self, at: str, reason: str) -> None:
        """Close the open exclusion windows of ``reason`` on every running clock."""
        for clock in self.running():
            for window in clock["excluded"]:
                if window[1] is None and _reason(window) in (reason, None):
                    window[1] = at

    def _holder(self, clock: State) -> tuple[str | None, str | None]:
        if clock["kind"] == "REVIEW":
            return clock["department"], None
        if clock["kind"] == COMPLAINT:
            # a complaint filed before its case's SLA state knew complaints is customer service's
            known = self.state.get("complaints", {}).get(clock["complaint_id"], ["CUSTOMER_SERVICE", None])
            return known[0], known[1]
        holders = self.state["holders"]
        stages = (
            _COVERED.get(clock["stage"], (clock["stage"],)) if clock["kind"] == "STAGE" else _UTILITY_STAGES
        )
        for stage in stages:
            if stage in holders:
                department, handler = holders[stage]
                return department, handler
        return None, None

    def _hold(self, clock: State, at: str) -> None:
        department, handler = self._holder(clock)
        holdings = clock["holdings"]
        if holdings and holdings[-1][3] is None:
            if holdings[-1][:2] == [department, handler]:
                return
            holdings[-1][3] = at
        if department is not None:
            holdings.append([department, handler, at, None])

    def _rehold(self, at: str) -> None:
        for clock in self.running():
            self._hold(clock, at)


# ---- evaluation -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Crossing:
    """When a clock reaches a warning level, and who held it then."""

    level: str
    share: float
    at: datetime | None
    """None: not reached yet because a customer pause is running, or never (the clock stopped first)."""
    department: str | None
    handler: str | None


@dataclass(frozen=True)
class ClockReading:
    clock_id: str
    elapsed_seconds: int
    """Whole seconds (rounded down) of ``elapsed_microseconds``."""
    excluded_seconds: int
    limit_seconds: int
    share: float
    deadline: datetime | None
    on_time: bool | None
    """Stopped clocks only: the elapsed time at the stop did not exceed the limit."""
    crossings: tuple[Crossing, ...]
    provisional: bool = False
    """The deadline or the elapsed time depends on a year whose holiday notice is not loaded yet."""
    elapsed_microseconds: int = 0
    """The exact elapsed working time: timestamps keep their sub-second parts."""


def _parse(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def excluded_spans(clock: State, calendar: WorkingCalendar, end: datetime) -> list[tuple[int, int | None]]:
    """The clock's exclusion windows as merged, ordered spans of working positions (microseconds) after
    its origin, cut at ``end``; an open window that began before ``end`` ends with None."""
    origin = calendar.origin(datetime.fromisoformat(clock["started_at"]))
    limit = calendar.position(end)
    spans: list[tuple[int, int | None]] = []
    for window in sorted(clock["excluded"], key=lambda w: datetime.fromisoformat(w[0])):
        a = max(origin, calendar.position(datetime.fromisoformat(window[0])))
        b = None if window[1] is None else max(origin, calendar.position(datetime.fromisoformat(window[1])))
        if a > limit or (b is not None and b <= a):
            continue
        if spans and (spans[-1][1] is None or a <= spans[-1][1]):  # overlaps the previous span: merge
            last_a, last_b = spans[-1]
            spans[-1] = (last_a, None if last_b is None or b is None else max(last_b, b))
        else:
            spans.append((a, b))
    return spans


def read_clock(
    clock: State,
    calendar: WorkingCalendar,
    now: datetime,
    levels: tuple[tuple[str, float], ...] = DEFAULT_LEVELS,
) -> ClockReading:
    """Elapsed working time (customer time excluded), share of the limit, deadline and level crossings.

    Counting is done in working positions (microseconds of working time, ``WorkingCalendar.position``):
    elapsed = working time from the clock's origin (24:00 of its start day) to the stop (or ``now``) minus
    the excluded (paused, customer) working time. A level's instant is the earliest instant at which
    elapsed reaches its share of the limit; the deadline is that of 100 %. Time excluded before the
    instant moves it later by exactly that much; while an exclusion that began before it is still open,
    the instant is unknown (None). A stopped clock crossed a level only when its elapsed time at the stop
    exceeded the level (reaching the deadline is not a breach); it is on time when it did not exceed the
    limit."""
    stopped = _parse(clock["stopped_at"])
    end = stopped or now
    origin = calendar.origin(datetime.fromisoformat(clock["started_at"]))
    limit = clock["limit_days"] * DAY_SECONDS
    end_position = max(origin, calendar.position(end))
    spans = excluded_spans(clock, calendar, end)
    excluded = sum(min(b if b is not None else end_position, end_position) - a for a, b in spans)
    elapsed = end_position - origin - excluded

    def reached(target: int) -> datetime | None:
        """The earliest instant at which elapsed reaches ``target`` microseconds; None while an open
        exclusion holds the clock before it."""
        cursor, remaining = origin, target
        for a, b in spans:
            if a > cursor:
                if remaining <= a - cursor:
                    break
                remaining -= a - cursor
            if b is None:
                return None
            cursor = max(cursor, b)
        return calendar.instant_at(cursor + remaining)

    crossings = []
    for level, share in levels:
        target = round(limit * share) * MICROS
        at = reached(target)
        if at is not None and stopped is not None and elapsed <= target:
            at = None  # answered before exceeding this level
        department, handler = holder_at(clock, at or end)
        crossings.append(Crossing(level, share, at, department, handler))
    deadline = reached(limit * MICROS)
    return ClockReading(
        clock["id"],
        elapsed // MICROS,
        excluded // MICROS,
        limit,
        elapsed / (limit * MICROS) if limit else 0.0,
        deadline,
        (elapsed <= limit * MICROS) if stopped is not None else None,
        tuple(crossings),
        calendar.is_provisional(end) or (deadline is not None and calendar.is_provisional(deadline)),
        elapsed,
    )


def holder_at(clock: State, moment: datetime) -> tuple[str | None, str | None]:
    """The department and handler accountable for ``clock`` at ``moment``."""
    held: tuple[str | None, str | None] = (None, None)
    for department, handler, since, until in clock["holdings"]:
        if datetime.fromisoformat(since) <= moment and (
            until is None or moment < datetime.fromisoformat(until)
        ):
            return department, handler
        if datetime.fromisoformat(since) <= moment:
            held = (department, handler)
    return held
