"""Commands (imperative, one per use case) as plain data: what integrators, staff and the CLI ask of a case.

A command names its case by ``case_number`` and carries a client-supplied ``command_id`` that makes it
idempotent. ``execute`` applies it to the case; the application service loads, executes and saves.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from dataclasses import dataclass
from datetime import date, datetime
from typing import ClassVar
from uuid import NAMESPACE_URL, UUID, uuid5

from domain.case import Case
from domain.case_values import (
    ApplicationDetails,
    CommandContext,
    DeadlineRevision,
    SlaCrossing,
    check_command_text,
)
from domain.hashchain import canonical, field_names
from domain.parties import PartyQualification
from domain.vocabulary import Actor, Department, Stage

CASE_ID_NAMESPACE = uuid5(NAMESPACE_URL, "urn:yekuo:case")
COMMAND_ID_NAMESPACE = uuid5(NAMESPACE_URL, "urn:yekuo:command")


@functools.lru_cache(maxsize=65_536)  # several calls per command, for the same few cases
def case_id_for(case_number: str) -> UUID:
    """Case numbers are unique because a case's id is derived from its number."""
    return uuid5(CASE_ID_NAMESPACE, case_number)


def receipt_id_for(command_id: str) -> UUID:
    """Command ids are unique because a command's receipt id is derived from it."""
    return uuid5(COMMAND_ID_NAMESPACE, command_id)


@dataclass(frozen=True, kw_only=True)
class Command:
    """Base of every command: which case, which command, who, when, through what, why."""

    command_id: str
    case_number: str
    actor: Actor
    occurred_at: datetime
    channel: str
    reason: str = ""
    occurred_at_defaulted: bool = False
    """True when the caller gave no ``occurred_at`` and the door filled in the time it received the
    command. Such a time is not part of what the caller asked, so ``fingerprint`` leaves it out: a retry
    under the same command id is a repeat, not a different command reusing the id."""

    creates_case: ClassVar[bool] = False

    @property
    def command_type(self) -> str:
        return type(self).__name__

    @property
    def case_id(self) -> UUID:
        return case_id_for(self.case_number)

    def context(self, recorded_at: datetime) -> CommandContext:
        """Provenance of this command; refuses text fields that are too long or hold control characters."""
        for name in field_names(type(self)):
            if name not in _BASE_FIELDS:
                check_command_text(name, getattr(self, name))
        return CommandContext(
            actor=self.actor,
            occurred_at=self.occurred_at,
            recorded_at=recorded_at,
            channel=self.channel,
            command_id=self.command_id,
            reason=self.reason,
        )

    def fingerprint(self) -> str:
        """Hash of the command's content, to tell a repeat from a different command reusing an id."""
        fields = canonical(self)  # the fields' canonical forms; not ``asdict``, which deep-copies them
        if fields.pop("occurred_at_defaulted"):
            del fields["occurred_at"]
        content = {"type": self.command_type, **fields}
        encoded = json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(encoded.encode()).hexdigest()

    def execute(self, case: Case, ctx: CommandContext) -> None:
        """Apply this command to ``case``; raises ``RuleViolationError`` when a rule forbids it."""
        raise NotImplementedError(f"{self.command_type} must define execute()")


_BASE_FIELDS = frozenset(field.name for field in dataclasses.fields(Command))
"""Fields of ``Command`` itself; ``CommandContext`` checks their text."""


@dataclass(frozen=True, kw_only=True)
class SubmitApplication(Command):
    """提交用电申请."""

    application: ApplicationDetails
    creates_case: ClassVar[bool] = True

    def create(self, ctx: CommandContext) -> Case:
        return Case.submit(self.case_id, ctx, self.application)


@dataclass(frozen=True, kw_only=True)
class RequestSupplement(Command):
    """一次性告知补正资料."""

    missing_documents: tuple[str, ...]

    def execute(self, case: Case, ctx: CommandContext) -> None:
        case.request_supplement(ctx, list(self.missing_documents))


@dataclass(frozen=True, kw_only=True)
class ProvideSupplement(Command):
    """客户补正资料."""

    documents: tuple[str, ...]

    def execute(self, case: Case, ctx: CommandContext) -> None:
        case.provide_supplement(ctx, list(self.documents))


@dataclass(frozen=True, kw_only=True)
class AcceptApplication(Command):
    """受理."""

    def execute(self, case: Case, ctx: CommandContext) -> None:
        case.accept(ctx)


@dataclass(frozen=True, kw_only=True)
class AssignHandler(Command):
    """派工."""

    stage: Stage
    handler: Actor

    def execute(self, case: Case, ctx: CommandContext) -> None:
        case.assign_handler(ctx, Stage(self.stage), self.handler)


@dataclass(frozen=True, kw_only=True)
class ReassignHandler(Command):
    """改派 (reason)."""

    stage: Stage
    handler: Actor

    def execute(self, case: Case, ctx: CommandContext) -> None:
        case.reassign_handler(ctx, Stage(self.stage), self.handler)


@dataclass(frozen=True, kw_only=True)
class CompleteSiteSurvey(Command):
    """现场勘查完成."""

    findings: str

    def execute(self, case: Case, ctx: CommandContext) -> None:
        case.complete_site_survey(ctx, self.findings)


@dataclass(frozen=True, kw_only=True)
class DraftSupplyPlan(Command):
    """拟定供电方案."""

    summary: str

    def execute(self, case: Case, ctx: CommandContext) -> None:
        case.draft_plan(ctx, self.summary)


@dataclass(frozen=True, kw_only=True)
class RequestPlanReviews(Command):
    """发起会签."""

    departments: tuple[str, ...]

    def execute(self, case: Case, ctx: CommandContext) -> None:
        case.request_plan_reviews(ctx, list(self.departments))


@dataclass(frozen=True, kw_only=True)
class ApprovePlanReview(Command):
    """会签同意 (by the actor's department)."""

    def execute(self, case: Case, ctx: CommandContext) -> None:
        case.approve_plan_review(ctx)


@dataclass(frozen=True, kw_only=True)
class RejectPlanReview(Command):
    """会签不同意 (comments in reason)."""

    def execute(self, case: Case, ctx: CommandContext) -> None:
        case.reject_plan_review(ctx)


@dataclass(frozen=True, kw_only=True)
class ReplySupplyPlan(Command):
    """答复供电方案."""

    def execute(self, case: Case, ctx: CommandContext) -> None:
        case.reply_plan(ctx)


@dataclass(frozen=True, kw_only=True)
class ConfirmSupplyPlan(Command):
    """客户确认供电方案."""

    def execute(self, case: Case, ctx: CommandContext) -> None:
        case.confirm_plan(ctx)


@dataclass(frozen=True, kw_only=True)
class ObjectToSupplyPlan(Command):
    """客户对方案有异议 (reason)."""

    def execute(self, case: Case, ctx: CommandContext) -> None:
        case.object_to_plan(ctx)


@dataclass(frozen=True, kw_only=True)
class PartyCommand(Command):
    """A customer's request made through a registered party (设计单位/施工单位), named by ``party_id``.

    The application service reads the party's qualification and calls ``execute_for``; ``execute``
    alone knows no party, so a named party is then refused as not registered.
    """

    party_id: str = ""

    def fingerprint(self) -> str:
        """Without a party, the fingerprint such a command had before parties could be named, so that a
        command id sent before the upgrade and repeated after it is still recognised as a repeat."""
        if self.party_id:
            return super().fingerprint()
        fields = canonical(self)
        del fields["party_id"]
        content = {"type": self.command_type, **fields}
        encoded = json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(encoded.encode()).hexdigest()

    def execute(self, case: Case, ctx: CommandContext) -> None:
        self.execute_for(case, ctx, None)

    def execute_for(self, case: Case, ctx: CommandContext, party: PartyQualification | None) -> None:
        raise NotImplementedError(f"{self.command_type} must define execute_for()")


@dataclass(frozen=True, kw_only=True)
class SubmitDesign(PartyCommand):
    """设计文件报审."""

    def execute_for(self, case: Case, ctx: CommandContext, party: PartyQualification | None) -> None:
        case.submit_design(ctx, self.party_id, party)


@dataclass(frozen=True, kw_only=True)
class ReviewDesign(Command):
    """设计审查结论."""

    passed: bool
    issues: tuple[str, ...] = ()

    def execute(self, case: Case, ctx: CommandContext) -> None:
        case.review_design(ctx, passed=self.passed, issues=list(self.issues))


@dataclass(frozen=True, kw_only=True)
class RequestMidInspection(PartyCommand):
    """中间检查报验."""

    def execute_for(self, case: Case, ctx: CommandContext, party: PartyQualification | None) -> None:
        case.request_mid_inspection(ctx, self.party_id, party)


@dataclass(frozen=True, kw_only=True)
class RecordMidInspection(Command):
    """中间检查结论."""

    passed: bool
    issues: tuple[str, ...] = ()

    def execute(self, case: Case, ctx: CommandContext) -> None:
        case.record_mid_inspection(ctx, passed=self.passed, issues=list(self.issues))


@dataclass(frozen=True, kw_only=True)
class ReportCompletion(PartyCommand):
    """竣工报验."""

    def execute_for(self, case: Case, ctx: CommandContext, party: PartyQualification | None) -> None:
        case.report_completion(ctx, self.party_id, party)


@dataclass(frozen=True, kw_only=True)
class InspectCompletion(Command):
    """竣工检验结论."""

    passed: bool
    rectifications: tuple[str, ...] = ()

    def execute(self, case: Case, ctx: CommandContext) -> None:
        case.inspect_completion(ctx, passed=self.passed, rectifications=list(self.rectifications))


@dataclass(frozen=True, kw_only=True)
class SignContract(Command):
    """签订供用电合同."""

    contract_number: str

    def execute(self, case: Case, ctx: CommandContext) -> None:
        case.sign_contract(ctx, self.contract_number)


@dataclass(frozen=True, kw_only=True)
class ScheduleConnection(Command):
    """预约装表接电."""

    scheduled_for: date

    def execute(self, case: Case, ctx: CommandContext) -> None:
        case.schedule_connection(ctx, self.scheduled_for)


@dataclass(frozen=True, kw_only=True)
class InstallMeter(Command):
    """装表."""

    meter_id: str

    def execute(self, case: Case, ctx: CommandContext) -> None:
        case.install_meter(ctx, self.meter_id)


@dataclass(frozen=True, kw_only=True)
class Energise(Command):
    """送电."""

    dispatch_order: str | None = None

    def execute(self, case: Case, ctx: CommandContext) -> None:
        case.energise(ctx, self.dispatch_order)


@dataclass(frozen=True, kw_only=True)
class ArchiveCase(Command):
    """归档."""

    def execute(self, case: Case, ctx: CommandContext) -> None:
        case.archive(ctx)


@dataclass(frozen=True, kw_only=True)
class RecordFollowUp(Command):
    """回访."""

    score: int
    comments: str = ""

    def execute(self, case: Case, ctx: CommandContext) -> None:
        case.record_follow_up(ctx, self.score, self.comments)


@dataclass(frozen=True, kw_only=True)
class FileComplaint(Command):
    """登记投诉."""

    complaint_id: str
    summary: str

    def execute(self, case: Case, ctx: CommandContext) -> None:
        case.file_complaint(ctx, self.complaint_id, self.summary)


@dataclass(frozen=True, kw_only=True)
class ResolveComplaint(Command):
    """投诉办结."""

    complaint_id: str
    resolution: str

    def execute(self, case: Case, ctx: CommandContext) -> None:
        case.resolve_complaint(ctx, self.complaint_id, self.resolution)


@dataclass(frozen=True, kw_only=True)
class PauseClock(Command):
    """暂停时限 (customer-caused reason code)."""

    reason_code: str

    def execute(self, case: Case, ctx: CommandContext) -> None:
        case.pause_clock(ctx, self.reason_code)


@dataclass(frozen=True, kw_only=True)
class ResumeClock(Command):
    """恢复时限."""

    def execute(self, case: Case, ctx: CommandContext) -> None:
        case.resume_clock(ctx)


@dataclass(frozen=True, kw_only=True)
class EscalateCase(Command):
    """督办 (reason)."""

    def execute(self, case: Case, ctx: CommandContext) -> None:
        case.escalate(ctx)


@dataclass(frozen=True, kw_only=True)
class AcknowledgeNotification(Command):
    """确认通知: the actor's department has read the notification."""

    notification_id: str

    def execute(self, case: Case, ctx: CommandContext) -> None:
        case.acknowledge_notification(ctx, self.notification_id)


@dataclass(frozen=True, kw_only=True)
class EscalateNotification(Command):
    """督办未确认的通知: send it to the department's supervisor (reason)."""

    notification_id: str
    department: str

    def execute(self, case: Case, ctx: CommandContext) -> None:
        case.escalate_notification(ctx, self.notification_id, Department(self.department))


@dataclass(frozen=True, kw_only=True)
class RecordSlaCrossing(Command):
    """记录时限预警/超期 (issued by the SLA clock; the command id names the clock and level)."""

    crossing: SlaCrossing

    def execute(self, case: Case, ctx: CommandContext) -> None:
        case.record_sla_crossing(ctx, self.crossing)


@dataclass(frozen=True, kw_only=True)
class ReviseSlaDeadline(Command):
    """调整时限截止日 (issued by the SLA clock when a loaded holiday notice moves a deadline; the command id
    names the clock and the calendar version)."""

    revision: DeadlineRevision

    def execute(self, case: Case, ctx: CommandContext) -> None:
        case.revise_sla_deadline(ctx, self.revision)


@dataclass(frozen=True, kw_only=True)
class ReturnToStage(Command):
    """退回 (reason)."""

    target_stage: Stage

    def execute(self, case: Case, ctx: CommandContext) -> None:
        case.return_to_stage(ctx, Stage(self.target_stage))


@dataclass(frozen=True, kw_only=True)
class CancelCase(Command):
    """撤销 (reason)."""

    def execute(self, case: Case, ctx: CommandContext) -> None:
        case.cancel(ctx)


@dataclass(frozen=True, kw_only=True)
class ChangePriority(Command):
    """调整优先级 (reason): priority tier 0 (normal) to 3 and the special-care flag (特殊关怀)."""

    priority_tier: int
    special_care: bool = False

    def execute(self, case: Case, ctx: CommandContext) -> None:
        case.change_priority(ctx, self.priority_tier, self.special_care)


# ---- complaints (投诉) -------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class LodgeComplaint(Command):
    """受理投诉: category, text, optionally the stage and handler it concerns and the accountable
    department (default: the concerned stage's department, else customer service)."""

    complaint_id: str
    category: str
    summary: str
    concerns_stage: Stage | None = None
    concerns_handler: Actor | None = None
    department: str | None = None

    def execute(self, case: Case, ctx: CommandContext) -> None:
        case.lodge_complaint(
            ctx,
            self.complaint_id,
            self.category,
            self.summary,
            Stage(self.concerns_stage).value if self.concerns_stage else None,
            self.concerns_handler,
            self.department,
        )


@dataclass(frozen=True, kw_only=True)
class AssignComplaint(Command):
    """投诉派单: the handler; one of another department moves the complaint there (reason)."""

    complaint_id: str
    handler: Actor

    def execute(self, case: Case, ctx: CommandContext) -> None:
        case.assign_complaint(ctx, self.complaint_id, self.handler)


@dataclass(frozen=True, kw_only=True)
class AcceptComplaintResolution(Command):
    """客户认可投诉处理结果."""

    complaint_id: str

    def execute(self, case: Case, ctx: CommandContext) -> None:
        case.accept_complaint_resolution(ctx, self.complaint_id)


@dataclass(frozen=True, kw_only=True)
class RejectComplaintResolution(Command):
    """客户不认可投诉处理结果 (reason): reopened."""

    complaint_id: str

    def execute(self, case: Case, ctx: CommandContext) -> None:
        case.reject_complaint_resolution(ctx, self.complaint_id)


COMMAND_TYPES: dict[str, type[Command]] = {
    cls.__name__: cls
    for cls in (
        SubmitApplication,
        RequestSupplement,
        ProvideSupplement,
        AcceptApplication,
        AssignHandler,
        ReassignHandler,
        CompleteSiteSurvey,
        DraftSupplyPlan,
        RequestPlanReviews,
        ApprovePlanReview,
        RejectPlanReview,
        ReplySupplyPlan,
        ConfirmSupplyPlan,
        ObjectToSupplyPlan,
        SubmitDesign,
        ReviewDesign,
        RequestMidInspection,
        RecordMidInspection,
        ReportCompletion,
        InspectCompletion,
        SignContract,
        ScheduleConnection,
        InstallMeter,
        Energise,
        ArchiveCase,
        RecordFollowUp,
        FileComplaint,
        ResolveComplaint,
        PauseClock,
        ResumeClock,
        EscalateCase,
        AcknowledgeNotification,
        EscalateNotification,
        RecordSlaCrossing,
        ReviseSlaDeadline,
        ReturnToStage,
        CancelCase,
        ChangePriority,
        LodgeComplaint,
        AssignComplaint,
        AcceptComplaintResolution,
        RejectComplaintResolution,
    )
}
"""Every command by name: the explicit registry used by the CLI, the HTTP API and intake."""
