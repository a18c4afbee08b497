"""Realistic sample cases: the commands that walk a case of each category through every stage of its route.

Used by ``yekuo demo``, the benchmarks and the tests. Command ids are derived from the case number and
the step, so a walk replayed against the same store is idempotent.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from domain.case_values import ApplicationDetails
from domain.commands import (
    AcceptApplication,
    ApprovePlanReview,
    ArchiveCase,
    AssignHandler,
    Command,
    CompleteSiteSurvey,
    ConfirmSupplyPlan,
    DraftSupplyPlan,
    Energise,
    EscalateCase,
    InspectCompletion,
    InstallMeter,
    PauseClock,
    ProvideSupplement,
    RecordFollowUp,
    RecordMidInspection,
    RejectPlanReview,
    ReplySupplyPlan,
    ReportCompletion,
    RequestMidInspection,
    RequestPlanReviews,
    RequestSupplement,
    ResumeClock,
    ReviewDesign,
    ScheduleConnection,
    SignContract,
    SubmitApplication,
    SubmitDesign,
)
from domain.vocabulary import Actor, Stage

CATEGORIES_FOR_DEMO: tuple[tuple[str, bool], ...] = (
    ("RESIDENTIAL", False),
    ("LV_NON_RESIDENTIAL", True),
    ("LV_NON_RESIDENTIAL", False),
    ("HV_SINGLE", False),
    ("HV_DUAL", False),
)
"""(category, 三零 fast track) pairs that the demo walks."""

DISPATCHERS = {
    "CUSTOMER_SERVICE": Actor("cs-0101", "林晓燕", "CUSTOMER_SERVICE"),
    "OPERATIONS": Actor("op-0201", "陈建国", "OPERATIONS"),
    "MARKETING": Actor("mk-0301", "黄丽华", "MARKETING"),
    "PLANNING": Actor("pl-0401", "吴志强", "PLANNING"),
    "DISPATCH": Actor("dd-0501", "郑海涛", "DISPATCH"),
    "METERING": Actor("mt-0601", "刘明", "METERING"),
}
"""Who acts for each department (and assigns its handlers)."""

HANDLERS = {
    "CUSTOMER_SERVICE": Actor("cs-0107", "王佳怡", "CUSTOMER_SERVICE"),
    "OPERATIONS": Actor("op-0214", "李振华", "OPERATIONS"),
    "MARKETING": Actor("mk-0322", "张伟", "MARKETING"),
    "METERING": Actor("mt-0618", "赵磊", "METERING"),
}
"""The named handler (责任人) each department puts on a stage."""

DESIGN_INSTITUTE = Actor("di-0031", "闽北电力设计院", "DESIGN_INSTITUTE")
CONTRACTOR = Actor("ct-0057", "武夷山宏达电力工程有限公司", "CONTRACTOR")


@dataclass(frozen=True)
class CustomerProfile:
    """What a category's typical applicant looks like."""

    name: str
    customer_ref: str
    phone: str
    id_number: str
    address: str
    capacity_kva: float
    supply_voltage: str
    important: bool = False
    external_line_works: bool = False


PROFILES = {
    "RESIDENTIAL": CustomerProfile(
        "王秀英",
        "C-350782-01",
        "13905990123",
        "350782196805120027",
        "福建省武夷山市崇安街道柳营路18号",
        8.0,
        "220V",
    ),
    "LV_NON_RESIDENTIAL": CustomerProfile(
        "武夷山市岩茶轩茶业有限公司",
        "C-350782-02",
        "13859912345",
        "91350782MA2XY0123W",
        "福建省武夷山市星村镇红星村茶厂路6号",
        100.0,
        "380V",
    ),
    "HV_SINGLE": CustomerProfile(
        "武夷山旅游度假酒店有限公司",
        "C-350782-03",
        "05995251234",
        "91350782MA31ABCD5F",
        "福建省武夷山市国家旅游度假区大王峰路9号",
        800.0,
        "10kV",
        external_line_works=True,
    ),
    "HV_DUAL": CustomerProfile(
        "南平市第一医院武夷山分院",
        "C-350782-04",
        "05995309876",
        "12350700MB01234561",
        "福建省武夷山市新丰街道五九北路1号",
        4000.0,
        "10kV",
        important=True,
        external_line_works=True,
    ),
}


@dataclass
class _Walk:
    """Builds one case's commands, advancing a working-hours clock."""

    case_number: str
    now: datetime
    commands: list[Command] = field(default_factory=list)

    def advance(self, hours: float) -> datetime:
        moment = self.now + timedelta(hours=hours)
        while moment.hour >= 18 or moment.hour < 9 or moment.weekday() >= 5:
            moment = (moment + timedelta(days=1)).replace(hour=9, minute=30)
        self.now = moment
        return moment

    def add(
        self,
        command_type: type[Command],
        actor: Actor,
        channel: str = "STAFF_CONSOLE",
        *,
        hours: float = 3,
        reason: str = "",
        **fields: Any,
    ) -> None:
        self.commands.append(
            command_type(
                command_id=f"{self.case_number}-{len(self.commands) + 1:03d}",
                case_number=self.case_number,
                actor=actor,
                occurred_at=self.advance(hours),
                channel=channel,
                reason=reason,
                **fields,
            )
        )

    def staff(self, command_type: type[Command], department: str, **kwargs: Any) -> None:
        self.add(command_type, DISPATCHERS[department], **kwargs)

    def assign(self, stage: Stage, department: str) -> None:
        self.staff(AssignHandler, department, hours=1, stage=stage, handler=HANDLERS[department])


def _application(category: str, case_number: str, fast_track: bool) -> ApplicationDetails:
    profile = PROFILES[category]
    capacity = 50.0 if fast_track and category == "LV_NON_RESIDENTIAL" else profile.capacity_kva
    return ApplicationDetails(
        case_number=case_number,
        category=category,
        customer_ref=profile.customer_ref,
        customer_name=profile.name,
        contact_phone=profile.phone,
        id_number=profile.id_number,
        address=profile.address,
        capacity_kva=capacity,
        supply_voltage=profile.supply_voltage,
        external_line_works=profile.external_line_works and not fast_track,
        important_customer=profile.important,
        priority_tier=2 if profile.important else 0,
        special_care=category == "RESIDENTIAL",
        fast_track=fast_track,
        documents=("身份证明", "用电地址产权证明"),
    )


def _applicant(category: str) -> Actor:
    profile = PROFILES[category]
    return Actor(profile.customer_ref, profile.name, "CUSTOMER")


def _acceptance(walk: _Walk, category: str, fast_track: bool) -> None:
    walk.add(
        SubmitApplication,
        _applicant(category),
        "ONLINE_APP",
        hours=0,
        application=_application(category, walk.case_number, fast_track),
    )
    if category != "RESIDENTIAL":
        missing = (
            ("营业执照", "法定代表人授权委托书")
            if not category.startswith("HV")
            else ("营业执照", "用电设备清单", "项目批复文件")
        )
        walk.staff(RequestSupplement, "CUSTOMER_SERVICE", hours=1, missing_documents=missing)
        walk.add(ProvideSupplement, _applicant(category), "ONLINE_APP", hours=20, documents=missing)
    walk.staff(AcceptApplication, "CUSTOMER_SERVICE", hours=1)


def _survey_and_plan(walk: _Walk, category: str) -> None:
    walk.assign(Stage.SITE_SURVEY, "OPERATIONS")
    walk.staff(CompleteSiteSurvey, "OPERATIONS", hours=20, findings="现场具备接入条件，就近T接10kV线路")
    walk.assign(Stage.SUPPLY_PLAN, "MARKETING")
    walk.staff(
        DraftSupplyPlan, "MARKETING", hours=6, summary=f"{PROFILES[category].supply_voltage} 供电方案初稿"
    )
    if category.startswith("HV"):
        reviewers = ("PLANNING", "OPERATIONS", "DISPATCH")
        walk.staff(RequestPlanReviews, "MARKETING", hours=1, departments=reviewers)
        walk.staff(RejectPlanReview, "DISPATCH", hours=8, reason="接入点负载率偏高，建议改接相邻线路")
        walk.staff(DraftSupplyPlan, "MARKETING", hours=6, summary="改接相邻10kV线路的供电方案")
        walk.staff(RequestPlanReviews, "MARKETING", hours=1, departments=reviewers)
        for department in reviewers:
            walk.staff(ApprovePlanReview, department, hours=4, reason="同意")
    elif category == "LV_NON_RESIDENTIAL":
        walk.staff(RequestPlanReviews, "MARKETING", hours=1, departments=("OPERATIONS",))
        walk.staff(ApprovePlanReview, "OPERATIONS", hours=4, reason="同意")
    walk.staff(ReplySupplyPlan, "MARKETING", hours=2)
    walk.add(ConfirmSupplyPlan, _applicant(category), "ONLINE_APP", hours=16)


def _customer_works(walk: _Walk, category: str) -> None:
    """Design review, mid-inspection and completion inspection, with the realistic detours."""
    if category in ("HV_DUAL", "LV_NON_RESIDENTIAL"):  # required for the important HV customer, chosen by LV
        walk.add(SubmitDesign, DESIGN_INSTITUTE, "DESIGN_INSTITUTE", hours=40)
        walk.assign(Stage.DESIGN_REVIEW, "OPERATIONS")
        walk.staff(ReviewDesign, "OPERATIONS", hours=16, passed=True)
    if category == "HV_DUAL":
        walk.add(RequestMidInspection, CONTRACTOR, "CONTRACTOR", hours=60)
        walk.staff(RecordMidInspection, "OPERATIONS", hours=8, passed=True)
        walk.staff(EscalateCase, "MARKETING", hours=2, reason="重要客户（医院）送电节点督办")
    walk.add(ReportCompletion, CONTRACTOR, "CONTRACTOR", hours=40)
    walk.assign(Stage.COMPLETION_INSPECTION, "OPERATIONS")
    if category == "HV_SINGLE":
        walk.staff(
            PauseClock,
            "OPERATIONS",
            hours=2,
            reason_code="CUSTOMER_SITE_NOT_READY",
            reason="客户配电房未完成清理，暂不具备检验条件",
        )
        walk.staff(ResumeClock, "OPERATIONS", hours=20, reason="客户已完成整改，恢复计时")
    if category == "LV_NON_RESIDENTIAL":
        walk.staff(
            InspectCompletion,
            "OPERATIONS",
            hours=8,
            passed=False,
            rectifications=("计量箱接地电阻超标", "进线电缆未挂标识牌"),
        )
        walk.add(ReportCompletion, CONTRACTOR, "CONTRACTOR", hours=24)
    walk.staff(InspectCompletion, "OPERATIONS", hours=8, passed=True)


def _connection_and_close(walk: _Walk, category: str, fast_track: bool) -> None:
    if not fast_track:
        walk.assign(Stage.CONTRACT, "MARKETING")
        walk.staff(SignContract, "MARKETING", hours=6, contract_number=f"HT-{walk.case_number}")
    walk.assign(Stage.CONNECTION, "METERING")
    walk.staff(
        ScheduleConnection, "METERING", hours=1, scheduled_for=date.fromordinal(walk.now.toordinal() + 4)
    )
    walk.add(
        InstallMeter,
        DISPATCHERS["METERING"],
        "METERING_SYSTEM",
        hours=20,
        meter_id=f"3350{zlib.crc32(walk.case_number.encode()) % 10**8:08d}",
    )
    dispatch_order = f"DD-{walk.case_number}" if category.startswith("HV") else None
    walk.staff(Energise, "METERING", hours=2, dispatch_order=dispatch_order)
    walk.staff(ArchiveCase, "CUSTOMER_SERVICE", hours=6)
    walk.staff(RecordFollowUp, "CUSTOMER_SERVICE", hours=30, score=5, comments="办电速度快，服务态度好")


def sample_walk(
    category: str, case_number: str, start: datetime, *, fast_track: bool = False
) -> list[Command]:
    """Every command of one realistic case of ``category``, from application to follow-up."""
    walk = _Walk(case_number, start)
    _acceptance(walk, category, fast_track)
    if not fast_track:
        _survey_and_plan(walk, category)
        if category != "RESIDENTIAL":
            _customer_works(walk, category)
    _connection_and_close(walk, category, fast_track)
    return walk.commands
