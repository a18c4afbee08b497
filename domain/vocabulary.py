"""The words of the 业扩报装 domain: categories, stages, departments, channels, reason codes and actors.

Enums are ``StrEnum`` whose names equal their values, so they compare equal to (and hash like) the plain
strings stored in events and snapshots. ``member.label`` is the Chinese name for human-facing output.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class LabelledEnum(StrEnum):
    """A StrEnum whose members also know their Chinese label (``label``), kept in ``LABELS``."""

    @property
    def label(self) -> str:
        return LABELS.get(self, self.value)


class Category(LabelledEnum):
    """Customer category (客户类别); decides the stages and time limits of a case."""

    RESIDENTIAL = "RESIDENTIAL"
    LV_NON_RESIDENTIAL = "LV_NON_RESIDENTIAL"
    HV_SINGLE = "HV_SINGLE"
    HV_DUAL = "HV_DUAL"

    @property
    def is_high_voltage(self) -> bool:
        return self in (Category.HV_SINGLE, Category.HV_DUAL)


class Stage(LabelledEnum):
    """A stage (环节) of the case, in the order of the process."""

    APPLICATION = "APPLICATION"
    SITE_SURVEY = "SITE_SURVEY"
    SUPPLY_PLAN = "SUPPLY_PLAN"
    DESIGN_REVIEW = "DESIGN_REVIEW"
    MID_INSPECTION = "MID_INSPECTION"
    COMPLETION_INSPECTION = "COMPLETION_INSPECTION"
    CONTRACT = "CONTRACT"
    CONNECTION = "CONNECTION"
    ARCHIVE = "ARCHIVE"
    FOLLOW_UP = "FOLLOW_UP"

    @property
    def position(self) -> int:
        """Place in the process order (0 = APPLICATION)."""
        return _STAGE_POSITIONS[self]


_STAGE_POSITIONS = {stage: index for index, stage in enumerate(Stage)}


class Department(LabelledEnum):
    """A department of the utility that can be accountable for a stage or review."""

    CUSTOMER_SERVICE = "CUSTOMER_SERVICE"
    MARKETING = "MARKETING"
    PLANNING = "PLANNING"
    OPERATIONS = "OPERATIONS"
    METERING = "METERING"
    DISPATCH = "DISPATCH"


class Channel(LabelledEnum):
    """Where a command came from (受理渠道 and internal systems)."""

    ONLINE_APP = "ONLINE_APP"
    CALL_CENTRE_95598 = "CALL_CENTRE_95598"
    COUNTER = "COUNTER"
    STAFF_CONSOLE = "STAFF_CONSOLE"
    DESIGN_INSTITUTE = "DESIGN_INSTITUTE"
    CONTRACTOR = "CONTRACTOR"
    METERING_SYSTEM = "METERING_SYSTEM"
    SYSTEM = "SYSTEM"


class PauseReason(LabelledEnum):
    """Customer-caused reasons (客户原因) that may pause a time limit; nothing else may."""

    CUSTOMER_REQUESTED_DELAY = "CUSTOMER_REQUESTED_DELAY"
    CUSTOMER_SITE_NOT_READY = "CUSTOMER_SITE_NOT_READY"
    CUSTOMER_UNREACHABLE = "CUSTOMER_UNREACHABLE"
    CUSTOMER_FEES_UNPAID = "CUSTOMER_FEES_UNPAID"
    CUSTOMER_DOCUMENTS_PENDING = "CUSTOMER_DOCUMENTS_PENDING"


class CaseStatus(LabelledEnum):
    """Where a case stands as a whole."""

    APPLIED = "APPLIED"
    IN_PROGRESS = "IN_PROGRESS"
    ENERGISED = "ENERGISED"
    COMPLETED = "COMPLETED"
    CANCELLED = "CANCELLED"


class CustomerStep(LabelledEnum):
    """What the case awaits from the customer (客户环节): the customer's time, not the utility's."""

    PROVIDE_DOCUMENTS = "PROVIDE_DOCUMENTS"
    CONFIRM_PLAN = "CONFIRM_PLAN"
    CUSTOMER_WORKS = "CUSTOMER_WORKS"


class PlanPhase(LabelledEnum):
    """Progress of the supply plan (供电方案) inside the SUPPLY_PLAN stage."""

    AWAITING_SURVEY = "AWAITING_SURVEY"
    DRAFTING = "DRAFTING"
    DRAFTED = "DRAFTED"
    IN_REVIEW = "IN_REVIEW"
    APPROVED = "APPROVED"
    REPLIED = "REPLIED"
    CONFIRMED = "CONFIRMED"


@dataclass(frozen=True)
class Actor:
    """Who did something: a person (or system account) with the department they acted for."""

    person_id: str
    name: str
    department: str

    def __post_init__(self) -> None:
        for field_name in ("person_id", "name", "department"):
            if not str(getattr(self, field_name)).strip():
                raise ValueError(f"Actor.{field_name} must not be blank")

    @property
    def department_label(self) -> str:
        """The department's Chinese name where it is one of ours, else the raw value."""
        return (
            Department[self.department].label
            if self.department in Department.__members__
            else self.department
        )


LABELS: dict[LabelledEnum, str] = {
    Category.RESIDENTIAL: "居民",
    Category.LV_NON_RESIDENTIAL: "低压非居民",
    Category.HV_SINGLE: "高压单电源",
    Category.HV_DUAL: "高压双电源",
    Stage.APPLICATION: "业务受理",
    Stage.SITE_SURVEY: "现场勘查",
    Stage.SUPPLY_PLAN: "供电方案答复",
    Stage.DESIGN_REVIEW: "设计文件审查",
    Stage.MID_INSPECTION: "中间检查",
    Stage.COMPLETION_INSPECTION: "竣工检验",
    Stage.CONTRACT: "供用电合同签订",
    Stage.CONNECTION: "装表接电",
    Stage.ARCHIVE: "归档",
    Stage.FOLLOW_UP: "回访",
    Department.CUSTOMER_SERVICE: "客户服务中心",
    Department.MARKETING: "市场营销部",
    Department.PLANNING: "发展策划部",
    Department.OPERATIONS: "运维检修部",
    Department.METERING: "计量中心",
    Department.DISPATCH: "电力调度控制中心",
    Channel.ONLINE_APP: "网上国网",
    Channel.CALL_CENTRE_95598: "95598",
    Channel.COUNTER: "营业厅",
    Channel.STAFF_CONSOLE: "内部工作台",
    Channel.DESIGN_INSTITUTE: "设计单位",
    Channel.CONTRACTOR: "施工单位",
    Channel.METERING_SYSTEM: "计量自动化系统",
    Channel.SYSTEM: "系统",
    PauseReason.CUSTOMER_REQUESTED_DELAY: "客户申请暂缓",
    PauseReason.CUSTOMER_SITE_NOT_READY: "客户现场不具备条件",
    PauseReason.CUSTOMER_UNREACHABLE: "客户联系不上",
    PauseReason.CUSTOMER_FEES_UNPAID: "客户未缴纳费用",
    PauseReason.CUSTOMER_DOCUMENTS_PENDING: "客户资料待补充",
    CaseStatus.APPLIED: "已申请",
    CaseStatus.IN_PROGRESS: "办理中",
    CaseStatus.ENERGISED: "已送电",
    CaseStatus.COMPLETED: "已办结",
    CaseStatus.CANCELLED: "已撤销",
    CustomerStep.PROVIDE_DOCUMENTS: "补充资料",
    CustomerStep.CONFIRM_PLAN: "确认供电方案",
    CustomerStep.CUSTOMER_WORKS: "客户设计施工",
    PlanPhase.AWAITING_SURVEY: "待勘查",
    PlanPhase.DRAFTING: "拟定中",
    PlanPhase.DRAFTED: "已拟定",
    PlanPhase.IN_REVIEW: "会签中",
    PlanPhase.APPROVED: "会签通过",
    PlanPhase.REPLIED: "已答复",
    PlanPhase.CONFIRMED: "客户已确认",
}
"""The Chinese name of every member, for human-facing output."""
