"""The 业扩 case (业扩工单) as an event-sourced aggregate.

Each public method is one command: it checks the named rules first (raising ``RuleViolationError``),
then records events whose ``apply`` bodies only assign state, because they run again on every replay.
Every event carries who, when (occurred and recorded), through which channel, why, the command that
caused it, and the hash chain links.
"""

from __future__ import annotations

import dataclasses
from datetime import date, datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from eventsourcing.domain import Aggregate

from domain import complaints as complaint_rules
from domain.case_values import (
    SLA_LEVELS,
    ApplicationDetails,
    CommandContext,
    DeadlineRevision,
    OpenStage,
    Pause,
    SlaCrossing,
    check_capacity,
    check_id_number,
    check_phone,
    check_text,
)
from domain.errors import RuleViolationError
from domain.hashchain import GENESIS_HASH, event_hash
from domain.parties import PartyKind, PartyQualification, check_named_party
from domain.routes import (
    CUSTOMER_REQUESTED_STAGES,
    DEFAULT_OWNER,
    HV_PLAN_REVIEWERS,
    Route,
    fast_track_eligible,
    route_for,
)
from domain.vocabulary import (
    Actor,
    CaseStatus,
    Category,
    CustomerStep,
    Department,
    PauseReason,
    PlanPhase,
    Stage,
)

PENDING, APPROVED = "PENDING", "APPROVED"
PASSED, FAILED, DONE, WITHDRAWN = "PASSED", "FAILED", "DONE", "WITHDRAWN"


def _reject(rule: str, message: str) -> RuleViolationError:
    return RuleViolationError(rule, message)


def _notification_marks(case: Case) -> dict[str, str]:
    # Snapshots taken before notifications were acknowledged on the case lack the attribute.
    return getattr(case, "notification_marks", {})


def _sla_marks(case: Case) -> list[str]:
    return getattr(case, "sla_marks", [])  # snapshots from before SLA facts lack it


def _mark_notification(case: Case, notification_id: str, mark: str) -> None:
    case.notification_marks = {**_notification_marks(case), notification_id: mark}


def _complaints(case: Case) -> dict[str, dict[str, Any]]:
    records: dict[str, dict[str, Any]] | None = getattr(case, "complaints", None)
    if records is None:  # a snapshot from before the complaint loop: its open complaints were filed
        records = {
            complaint_id: {
                "status": complaint_rules.OPEN,
                "category": complaint_rules.LEGACY_CATEGORY,
                "department": Department.CUSTOMER_SERVICE.value,
                "handler": None,
            }
            for complaint_id in case.open_complaints
        }
    return records


def _mark_complaint(case: Case, complaint_id: str, **changes: Any) -> None:
    current = _complaints(case)
    case.complaints = {**current, complaint_id: {**current.get(complaint_id, {}), **changes}}


class Case(Aggregate):
    """One new-service-connection case (业扩报装工单)."""

    # ---- events -------------------------------------------------------------------------------------

    class Event(Aggregate.Event):
        """Base of every case event: provenance plus the hash chain."""

        actor: Actor
        occurred_at: datetime
        channel: str
        reason: str
        command_id: str
        previous_hash: str
        event_hash: str

        def apply(self, aggregate: Any) -> None:
            aggregate.chain_head = self.event_hash
            aggregate.last_occurred_at = self.occurred_at
            self.evolve(aggregate)

        def evolve(self, case: Case) -> None:
            """Assign the state this event implies; subclasses override."""

    class ApplicationSubmitted(Event, Aggregate.Created):
        """用电申请已提交.

        Version 2 replaced v1's ``vip`` flag by the graded ``priority_tier`` and added ``special_care``
        (elderly or disabled customers); v1 histories load through ``upcast_v1_v2``.
        """

        class_version = 2

        case_number: str
        category: str
        customer_ref: str
        customer_name: str
        contact_phone: str
        id_number: str
        address: str
        capacity_kva: float
        supply_voltage: str
        external_line_works: bool
        important_customer: bool
        priority_tier: int
        special_care: bool
        fast_track: bool
        documents: list[str]
        route: list[str]
        optional_stages: list[str]

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["priority_tier"] = 1 if state.pop("vip", False) else 0
            state["special_care"] = False

        def evolve(self, case: Case) -> None:
            case.case_number = self.case_number
            case.category_code = self.category
            case.customer_ref = self.customer_ref
            case.customer_name = self.customer_name
            case.contact_phone = self.contact_phone
            case.id_number = self.id_number
            case.address = self.address
            case.capacity_kva = self.capacity_kva
            case.supply_voltage = self.supply_voltage
            case.external_line_works = self.external_line_works
            case.important_customer = self.important_customer
            case.priority_tier = self.priority_tier
            case.special_care = self.special_care
            case.fast_track = self.fast_track
            case.documents = list(self.documents)
            case.route_stages = list(self.route)
            case.optional_stages = list(self.optional_stages)
            case.status_code = CaseStatus.APPLIED.value
            case.submitted_at = self.occurred_at
            case.accepted_at = None
            case.energised_at = None
            case.plan_summary = ""
            case.customer_manager = None
            case.open_stages = {}
            case.stage_log = []
            case.awaiting_step = None
            case.outstanding_documents = []
            case.supplement_requested = False
            case.plan_phase_code = PlanPhase.AWAITING_SURVEY.value
            case.plan_reviews = {}
            case.passed_stages = []
            case.started_optional_stages = []
            case.contract_number = None
            case.meter_id = None
            case.connection_scheduled_for = None
            case.pause = None
            case.escalation_level = 0
            case.open_complaints = {}
            case.complaints_filed = 0
            case.follow_up_score = None
            case.notification_marks = {}
            case.sla_marks = []

    class StageOpened(Event):
        """环节已开启: a stage is now with ``department``."""

        stage: str
        department: str

        def evolve(self, case: Case) -> None:
            case.open_stages = {
                **case.open_stages,
                self.stage: OpenStage(Stage(self.stage), Department(self.department), self.occurred_at),
            }
            if self.stage == Stage.SUPPLY_PLAN:
                case.plan_phase_code = PlanPhase.DRAFTING.value
                case.plan_reviews = {}
            if self.stage in CUSTOMER_REQUESTED_STAGES and self.stage not in case.started_optional_stages:
                case.started_optional_stages = [*case.started_optional_stages, self.stage]

    class StageCompleted(Event):
        """环节已完成; ``outcome`` is PASSED, FAILED or DONE."""

        stage: str
        department: str
        outcome: str

        def evolve(self, case: Case) -> None:
            case.open_stages = {name: item for name, item in case.open_stages.items() if name != self.stage}
            case.stage_log = [*case.stage_log, [self.stage, self.outcome]]
            if self.outcome != FAILED and self.stage not in case.passed_stages:
                case.passed_stages = [*case.passed_stages, self.stage]

    class CustomerStepAwaited(Event):
        """等待客户: the case now waits for the customer (customer time)."""

        step: str

        def evolve(self, case: Case) -> None:
            case.awaiting_step = self.step

    class SupplementRequested(Event):
        """一次性告知: the complete list of missing documents, sent once."""

        missing_documents: list[str]

        def evolve(self, case: Case) -> None:
            case.supplement_requested = True
            case.outstanding_documents = list(self.missing_documents)

    class SupplementProvided(Event):
        """资料已补正 (wholly or partly)."""

        documents: list[str]
        still_missing: list[str]

        def evolve(self, case: Case) -> None:
            case.documents = [*case.documents, *self.documents]
            case.outstanding_documents = list(self.still_missing)
            if not self.still_missing:
                case.awaiting_step = None

    class ApplicationAccepted(Event):
        """已受理: the accepting agent becomes the customer manager (首问负责制)."""

        customer_manager: Actor
        contract_signed_at_acceptance: bool
        contract_number: str | None

        def evolve(self, case: Case) -> None:
            case.customer_manager = self.customer_manager
            case.status_code = CaseStatus.IN_PROGRESS.value
            case.accepted_at = self.occurred_at
            if self.contract_signed_at_acceptance:
                case.contract_number = self.contract_number

    class HandlerAssigned(Event):
        """已派工: a named handler (责任人) now holds the stage."""

        stage: str
        handler: Actor

        def evolve(self, case: Case) -> None:
            current = case.open_stages[self.stage]
            case.open_stages = {
                **case.open_stages,
                self.stage: dataclasses.replace(current, handler=self.handler),
            }

    class HandlerReassigned(Event):
        """已改派: the stage moves to another handler, possibly of another department."""

        stage: str
        previous_handler: Actor | None
        handler: Actor
        department: str

        def evolve(self, case: Case) -> None:
            current = case.open_stages[self.stage]
            case.open_stages = {
                **case.open_stages,
                self.stage: dataclasses.replace(
                    current, handler=self.handler, department=Department(self.department)
                ),
            }

    class SiteSurveyCompleted(Event):
        """现场勘查已完成."""

        findings: str

    class SupplyPlanDrafted(Event):
        """供电方案已拟定."""

        summary: str

        def evolve(self, case: Case) -> None:
            case.plan_phase_code = PlanPhase.DRAFTED.value
            case.plan_summary = self.summary

    class PlanReviewsRequested(Event):
        """已发起会签: each listed department reviews the draft plan in parallel."""

        departments: list[str]

        def evolve(self, case: Case) -> None:
            case.plan_phase_code = PlanPhase.IN_REVIEW.value
            case.plan_reviews = dict.fromkeys(self.departments, PENDING)

    class PlanReviewApproved(Event):
        """会签同意."""

        department: str

        def evolve(self, case: Case) -> None:
            case.plan_reviews = {**case.plan_reviews, self.department: APPROVED}

    class SupplyPlanApproved(Event):
        """会签全部通过."""

        def evolve(self, case: Case) -> None:
            case.plan_phase_code = PlanPhase.APPROVED.value

    class PlanReviewRejected(Event):
        """会签不同意: the plan goes back to drafting with the comments (in ``reason``)."""

        department: str

        def evolve(self, case: Case) -> None:
            case.plan_phase_code = PlanPhase.DRAFTING.value
            case.plan_reviews = {}

    class SupplyPlanReplied(Event):
        """供电方案已答复客户."""

        def evolve(self, case: Case) -> None:
            case.plan_phase_code = PlanPhase.REPLIED.value

    class SupplyPlanConfirmed(Event):
        """客户已确认供电方案."""

        def evolve(self, case: Case) -> None:
            case.plan_phase_code = PlanPhase.CONFIRMED.value
            case.awaiting_step = None

    class SupplyPlanObjected(Event):
        """客户对供电方案有异议 (reason): the plan is drafted again."""

        def evolve(self, case: Case) -> None:
            case.awaiting_step = None

    class DesignSubmitted(Event):
        """设计文件已报审.

        Version 2 names the registered party doing the work (``party_id``, "" when none is named);
        v1 histories load through ``upcast_v1_v2``.
        """

        class_version = 2

        party_id: str

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["party_id"] = ""

        def evolve(self, case: Case) -> None:
            case.awaiting_step = None

    class DesignReviewed(Event):
        """设计审查结论; failed reviews list the issues to fix."""

        passed: bool
        issues: list[str]

    class MidInspectionRequested(Event):
        """中间检查已报验.

        Version 2 names the registered party doing the work (``party_id``, "" when none is named);
        v1 histories load through ``upcast_v1_v2``.
        """

        class_version = 2

        party_id: str

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["party_id"] = ""

        def evolve(self, case: Case) -> None:
            case.awaiting_step = None

    class MidInspectionRecorded(Event):
        """中间检查结论."""

        passed: bool
        issues: list[str]

    class CompletionReported(Event):
        """竣工已报验.

        Version 2 names the registered party doing the work (``party_id``, "" when none is named);
        v1 histories load through ``upcast_v1_v2``.
        """

        class_version = 2

        party_id: str

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["party_id"] = ""

        def evolve(self, case: Case) -> None:
            case.awaiting_step = None

    class CompletionInspected(Event):
        """竣工检验结论; failed inspections carry the rectification list (整改意见)."""

        passed: bool
        rectifications: list[str]

    class ContractSigned(Event):
        """供用电合同已签订."""

        contract_number: str

        def evolve(self, case: Case) -> None:
            case.contract_number = self.contract_number

    class ConnectionScheduled(Event):
        """装表接电已预约."""

        scheduled_for: str

        def evolve(self, case: Case) -> None:
            case.connection_scheduled_for = self.scheduled_for

    class MeterInstalled(Event):
        """电能表已安装."""

        meter_id: str

        def evolve(self, case: Case) -> None:
            case.meter_id = self.meter_id

    class Energised(Event):
        """已送电; high-voltage cases carry the dispatch order (调度指令)."""

        dispatch_order: str | None

        def evolve(self, case: Case) -> None:
            case.status_code = CaseStatus.ENERGISED.value
            case.energised_at = self.occurred_at

    class CaseArchived(Event):
        """已归档."""

    class FollowUpRecorded(Event):
        """回访已完成: satisfaction score 1-5 and comments."""

        score: int
        comments: str

        def evolve(self, case: Case) -> None:
            case.follow_up_score = self.score

    class CaseCompleted(Event):
        """已办结."""

        def evolve(self, case: Case) -> None:
            case.status_code = CaseStatus.COMPLETED.value

    class ComplaintFiled(Event):
        """投诉已登记."""

        complaint_id: str
        summary: str

        def evolve(self, case: Case) -> None:
            case.open_complaints = {**case.open_complaints, self.complaint_id: self.summary}
            case.complaints_filed += 1
            _mark_complaint(
                case,
                self.complaint_id,
                status=complaint_rules.OPEN,
                category=complaint_rules.LEGACY_CATEGORY,
                department=Department.CUSTOMER_SERVICE.value,
                handler=None,
            )

    class ComplaintResolved(Event):
        """投诉已处理."""

        complaint_id: str
        resolution: str

        def evolve(self, case: Case) -> None:
            _mark_complaint(case, self.complaint_id, status=complaint_rules.RESOLVED)
            case.open_complaints = {k: v for k, v in case.open_complaints.items() if k != self.complaint_id}

    class ClockPaused(Event):
        """时限已暂停 for a customer-caused reason."""

        reason_code: str

        def evolve(self, case: Case) -> None:
            case.pause = Pause(PauseReason(self.reason_code), self.occurred_at)

    class ClockResumed(Event):
        """时限已恢复."""

        paused_since: datetime
        reason_code: str

        def evolve(self, case: Case) -> None:
            case.pause = None

    class CaseEscalated(Event):
        """已督办: the supervisors of ``departments`` (those holding the case then) are notified.

        Version 2 added ``departments``; v1 histories load through ``upcast_v1_v2`` with none named.
        """

        class_version = 2

        level: int
        departments: list[str]

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["departments"] = []

        def evolve(self, case: Case) -> None:
            case.escalation_level = self.level

    class CaseReturned(Event):
        """已退回 to an earlier stage; open stages are withdrawn and later progress is undone."""

        target_stage: str
        withdrawn_stages: list[str]

        def evolve(self, case: Case) -> None:
            target = Stage(self.target_stage)
            case.open_stages = {}
            case.awaiting_step = None
            case.pause = None
            case.passed_stages = [s for s in case.passed_stages if Stage(s).position < target.position]
            case.started_optional_stages = [
                s for s in case.started_optional_stages if Stage(s).position < target.position
            ]
            if target.position <= Stage.SUPPLY_PLAN.position:
                case.plan_phase_code = PlanPhase.AWAITING_SURVEY.value
                case.plan_reviews = {}
            if target.position <= Stage.CONTRACT.position and not case.fast_track:
                case.contract_number = None
            if target.position <= Stage.CONNECTION.position:
                case.meter_id = None
                case.connection_scheduled_for = None

    class CaseCancelled(Event):
        """已撤销 (reason); every open stage is withdrawn."""

        withdrawn_stages: list[str]

        def evolve(self, case: Case) -> None:
            case.status_code = CaseStatus.CANCELLED.value
            case.open_stages = {}
            case.awaiting_step = None
            case.pause = None

    class NotificationAcknowledged(Event):
        """通知已确认: ``department`` has read the notification ``notification_id`` about this case."""

        notification_id: str
        department: str

        def evolve(self, case: Case) -> None:
            _mark_notification(case, self.notification_id, "ACKNOWLEDGED")

    class NotificationEscalated(Event):
        """通知超时未确认, 已督办: the notification goes to the supervisor of ``department``."""

        notification_id: str
        department: str
        level: int

        def evolve(self, case: Case) -> None:
            _mark_notification(case, self.notification_id, "ESCALATED")
            case.escalation_level = self.level

    class SlaThresholdCrossed(Event):
        """时限预警/超期: a clock reached a level (NOTICE 50 %, WARNING 80 %, BREACH 100 % by default).

        ``crossed_at`` is when it happened, ``occurred_at`` when the SLA clock noticed; ``department`` and
        ``handler`` held the clock at ``crossed_at``; the rule set and calendar versions make it replayable.
        """

        clock_id: str
        stage: str
        level: str
        share: float
        crossed_at: datetime
        department: str | None
        handler: str | None
        rule_set: str
        rule_version: str
        calendar_version: str

        def evolve(self, case: Case) -> None:
            case.sla_marks = [*_sla_marks(case), f"{self.clock_id}/{self.level}"]

    class SlaDeadlineRevised(Event):
        """时限截止日调整: a year's holiday notice was loaded and a clock's deadline moved or became final.

        ``previous_deadline`` was computed under ``previous_calendar_version`` (possibly with provisional
        years); ``deadline`` under ``calendar_version``; ``provisional`` tells whether it still depends on
        a year without its notice. None: the clock is paused, its deadline moves with the pause.
        """

        clock_id: str
        stage: str
        previous_deadline: datetime | None
        deadline: datetime | None
        provisional: bool
        previous_calendar_version: str
        calendar_version: str

    class PriorityChanged(Event):
        """优先级已调整: the priority tier (0 normal … 3) or the special-care flag (特殊关怀: elderly,
        disabled, hospitals) changed after submission; every queue orders by them."""

        priority_tier: int
        special_care: bool
        previous_priority_tier: int
        previous_special_care: bool

        def evolve(self, case: Case) -> None:
            case.priority_tier = self.priority_tier
            case.special_care = self.special_care

    class ComplaintLodged(Event):
        """投诉已受理: a complaint with its category, the stage and handler it concerns (if named), and the
        department accountable for resolving it (see ``domain.complaints``)."""

        complaint_id: str
        category: str
        summary: str
        concerns_stage: str | None
        concerns_handler: Actor | None
        department: str

        def evolve(self, case: Case) -> None:
            case.open_complaints = {**case.open_complaints, self.complaint_id: self.summary}
            case.complaints_filed += 1
            _mark_complaint(
                case,
                self.complaint_id,
                status=complaint_rules.OPEN,
                category=self.category,
                department=self.department,
                handler=None,
            )

    class ComplaintAssigned(Event):
        """投诉已派单: a handler (of ``department``, possibly another than before) now holds it."""

        complaint_id: str
        handler: Actor
        department: str
        previous_department: str

        def evolve(self, case: Case) -> None:
            _mark_complaint(
                case, self.complaint_id, department=self.department, handler=self.handler.person_id
            )

    class ComplaintResolutionAccepted(Event):
        """客户认可投诉处理结果: the complaint is closed."""

        complaint_id: str

        def evolve(self, case: Case) -> None:
            _mark_complaint(case, self.complaint_id, status=complaint_rules.CLOSED)

    class ComplaintResolutionRejected(Event):
        """客户不认可投诉处理结果 (reason): the complaint is reopened with ``department``."""

        complaint_id: str
        department: str

        def evolve(self, case: Case) -> None:
            case.open_complaints = {**case.open_complaints, self.complaint_id: self.reason}
            _mark_complaint(case, self.complaint_id, status=complaint_rules.OPEN)

    # ---- state (assigned by ApplicationSubmitted.evolve) ---------------------------------------------
    # Declared for type checkers only: at run time the aggregate's __init__ must stay free of fields.
    if TYPE_CHECKING:
        case_number: str
        category_code: str
        customer_ref: str
        customer_name: str
        contact_phone: str
        id_number: str
        address: str
        capacity_kva: float
        supply_voltage: str
        external_line_works: bool
        important_customer: bool
        priority_tier: int
        special_care: bool
        fast_track: bool
        documents: list[str]
        route_stages: list[str]
        optional_stages: list[str]
        status_code: str
        submitted_at: datetime
        accepted_at: datetime | None
        energised_at: datetime | None
        customer_manager: Actor | None
        open_stages: dict[str, OpenStage]
        stage_log: list[list[str]]
        awaiting_step: str | None
        outstanding_documents: list[str]
        supplement_requested: bool
        plan_phase_code: str
        plan_summary: str
        plan_reviews: dict[str, str]
        passed_stages: list[str]
        started_optional_stages: list[str]
        contract_number: str | None
        meter_id: str | None
        connection_scheduled_for: str | None
        pause: Pause | None
        escalation_level: int
        open_complaints: dict[str, str]
        complaints: dict[str, dict[str, Any]]
        complaints_filed: int
        follow_up_score: int | None
        notification_marks: dict[str, str]
        sla_marks: list[str]
        chain_head: str
        last_occurred_at: datetime

    # ---- typed views of the state ------------------------------------------------------------------

    @property
    def category(self) -> Category:
        return Category(self.category_code)

    @property
    def status(self) -> CaseStatus:
        return CaseStatus(self.status_code)

    @property
    def plan_phase(self) -> PlanPhase:
        return PlanPhase(self.plan_phase_code)

    @property
    def awaiting_customer(self) -> CustomerStep | None:
        return CustomerStep(self.awaiting_step) if self.awaiting_step else None

    @property
    def route(self) -> Route:
        return Route(
            tuple(Stage(s) for s in self.route_stages), frozenset(Stage(s) for s in self.optional_stages)
        )

    @property
    def is_closed(self) -> bool:
        return self.status in (CaseStatus.COMPLETED, CaseStatus.CANCELLED)

    def has_passed(self, stage: Stage) -> bool:
        return stage in self.passed_stages

    def accountable(self) -> dict[Stage, OpenStage]:
        """For each open stage, who is accountable for it now."""
        return {Stage(name): item for name, item in self.open_stages.items()}

    def holding_departments(self) -> list[str]:
        """The departments holding the case now: those of its open stages and pending plan reviews; while
        it waits for the customer, the customer manager's (首问负责制). Sorted, each once."""
        held = {item.department.value for item in self.open_stages.values()}
        held |= {department for department, status in self.plan_reviews.items() if status == PENDING}
        if not held and self.customer_manager is not None:
            held.add(self.customer_manager.department)
        return sorted(held)

    # ---- recording --------------------------------------------------------------------------------

    def _record(self, event_class: type[Case.Event], ctx: CommandContext, **fields: Any) -> None:
        payload = {**ctx.provenance(), **fields, "previous_hash": self.chain_head}
        payload["event_hash"] = event_hash(
            event_class.__qualname__, self.id, self.version + 1, ctx.recorded_at, payload
        )
        self.trigger_event(event_class, timestamp=ctx.recorded_at, **payload)

    def _open(self, ctx: CommandContext, stage: Stage) -> None:
        self._record(Case.StageOpened, ctx, stage=stage.value, department=DEFAULT_OWNER[stage].value)

    def _complete(self, ctx: CommandContext, stage: Stage, outcome: str = DONE) -> None:
        department = self.open_stages[stage].department
        self._record(
            Case.StageCompleted, ctx, stage=stage.value, department=department.value, outcome=outcome
        )

    def _await_customer(self, ctx: CommandContext, step: CustomerStep) -> None:
        self._record(Case.CustomerStepAwaited, ctx, step=step.value)

    # ---- rules -------------------------------------------------------------------------------------

    def _check_common(self, ctx: CommandContext) -> None:
        if ctx.occurred_at < self.last_occurred_at:
            raise _reject(
                "OCCURRED_BEFORE_LAST_EVENT",
                f"occurred_at {ctx.occurred_at.isoformat()} precedes the case's last event "
                f"({self.last_occurred_at.isoformat()})",
            )

    def _check_open_case(self, ctx: CommandContext) -> None:
        self._check_common(ctx)
        if self.is_closed:
            raise _reject(
                "CASE_CLOSED", f"case {self.case_number} is {self.status.value} and takes no more work"
            )

    def _check_progressing(self, ctx: CommandContext) -> None:
        self._check_open_case(ctx)
        if self.pause is not None:
            raise _reject(
                "CASE_PAUSED",
                f"the clock is paused ({self.pause.reason_code.value}); resume it before acting",
            )

    def _check_stage_open(self, stage: Stage) -> OpenStage:
        if stage in self.open_stages:
            return self.open_stages[stage]
        if not self.route.includes(stage):
            raise _reject(
                "STAGE_NOT_IN_ROUTE", f"{stage.value} is not part of this {self.category.value} case"
            )
        for earlier in self.route.required_before(stage):
            if not self.has_passed(earlier):
                raise _reject("STAGE_PREREQUISITE", f"{stage.value} requires {earlier.value} passed")
        raise _reject("STAGE_NOT_OPEN", f"{stage.value} is not open now")

    def _check_accountable(self, ctx: CommandContext, stage: Stage) -> OpenStage:
        """The stage is open and the actor acts for the department accountable for it."""
        self._check_progressing(ctx)
        open_stage = self._check_stage_open(stage)
        if ctx.actor.department != open_stage.department:
            raise _reject(
                "ACTOR_NOT_ACCOUNTABLE",
                f"{stage.value} is accountable to {open_stage.department.value}; "
                f"{ctx.actor.name} acts for {ctx.actor.department}",
            )
        return open_stage

    def _check_awaiting(self, ctx: CommandContext, step: CustomerStep, command: str) -> None:
        self._check_progressing(ctx)
        if self.awaiting_customer is not step:
            waiting = self.awaiting_customer.value if self.awaiting_customer else "nothing from the customer"
            raise _reject(
                "NOT_AWAITING_CUSTOMER",
                f"{command} needs the case to await {step.value}; it awaits {waiting}",
            )

    @staticmethod
    def _check_reason(ctx: CommandContext, command: str) -> None:
        if not ctx.reason.strip():
            raise _reject("REASON_REQUIRED", f"{command} must state a reason")

    @staticmethod
    def _check_items(items: list[str], rule: str, what: str) -> list[str]:
        cleaned = [item.strip() for item in items]
        if not cleaned or any(not item for item in cleaned):
            raise _reject(rule, f"{what} must list at least one non-blank item")
        if len(set(cleaned)) != len(cleaned):
            raise _reject(rule, f"{what} lists an item twice")
        return cleaned

    def _check_customer_request(self, stage: Stage) -> None:
        """The customer may request ``stage``: in the route, not yet passed, earlier ones done."""
        if not self.route.includes(stage):
            raise _reject(
                "STAGE_NOT_IN_ROUTE", f"{stage.value} is not part of this {self.category.value} case"
            )
        if self.has_passed(stage):
            raise _reject("STAGE_ALREADY_PASSED", f"{stage.value} has already passed")
        for earlier in (Stage.DESIGN_REVIEW, Stage.MID_INSPECTION):
            if earlier.position >= stage.position or not self.route.includes(earlier):
                continue
            needed = self.route.is_required(earlier) or earlier in self.started_optional_stages
            if needed and not self.has_passed(earlier):
                raise _reject("STAGE_PREREQUISITE", f"{stage.value} requires {earlier.value} passed")

    # ---- commands ----------------------------------------------------------------------------------

    @classmethod
    def submit(cls, case_id: UUID, ctx: CommandContext, application: ApplicationDetails) -> Case:
        """提交用电申请: open a case in APPLICATION with customer service."""
        category = cls._check_application(application)
        route = route_for(
            category, important_customer=application.important_customer, fast_track=application.fast_track
        )
        fields = {
            **ctx.provenance(),
            **dataclasses.asdict(application),
            "documents": [d.strip() for d in application.documents],
            "route": [s.value for s in route.stages],
            "optional_stages": sorted(s.value for s in route.optional),
            "previous_hash": GENESIS_HASH,
        }
        fields["event_hash"] = event_hash(
            cls.ApplicationSubmitted.__qualname__, case_id, cls.INITIAL_VERSION, ctx.recorded_at, fields
        )
        case = cls._create(cls.ApplicationSubmitted, id=case_id, timestamp=ctx.recorded_at, **fields)
        case._open(ctx, Stage.APPLICATION)
        return case

    @staticmethod
    def _check_application(application: ApplicationDetails) -> Category:
        if application.category not in Category.__members__:
            raise _reject(
                "UNKNOWN_CATEGORY", f"category {application.category!r} is not one of {', '.join(Category)}"
            )
        category = Category(application.category)
        for name in ("case_number", "customer_ref", "customer_name", "address", "supply_voltage"):
            if not str(getattr(application, name)).strip():
                raise _reject("APPLICATION_INCOMPLETE", f"the application must give {name}")
            check_text(name, getattr(application, name))
        for document in application.documents:
            check_text("document", document)
        check_phone(application.contact_phone)
        check_id_number(application.id_number, organisation_allowed=category is not Category.RESIDENTIAL)
        check_capacity(application.capacity_kva)
        if not application.capacity_kva > 0:
            raise _reject("CAPACITY_POSITIVE", "the applied capacity (kVA) must be positive")
        if application.priority_tier not in range(4):
            raise _reject("PRIORITY_TIER_RANGE", "priority tier must be 0 (normal) to 3")
        if application.fast_track and not fast_track_eligible(category, application.capacity_kva):
            raise _reject(
                "FAST_TRACK_NOT_ELIGIBLE",
                "三零 fast track is for residential customers and low-voltage businesses up to 160 kVA",
            )
        return category

    def request_supplement(self, ctx: CommandContext, missing_documents: list[str]) -> None:
        """一次性告知: list every missing document at once; a second request is refused."""
        self._check_accountable(ctx, Stage.APPLICATION)
        if self.supplement_requested:
            raise _reject(
                "ONE_TIME_NOTICE",
                "missing documents must be listed in a single request (一次性告知); one was sent",
            )
        missing = self._check_items(missing_documents, "MISSING_DOCUMENTS_REQUIRED", "a supplement request")
        self._record(Case.SupplementRequested, ctx, missing_documents=missing)
        self._await_customer(ctx, CustomerStep.PROVIDE_DOCUMENTS)

    def provide_supplement(self, ctx: CommandContext, documents: list[str]) -> None:
        """资料补正: the customer hands in some or all of the requested documents."""
        self._check_awaiting(ctx, CustomerStep.PROVIDE_DOCUMENTS, "providing documents")
        provided = self._check_items(documents, "DOCUMENTS_REQUIRED", "a supplement")
        unrequested = [d for d in provided if d not in self.outstanding_documents]
        if unrequested:
            raise _reject("SUPPLEMENT_NOT_REQUESTED", f"not requested: {', '.join(unrequested)}")
        still_missing = [d for d in self.outstanding_documents if d not in provided]
        self._record(Case.SupplementProvided, ctx, documents=provided, still_missing=still_missing)

    def accept(self, ctx: CommandContext) -> None:
        """受理: the accepting agent becomes customer manager; 三零 cases go straight to connection."""
        self._check_accountable(ctx, Stage.APPLICATION)
        if self.outstanding_documents:
            raise _reject(
                "DOCUMENTS_OUTSTANDING",
                f"APPLICATION cannot be accepted while missing: {', '.join(self.outstanding_documents)}",
            )
        self._record(
            Case.ApplicationAccepted,
            ctx,
            customer_manager=ctx.actor,
            contract_signed_at_acceptance=self.fast_track,
            contract_number=f"{self.case_number}-E" if self.fast_track else None,
        )
        self._complete(ctx, Stage.APPLICATION)
        self._open(ctx, Stage.CONNECTION if self.fast_track else Stage.SITE_SURVEY)

    def assign_handler(self, ctx: CommandContext, stage: Stage, handler: Actor) -> None:
        """派工: name the handler (责任人) of an open stage, from the accountable department."""
        self._check_open_case(ctx)
        open_stage = self._check_stage_open(stage)
        if open_stage.handler is not None:
            raise _reject(
                "HANDLER_ALREADY_ASSIGNED",
                f"{stage.value} is held by {open_stage.handler.name}; reassign with a reason",
            )
        if handler.department != open_stage.department or ctx.actor.department != open_stage.department:
            raise _reject(
                "HANDLER_OUTSIDE_DEPARTMENT",
                f"{stage.value} is accountable to {open_stage.department.value}; "
                "its handler is assigned by and from that department",
            )
        self._record(Case.HandlerAssigned, ctx, stage=stage.value, handler=handler)

    def reassign_handler(self, ctx: CommandContext, stage: Stage, handler: Actor) -> None:
        """改派: hand the stage to another handler (possibly another department), with a reason."""
        self._check_open_case(ctx)
        self._check_reason(ctx, "reassignment")
        open_stage = self._check_stage_open(stage)
        if handler.department not in Department.__members__:
            raise _reject("UNKNOWN_DEPARTMENT", f"{handler.department!r} is not a department of the utility")
        if open_stage.handler == handler:
            raise _reject("HANDLER_UNCHANGED", f"{handler.name} already holds {stage.value}")
        self._record(
            Case.HandlerReassigned,
            ctx,
            stage=stage.value,
            previous_handler=open_stage.handler,
            handler=handler,
            department=handler.department,
        )

    def complete_site_survey(self, ctx: CommandContext, findings: str) -> None:
        """现场勘查完成: the plan is drafted next, by marketing."""
        self._check_accountable(ctx, Stage.SITE_SURVEY)
        if not findings.strip():
            raise _reject("SURVEY_FINDINGS_REQUIRED", "a site survey must record its findings")
        self._record(Case.SiteSurveyCompleted, ctx, findings=findings.strip())
        self._complete(ctx, Stage.SITE_SURVEY)
        self._open(ctx, Stage.SUPPLY_PLAN)

    def draft_plan(self, ctx: CommandContext, summary: str) -> None:
        """拟定供电方案 (again, after a rejection or objection)."""
        self._check_accountable(ctx, Stage.SUPPLY_PLAN)
        if self.plan_phase not in (PlanPhase.DRAFTING, PlanPhase.DRAFTED):
            raise _reject(
                "PLAN_NOT_IN_DRAFTING", f"the plan is {self.plan_phase.value}; it cannot be redrafted now"
            )
        if not summary.strip():
            raise _reject("PLAN_SUMMARY_REQUIRED", "a supply plan needs its content")
        self._record(Case.SupplyPlanDrafted, ctx, summary=summary.strip())

    def request_plan_reviews(self, ctx: CommandContext, departments: list[str]) -> None:
        """发起会签: parallel reviews; high voltage needs planning, operations and dispatch."""
        self._check_accountable(ctx, Stage.SUPPLY_PLAN)
        if self.plan_phase is not PlanPhase.DRAFTED:
            raise _reject(
                "PLAN_NOT_DRAFTED", f"reviews need a drafted plan; the plan is {self.plan_phase.value}"
            )
        if self.category is Category.RESIDENTIAL:
            raise _reject(
                "PLAN_REVIEW_NOT_APPLICABLE", "residential supply plans are simple and take no joint review"
            )
        reviewers = self._check_items(departments, "REVIEWERS_REQUIRED", "a review request")
        unknown = [d for d in reviewers if d not in Department.__members__]
        if unknown:
            raise _reject("UNKNOWN_DEPARTMENT", f"not departments of the utility: {', '.join(unknown)}")
        missing = HV_PLAN_REVIEWERS - set(reviewers) if self.category.is_high_voltage else set()
        if missing:
            raise _reject(
                "HV_JOINT_REVIEW",
                f"high-voltage plans need the review of {', '.join(sorted(missing))} as well",
            )
        self._record(Case.PlanReviewsRequested, ctx, departments=reviewers)

    def _check_pending_review(self, ctx: CommandContext) -> str:
        self._check_progressing(ctx)
        self._check_stage_open(Stage.SUPPLY_PLAN)
        department = ctx.actor.department
        if self.plan_reviews.get(department) != PENDING:
            raise _reject("REVIEW_NOT_PENDING", f"no review of the plan is pending with {department}")
        return department

    def approve_plan_review(self, ctx: CommandContext) -> None:
        """会签同意 by the actor's department; the last approval approves the plan."""
        department = self._check_pending_review(ctx)
        self._record(Case.PlanReviewApproved, ctx, department=department)
        if all(status == APPROVED for status in self.plan_reviews.values()):
            self._record(Case.SupplyPlanApproved, ctx)

    def reject_plan_review(self, ctx: CommandContext) -> None:
        """会签不同意 (comments in the reason): the plan returns to drafting; other reviews are withdrawn."""
        department = self._check_pending_review(ctx)
        self._check_reason(ctx, "a review rejection")
        self._record(Case.PlanReviewRejected, ctx, department=department)

    def reply_plan(self, ctx: CommandContext) -> None:
        """答复供电方案: the utility's answer; the customer confirms or objects next."""
        self._check_accountable(ctx, Stage.SUPPLY_PLAN)
        if self.category.is_high_voltage and self.plan_phase is not PlanPhase.APPROVED:
            raise _reject(
                "HV_JOINT_REVIEW", "SUPPLY_PLAN reply for high voltage requires the joint review approved"
            )
        if self.plan_phase not in (PlanPhase.DRAFTED, PlanPhase.APPROVED):
            raise _reject("PLAN_NOT_READY", f"the plan is {self.plan_phase.value}; it cannot be replied")
        self._record(Case.SupplyPlanReplied, ctx)
        self._complete(ctx, Stage.SUPPLY_PLAN)
        self._await_customer(ctx, CustomerStep.CONFIRM_PLAN)

    def confirm_plan(self, ctx: CommandContext) -> None:
        """客户确认供电方案: residential goes to contract; others start their design and construction."""
        self._check_awaiting(ctx, CustomerStep.CONFIRM_PLAN, "confirming the plan")
        self._record(Case.SupplyPlanConfirmed, ctx)
        if self.category is Category.RESIDENTIAL:
            self._open(ctx, Stage.CONTRACT)
        else:
            self._await_customer(ctx, CustomerStep.CUSTOMER_WORKS)

    def object_to_plan(self, ctx: CommandContext) -> None:
        """客户异议 (reason): the plan is drafted again, by marketing."""
        self._check_awaiting(ctx, CustomerStep.CONFIRM_PLAN, "objecting to the plan")
        self._check_reason(ctx, "an objection")
        self._record(Case.SupplyPlanObjected, ctx)
        self._open(ctx, Stage.SUPPLY_PLAN)

    def submit_design(
        self, ctx: CommandContext, party_id: str = "", party: PartyQualification | None = None
    ) -> None:
        """设计文件报审 (customer or its design institute)."""
        self._check_awaiting(ctx, CustomerStep.CUSTOMER_WORKS, "submitting a design")
        self._check_customer_request(Stage.DESIGN_REVIEW)
        named = check_named_party(
            party_id, party, PartyKind.DESIGN_INSTITUTE, ctx.occurred_at, self.supply_voltage
        )
        self._record(Case.DesignSubmitted, ctx, party_id=named)
        self._open(ctx, Stage.DESIGN_REVIEW)

    def review_design(self, ctx: CommandContext, *, passed: bool, issues: list[str]) -> None:
        """设计审查: a failure lists the issues and hands the design back to the customer."""
        self._conclude_inspection(ctx, Stage.DESIGN_REVIEW, Case.DesignReviewed, passed, issues, "issues")

    def request_mid_inspection(
        self, ctx: CommandContext, party_id: str = "", party: PartyQualification | None = None
    ) -> None:
        """中间检查报验."""
        self._check_awaiting(ctx, CustomerStep.CUSTOMER_WORKS, "requesting a mid-inspection")
        self._check_customer_request(Stage.MID_INSPECTION)
        named = check_named_party(party_id, party, PartyKind.CONTRACTOR, ctx.occurred_at, self.supply_voltage)
        self._record(Case.MidInspectionRequested, ctx, party_id=named)
        self._open(ctx, Stage.MID_INSPECTION)

    def record_mid_inspection(self, ctx: CommandContext, *, passed: bool, issues: list[str]) -> None:
        """中间检查结论."""
        self._conclude_inspection(
            ctx, Stage.MID_INSPECTION, Case.MidInspectionRecorded, passed, issues, "issues"
        )

    def report_completion(
        self, ctx: CommandContext, party_id: str = "", party: PartyQualification | None = None
    ) -> None:
        """竣工报验: needs every required (or started) design review and mid-inspection passed."""
        self._check_awaiting(ctx, CustomerStep.CUSTOMER_WORKS, "reporting completion")
        self._check_customer_request(Stage.COMPLETION_INSPECTION)
        named = check_named_party(party_id, party, PartyKind.CONTRACTOR, ctx.occurred_at, self.supply_voltage)
        self._record(Case.CompletionReported, ctx, party_id=named)
        self._open(ctx, Stage.COMPLETION_INSPECTION)

    def inspect_completion(self, ctx: CommandContext, *, passed: bool, rectifications: list[str]) -> None:
        """竣工检验: passing opens the contract; failing returns a rectification list to the customer."""
        self._conclude_inspection(
            ctx,
            Stage.COMPLETION_INSPECTION,
            Case.CompletionInspected,
            passed,
            rectifications,
            "rectifications",
        )
        if passed:
            self._open(ctx, Stage.CONTRACT)

    def _conclude_inspection(
        self,
        ctx: CommandContext,
        stage: Stage,
        event_class: type[Case.Event],
        passed: bool,
        findings: list[str],
        findings_field: str,
    ) -> None:
        self._check_accountable(ctx, stage)
        if passed:
            listed = [f.strip() for f in findings if f.strip()]
        else:
            listed = self._check_items(findings, "FAILURE_NEEDS_FINDINGS", f"a failed {stage.value}")
        self._record(event_class, ctx, passed=passed, **{findings_field: listed})
        self._complete(ctx, stage, PASSED if passed else FAILED)
        if not passed or stage is not Stage.COMPLETION_INSPECTION:
            self._await_customer(ctx, CustomerStep.CUSTOMER_WORKS)

    def sign_contract(self, ctx: CommandContext, contract_number: str) -> None:
        """签订供用电合同: connection opens next, with metering."""
        self._check_accountable(ctx, Stage.CONTRACT)
        if not contract_number.strip():
            raise _reject("CONTRACT_NUMBER_REQUIRED", "a signed contract has a number")
        self._record(Case.ContractSigned, ctx, contract_number=contract_number.strip())
        self._complete(ctx, Stage.CONTRACT)
        self._open(ctx, Stage.CONNECTION)

    def schedule_connection(self, ctx: CommandContext, scheduled_for: date) -> None:
        """预约装表接电."""
        self._check_accountable(ctx, Stage.CONNECTION)
        if scheduled_for < ctx.occurred_at.date():
            raise _reject("SCHEDULE_IN_PAST", "a connection cannot be scheduled in the past")
        self._record(Case.ConnectionScheduled, ctx, scheduled_for=scheduled_for.isoformat())

    def install_meter(self, ctx: CommandContext, meter_id: str) -> None:
        """装表."""
        self._check_accountable(ctx, Stage.CONNECTION)
        if not meter_id.strip():
            raise _reject("METER_ID_REQUIRED", "an installed meter has an asset number")
        if self.meter_id is not None:
            raise _reject("METER_ALREADY_INSTALLED", f"meter {self.meter_id} is already installed")
        self._record(Case.MeterInstalled, ctx, meter_id=meter_id.strip())

    def energise(self, ctx: CommandContext, dispatch_order: str | None = None) -> None:
        """送电: needs the meter; high voltage also needs the dispatch order (调度指令)."""
        self._check_accountable(ctx, Stage.CONNECTION)
        if self.meter_id is None:
            raise _reject("METER_REQUIRED", "CONNECTION energising requires a meter installed")
        order = (dispatch_order or "").strip() or None
        if self.category.is_high_voltage and order is None:
            raise _reject(
                "DISPATCH_ORDER_REQUIRED", "high-voltage energising requires a dispatch order (调度指令)"
            )
        self._record(Case.Energised, ctx, dispatch_order=order)
        self._complete(ctx, Stage.CONNECTION)
        self._open(ctx, Stage.ARCHIVE)

    def archive(self, ctx: CommandContext) -> None:
        """归档."""
        self._check_accountable(ctx, Stage.ARCHIVE)
        self._record(Case.CaseArchived, ctx)
        self._complete(ctx, Stage.ARCHIVE)
        self._open(ctx, Stage.FOLLOW_UP)

    def record_follow_up(self, ctx: CommandContext, score: int, comments: str = "") -> None:
        """回访: satisfaction 1-5; the case is then completed."""
        self._check_accountable(ctx, Stage.FOLLOW_UP)
        if score not in range(1, 6):
            raise _reject("SATISFACTION_SCORE_RANGE", "a satisfaction score is 1 to 5")
        self._record(Case.FollowUpRecorded, ctx, score=score, comments=comments.strip())
        self._complete(ctx, Stage.FOLLOW_UP)
        self._record(Case.CaseCompleted, ctx)

    def file_complaint(self, ctx: CommandContext, complaint_id: str, summary: str) -> None:
        """登记投诉 (at any time, also after completion)."""
        self._check_common(ctx)
        if not complaint_id.strip() or not summary.strip():
            raise _reject("COMPLAINT_INCOMPLETE", "a complaint needs an id and a summary")
        if complaint_id in self.open_complaints:
            raise _reject("COMPLAINT_DUPLICATE", f"complaint {complaint_id} is already open")
        self._record(Case.ComplaintFiled, ctx, complaint_id=complaint_id, summary=summary.strip())

    def resolve_complaint(self, ctx: CommandContext, complaint_id: str, resolution: str) -> None:
        """投诉处理: the accountable department's resolution; the customer accepts it or not next."""
        self._check_common(ctx)
        if complaint_id not in self.open_complaints:
            raise _reject("COMPLAINT_NOT_OPEN", f"no open complaint {complaint_id}")
        if not resolution.strip():
            raise _reject("RESOLUTION_REQUIRED", "a resolved complaint states its resolution")
        complaint_rules.check_resolver(_complaints(self), complaint_id, ctx.actor)
        self._record(Case.ComplaintResolved, ctx, complaint_id=complaint_id, resolution=resolution.strip())

    def pause_clock(self, ctx: CommandContext, reason_code: str) -> None:
        """暂停时限: only for customer-caused reasons, only while a utility stage runs."""
        self._check_progressing(ctx)
        if reason_code not in PauseReason.__members__:
            raise _reject(
                "PAUSE_NOT_CUSTOMER_CAUSED",
                f"{reason_code!r} is not a customer-caused reason; allowed: {', '.join(PauseReason)}",
            )
        if not self.open_stages:
            raise _reject("NO_RUNNING_CLOCK", "no utility stage is open, so no clock runs to pause")
        self._record(Case.ClockPaused, ctx, reason_code=reason_code)

    def resume_clock(self, ctx: CommandContext) -> None:
        """恢复时限."""
        self._check_open_case(ctx)
        if self.pause is None:
            raise _reject("NOT_PAUSED", "the clock is not paused")
        self._record(
            Case.ClockResumed, ctx, paused_since=self.pause.since, reason_code=self.pause.reason_code.value
        )

    def escalate(self, ctx: CommandContext) -> None:
        """督办 (reason): raises the case's escalation level."""
        self._check_open_case(ctx)
        self._check_reason(ctx, "an escalation")
        self._record(
            Case.CaseEscalated, ctx, level=self.escalation_level + 1, departments=self.holding_departments()
        )

    def acknowledge_notification(self, ctx: CommandContext, notification_id: str) -> None:
        """通知确认: the addressed department has read a notification (also after the case closed)."""
        self._check_common(ctx)
        self._check_notification_open(notification_id)
        self._record(
            Case.NotificationAcknowledged,
            ctx,
            notification_id=notification_id,
            department=ctx.actor.department,
        )

    def escalate_notification(
        self, ctx: CommandContext, notification_id: str, department: Department
    ) -> None:
        """督办 an unacknowledged notification to the supervisor of the department it was sent to."""
        self._check_open_case(ctx)
        self._check_reason(ctx, "an escalation")
        self._check_notification_open(notification_id)
        self._record(
            Case.NotificationEscalated,
            ctx,
            notification_id=notification_id,
            department=Department(department).value,
            level=self.escalation_level + 1,
        )

    def _check_notification_open(self, notification_id: str) -> None:
        if not notification_id.strip():
            raise _reject("NOTIFICATION_ID_REQUIRED", "name the notification")
        marks = _notification_marks(self)
        if notification_id in marks:
            raise _reject(
                "NOTIFICATION_ALREADY_HANDLED",
                f"notification {notification_id} is already {marks[notification_id].lower()}",
            )

    def record_sla_crossing(self, ctx: CommandContext, crossing: SlaCrossing) -> None:
        """Record that a time-limit clock reached a level; each clock and level once, also after closing."""
        self._check_common(ctx)
        if crossing.level not in SLA_LEVELS:
            raise _reject(
                "SLA_LEVEL_UNKNOWN", f"level {crossing.level!r} is not one of {', '.join(SLA_LEVELS)}"
            )
        if f"{crossing.clock_id}/{crossing.level}" in _sla_marks(self):
            raise _reject(
                "SLA_ALREADY_RECORDED", f"{crossing.level} of clock {crossing.clock_id} is recorded"
            )
        if crossing.crossed_at > ctx.occurred_at:
            raise _reject("SLA_NOT_YET_CROSSED", "a level cannot be recorded before it is reached")
        self._record(Case.SlaThresholdCrossed, ctx, **dataclasses.asdict(crossing))

    def revise_sla_deadline(self, ctx: CommandContext, revision: DeadlineRevision) -> None:
        """Record that a clock's deadline moved (or stopped being provisional) under a new calendar."""
        self._check_common(ctx)
        if revision.calendar_version == revision.previous_calendar_version:
            raise _reject("SLA_REVISION_SAME_CALENDAR", "a deadline revision needs a new calendar version")
        self._record(Case.SlaDeadlineRevised, ctx, **dataclasses.asdict(revision))

    def return_to_stage(self, ctx: CommandContext, target: Stage) -> None:
        """退回 (reason) to an earlier utility stage that already passed; later progress is undone."""
        self._check_progressing(ctx)
        self._check_reason(ctx, "a return")
        if self.status is CaseStatus.ENERGISED:
            raise _reject("RETURN_AFTER_ENERGISING", "an energised case cannot be returned")
        if not self.has_passed(target) or target in CUSTOMER_REQUESTED_STAGES or target is Stage.APPLICATION:
            raise _reject(
                "RETURN_TARGET_INVALID",
                f"{target.value} is not an earlier utility stage of this case that has passed "
                "(customer-requested stages restart at the customer's request)",
            )
        withdrawn = sorted(self.open_stages, key=lambda s: Stage(s).position)
        self._record(Case.CaseReturned, ctx, target_stage=target.value, withdrawn_stages=withdrawn)
        self._open(ctx, target)

    def cancel(self, ctx: CommandContext) -> None:
        """撤销 (reason): not after energising."""
        self._check_open_case(ctx)
        self._check_reason(ctx, "a cancellation")
        if self.status is CaseStatus.ENERGISED:
            raise _reject("CANCEL_AFTER_ENERGISING", "an energised case cannot be cancelled")
        withdrawn = sorted(self.open_stages, key=lambda s: Stage(s).position)
        self._record(Case.CaseCancelled, ctx, withdrawn_stages=withdrawn)

    def change_priority(self, ctx: CommandContext, priority_tier: int, special_care: bool) -> None:
        """调整优先级 (reason): a new priority tier (0-3) or special-care flag for an open case."""
        self._check_open_case(ctx)
        self._check_reason(ctx, "a priority change")
        if priority_tier not in range(4):
            raise _reject("PRIORITY_TIER_RANGE", "priority tier must be 0 (normal) to 3")
        if (priority_tier, special_care) == (self.priority_tier, self.special_care):
            raise _reject(
                "PRIORITY_UNCHANGED",
                f"the case already has priority tier {priority_tier} and special care {special_care}",
            )
        self._record(
            Case.PriorityChanged,
            ctx,
            priority_tier=priority_tier,
            special_care=special_care,
            previous_priority_tier=self.priority_tier,
            previous_special_care=self.special_care,
        )

    def lodge_complaint(
        self,
        ctx: CommandContext,
        complaint_id: str,
        category: str,
        summary: str,
        concerns_stage: str | None = None,
        concerns_handler: Actor | None = None,
        department: str | None = None,
    ) -> None:
        """受理投诉 (at any time, also after completion): accountable to ``department``, else the department
        of the concerned stage, else customer service."""
        self._check_common(ctx)
        complaint_rules.check_lodging(
            _complaints(self), complaint_id, category, summary, concerns_stage, self.route.stages, department
        )
        held = {stage.value: owner.value for stage, owner in DEFAULT_OWNER.items()}
        held |= {stage: item.department.value for stage, item in self.open_stages.items()}
        self._record(
            Case.ComplaintLodged,
            ctx,
            complaint_id=complaint_id.strip(),
            category=category,
            summary=summary.strip(),
            concerns_stage=concerns_stage,
            concerns_handler=concerns_handler,
            department=complaint_rules.accountable_department(department, concerns_stage, held),
        )

    def assign_complaint(self, ctx: CommandContext, complaint_id: str, handler: Actor) -> None:
        """投诉派单: name the handler; a handler of another department moves the complaint there (reason)."""
        self._check_common(ctx)
        complaint_rules.check_assignment(_complaints(self), complaint_id, ctx.actor, handler, ctx.reason)
        self._record(
            Case.ComplaintAssigned,
            ctx,
            complaint_id=complaint_id,
            handler=handler,
            department=handler.department,
            previous_department=_complaints(self)[complaint_id]["department"],
        )

    def accept_complaint_resolution(self, ctx: CommandContext, complaint_id: str) -> None:
        """客户认可处理结果: the complaint is closed."""
        self._check_common(ctx)
        complaint_rules.check_customer_answer(_complaints(self), complaint_id)
        self._record(Case.ComplaintResolutionAccepted, ctx, complaint_id=complaint_id)

    def reject_complaint_resolution(self, ctx: CommandContext, complaint_id: str) -> None:
        """客户不认可处理结果 (reason): the complaint is reopened and its time limit starts again."""
        self._check_common(ctx)
        complaint_rules.check_customer_answer(_complaints(self), complaint_id)
        self._check_reason(ctx, "a refused resolution")
        department = _complaints(self)[complaint_id]["department"]
        self._record(Case.ComplaintResolutionRejected, ctx, complaint_id=complaint_id, department=department)
