"""The words of the 业扩报装 domain: categories, stages, departments, channels, reason codes and actors.

Enums are ``StrEnum`` whose names equal their values, so they compare equal to (and hash like) the plain
strings stored in events and snapshots. Each member carries its Chinese label for human-facing output.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class LabelledEnum(StrEnum):
    """A StrEnum whose members also know their Chinese label (``label``)."""

    label: str

    def __new__(cls, value: str, label: str) -> LabelledEnum:
        member = str.__new__(cls, value)
        member._value_ = value
        member.label = label
        return member


class Category(LabelledEnum):
    """Customer category (客户类别); decides the stages and time limits of a case."""

    RESIDENTIAL = ("RESIDENTIAL", "居民")
    LV_NON_RESIDENTIAL = ("LV_NON_RESIDENTIAL", "低压非居民")
    HV_SINGLE = ("HV_SINGLE", "高压单电源")
    HV_DUAL = ("HV_DUAL", "高压双电源")

    @property
    def is_high_voltage(self) -> bool:
        return self in (Category.HV_SINGLE, Category.HV_DUAL)


class Stage(LabelledEnum):
    """A stage (环节) of the case, in the order of the process."""

    APPLICATION = ("APPLICATION", "业务受理")
    SITE_SURVEY = ("SITE_SURVEY", "现场勘查")
    SUPPLY_PLAN = ("SUPPLY_PLAN", "供电方案答复")
    DESIGN_REVIEW = ("DESIGN_REVIEW", "设计文件审查")
    MID_INSPECTION = ("MID_INSPECTION", "中间检查")
    COMPLETION_INSPECTION = ("COMPLETION_INSPECTION", "竣工检验")
    CONTRACT = ("CONTRACT", "供用电合同签订")
    CONNECTION = ("CONNECTION", "装表接电")
    ARCHIVE = ("ARCHIVE", "归档")
    FOLLOW_UP = ("FOLLOW_UP", "回访")

    @property
    def position(self) -> int:
        """Place in the process order (0 = APPLICATION)."""
        return list(Stage).index(self)


class Department(LabelledEnum):
    """A department of the utility that can be accountable for a stage or review."""

    CUSTOMER_SERVICE = ("CUSTOMER_SERVICE", "客户服务中心")
    MARKETING = ("MARKETING", "市场营销部")
    PLANNING = ("PLANNING", "发展策划部")
    OPERATIONS = ("OPERATIONS", "运维检修部")
    METERING = ("METERING", "计量中心")
    DISPATCH = ("DISPATCH", "电力调度控制中心")


class Channel(LabelledEnum):
    """Where a command came from (受理渠道 and internal systems)."""

    ONLINE_APP = ("ONLINE_APP", "网上国网")
    CALL_CENTRE_95598 = ("CALL_CENTRE_95598", "95598")
    COUNTER = ("COUNTER", "营业厅")
    STAFF_CONSOLE = ("STAFF_CONSOLE", "内部工作台")
    DESIGN_INSTITUTE = ("DESIGN_INSTITUTE", "设计单位")
    CONTRACTOR = ("CONTRACTOR", "施工单位")
    METERING_SYSTEM = ("METERING_SYSTEM", "计量自动化系统")
    SYSTEM = ("SYSTEM", "系统")


class PauseReason(LabelledEnum):
    """Customer-caused reasons (客户原因) that may pause a time limit; nothing else may."""

    CUSTOMER_REQUESTED_DELAY = ("CUSTOMER_REQUESTED_DELAY", "客户申请暂缓")
    CUSTOMER_SITE_NOT_READY = ("CUSTOMER_SITE_NOT_READY", "客户现场不具备条件")
    CUSTOMER_UNREACHABLE = ("CUSTOMER_UNREACHABLE", "客户联系不上")
    CUSTOMER_FEES_UNPAID = ("CUSTOMER_FEES_UNPAID", "客户未缴纳费用")
    CUSTOMER_DOCUMENTS_PENDING = ("CUSTOMER_DOCUMENTS_PENDING", "客户资料待补充")


class CaseStatus(LabelledEnum):
    """Where a case stands as a whole."""

    APPLIED = ("APPLIED", "已申请")
    IN_PROGRESS = ("IN_PROGRESS", "办理中")
    ENERGISED = ("ENERGISED", "已送电")
    COMPLETED = ("COMPLETED", "已办结")
    CANCELLED = ("CANCELLED", "已撤销")


class CustomerStep(LabelledEnum):
    """What the case waits for from the customer (客户环节): time that is the customer's, not the utility's."""

    PROVIDE_DOCUMENTS = ("PROVIDE_DOCUMENTS", "补充资料")
    CONFIRM_PLAN = ("CONFIRM_PLAN", "确认供电方案")
    CUSTOMER_WORKS = ("CUSTOMER_WORKS", "客户设计施工")


class PlanPhase(LabelledEnum):
    """Progress of the supply plan (供电方案) inside the SUPPLY_PLAN stage."""

    AWAITING_SURVEY = ("AWAITING_SURVEY", "待勘查")
    DRAFTING = ("DRAFTING", "拟定中")
    DRAFTED = ("DRAFTED", "已拟定")
    IN_REVIEW = ("IN_REVIEW", "会签中")
    APPROVED = ("APPROVED", "会签通过")
    REPLIED = ("REPLIED", "已答复")
    CONFIRMED = ("CONFIRMED", "客户已确认")


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
        return Department[self.department].label if self.department in Department.__members__ else self.department
