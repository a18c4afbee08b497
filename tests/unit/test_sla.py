"""SLA clocks: golden cases hand-computed from the rule table and the 2025 calendar."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from domain.calendar import DAY_SECONDS, SHANGHAI
from domain.sla import Fact, SlaTracker, holder_at, read_clock
from domain.sla_rules import RuleBook
from infra.settings import Settings
from infra.sla_config import load_calendar, load_rules

CALENDAR = load_calendar(Settings())
RULES: RuleBook = load_rules(Settings())
HV_ROUTE = [
    "APPLICATION", "SITE_SURVEY", "SUPPLY_PLAN", "DESIGN_REVIEW", "MID_INSPECTION", "COMPLETION_INSPECTION",
    "CONTRACT", "CONNECTION", "ARCHIVE", "FOLLOW_UP",
]  # fmt: skip
RES_ROUTE = ["APPLICATION", "SITE_SURVEY", "SUPPLY_PLAN", "CONTRACT", "CONNECTION", "ARCHIVE", "FOLLOW_UP"]


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI)


class Story:
    """A case's SLA-relevant events, told in order."""

    def __init__(
        self, category: str, route: list[str], rule_set: str = "SGCC_INTERNAL", external: bool = False
    ):
        self.tracker = SlaTracker(RULES, rule_set, CALENDAR)
        self.event("2025-01-02 09:00", "ApplicationSubmitted", "CUSTOMER", category=category, route=route,
                   external_line_works=external)  # fmt: skip

    def event(self, when: str, kind: str, actor: str = "MARKETING", **payload: Any) -> Story:
        self.tracker.apply("case-1", Fact(kind, at(when), actor, payload))
        return self

    def clock(self, stage: str, kind: str = "STAGE", number: int = 1, department: str | None = None) -> dict:
        matching = [
            c for c in self.tracker.state["clocks"]
            if (c["kind"], c["stage"], c["department"]) == (kind, stage, department)
        ]  # fmt: skip
        return matching[number - 1]


def test_the_supply_plan_clock_runs_from_acceptance_over_national_day_and_is_attributed_at_each_level() -> (
    None
):
    story = Story("LV_NON_RESIDENTIAL", [*RES_ROUTE[:3], "COMPLETION_INSPECTION", *RES_ROUTE[3:]])
    story.event(
        "2025-09-26 15:00", "ApplicationAccepted", "CUSTOMER_SERVICE", contract_signed_at_acceptance=False
    )
    story.event("2025-09-26 15:00", "StageOpened", stage="SITE_SURVEY", department="OPERATIONS")
    story.event("2025-09-29 10:00", "HandlerAssigned", stage="SITE_SURVEY", handler={"name": "李振华"})
    story.event("2025-09-30 16:00", "StageCompleted", stage="SITE_SURVEY")
    story.event("2025-09-30 16:00", "StageOpened", stage="SUPPLY_PLAN", department="MARKETING")
    clock = story.clock("SUPPLY_PLAN")

    # SGCC_INTERNAL, LV: 7 working days after Fri 9-26: 9-28 (调休), 9-29, 9-30, 10-9, 10-10, 10-11 (调休), 10-13
    reading = read_clock(clock, CALENDAR, at("2025-10-09 12:00"))
    assert reading.deadline == at("2025-10-14 00:00")
    assert reading.elapsed_seconds == 3 * DAY_SECONDS + 12 * 3600
    assert reading.share == 3.5 / 7
    notice, warning, breach = reading.crossings
    assert (notice.at, notice.department) == (at("2025-10-09 12:00"), "MARKETING")
    assert warning.at == at("2025-10-11 14:24")  # 5.6 days: 9-28, 9-29, 9-30, 10-9, 10-10 and 0.6 of 10-11
    assert breach.at == at("2025-10-14 00:00")
    assert holder_at(clock, at("2025-09-29 23:00")) == ("OPERATIONS", "李振华")
    assert clock["holdings"][0][:2] == ["OPERATIONS", None] and clock["holdings"][1][:2] == [
        "OPERATIONS",
        "李振华",
    ]


def test_a_customer_pause_moves_the_deadline_by_the_working_time_paused() -> None:
    story = Story("RESIDENTIAL", RES_ROUTE)
    story.event("2025-01-24 10:00", "ApplicationAccepted", "CUSTOMER_SERVICE")
    story.event("2025-01-26 08:00", "ClockPaused", "OPERATIONS", reason_code="CUSTOMER_REQUESTED_DELAY")
    paused = read_clock(story.clock("SUPPLY_PLAN"), CALENDAR, at("2025-01-27 12:00"))
    story.event("2025-01-27 12:00", "ClockResumed", "OPERATIONS")
    resumed = read_clock(story.clock("SUPPLY_PLAN"), CALENDAR, at("2025-01-27 12:00"))

    # RES supply plan: 3 days after Fri 1-24 → 1-26 (调休), 1-27, (Spring Festival 1-28..2-4), 2-5 → 2-6 00:00.
    assert paused.deadline is None and paused.elapsed_seconds == 8 * 3600
    # 8 h of 1-26 counted, 16 h + 12 h paused (working time) → the deadline moves 28 h of working time.
    assert resumed.excluded_seconds == 28 * 3600
    assert resumed.deadline == at("2025-02-07 04:00")


def test_a_failed_inspection_stops_its_clock_and_the_next_request_starts_a_new_one() -> None:
    story = Story("HV_SINGLE", HV_ROUTE)
    story.event("2025-03-03 09:00", "CompletionReported", "CONTRACTOR")
    story.event("2025-03-12 17:00", "CompletionInspected", "OPERATIONS", passed=False)
    story.event("2025-03-20 09:00", "CompletionReported", "CONTRACTOR")
    story.event("2025-03-24 10:00", "CompletionInspected", "OPERATIONS", passed=True)

    first = read_clock(story.clock("COMPLETION_INSPECTION"), CALENDAR, at("2025-04-01 00:00"))
    second = read_clock(story.clock("COMPLETION_INSPECTION", number=2), CALENDAR, at("2025-04-01 00:00"))
    # HV single completion inspection: 5 days after Mon 3-3 → Mon 3-10 24:00; answered Wed 3-12: late.
    assert first.on_time is False and first.deadline == at("2025-03-11 00:00")
    assert first.crossings[2].at == at("2025-03-11 00:00")
    assert second.on_time is True and second.crossings[2].at is None


def test_parallel_reviews_have_their_own_clocks_and_a_rejection_keeps_the_plan_clock_running() -> None:
    story = Story("HV_DUAL", HV_ROUTE)
    story.event("2025-04-01 09:00", "ApplicationAccepted", "CUSTOMER_SERVICE")
    story.event(
        "2025-04-10 09:00", "PlanReviewsRequested", departments=["PLANNING", "OPERATIONS", "DISPATCH"]
    )
    story.event("2025-04-11 09:00", "PlanReviewApproved", "PLANNING", department="PLANNING")
    story.event("2025-04-16 09:00", "PlanReviewRejected", "DISPATCH", department="DISPATCH")

    planning = read_clock(
        story.clock("SUPPLY_PLAN", "REVIEW", department="PLANNING"), CALENDAR, at("2025-05-01")
    )
    dispatch = read_clock(
        story.clock("SUPPLY_PLAN", "REVIEW", department="DISPATCH"), CALENDAR, at("2025-05-01")
    )
    operations = story.clock("SUPPLY_PLAN", "REVIEW", department="OPERATIONS")
    # review limit 2 days after Thu 4-10: Fri 4-11, (Qingming was 4-4), Mon 4-14 → 4-15 00:00
    assert planning.on_time is True and dispatch.on_time is False
    assert dispatch.deadline == at("2025-04-15 00:00") and dispatch.crossings[2].department == "DISPATCH"
    assert operations["outcome"] == "WITHDRAWN"
    assert story.clock("SUPPLY_PLAN")["stopped_at"] is None  # rework is utility time


def test_a_return_keeps_the_running_clock_and_the_connection_clock_waits_for_contract_and_inspection() -> (
    None
):
    story = Story("HV_SINGLE", HV_ROUTE)
    story.event("2025-05-06 09:00", "CompletionReported", "CONTRACTOR")
    story.event("2025-05-07 09:00", "CompletionInspected", "OPERATIONS", passed=True)
    assert not [c for c in story.tracker.state["clocks"] if c["stage"] == "CONNECTION"]
    story.event("2025-05-08 09:00", "ContractSigned")
    story.event("2025-05-08 09:00", "StageOpened", stage="CONNECTION", department="METERING")
    story.event("2025-05-09 09:00", "CaseReturned", target_stage="CONTRACT", withdrawn_stages=["CONNECTION"])
    story.event("2025-05-09 09:00", "StageOpened", stage="CONTRACT", department="MARKETING")
    story.event("2025-05-12 09:00", "StageCompleted", stage="CONTRACT")
    story.event("2025-05-12 09:00", "StageOpened", stage="CONNECTION", department="METERING")
    story.event("2025-05-15 09:00", "Energised", "METERING")

    connection = read_clock(story.clock("CONNECTION"), CALENDAR, at("2025-06-01"))
    # 5 days after Thu 5-8: 5-9, 5-12, 5-13, 5-14, 5-15 → energised on the last day, on time
    assert connection.on_time is True and connection.deadline == at("2025-05-16 00:00")
    # The connection clock kept counting through the return; nobody held it while CONNECTION was
    # withdrawn (the contract stage is not one it covers).
    holders = [(h[0], h[2][:10], h[3][:10] if h[3] else None) for h in story.clock("CONNECTION")["holdings"]]
    assert holders == [("METERING", "2025-05-08", "2025-05-09"), ("METERING", "2025-05-12", "2025-05-15")]


def test_the_whole_case_clock_of_policy_2025_excludes_customer_time() -> None:
    story = Story("RESIDENTIAL", RES_ROUTE, rule_set="POLICY_2025")
    story.event("2025-06-09 09:00", "ApplicationAccepted", "CUSTOMER_SERVICE")
    story.event("2025-06-10 09:00", "CustomerStepAwaited", step="CONFIRM_PLAN")
    story.event("2025-06-13 09:00", "SupplyPlanConfirmed", "CUSTOMER")
    story.event("2025-06-16 12:00", "Energised", "METERING")

    whole = read_clock(story.clock("CASE", "CASE"), CALENDAR, at("2025-07-01"))
    # counted: 6-10 09:00 only (9 h), then customer time to 6-13 09:00, then 15 h + 6-14/15 weekend + 12 h
    assert whole.excluded_seconds == 3 * DAY_SECONDS
    assert whole.elapsed_seconds == 9 * 3600 + 15 * 3600 + 12 * 3600
    assert whole.on_time is True


def test_rule_sets_have_versions_in_force_by_date_and_each_clock_records_them() -> None:
    story = Story("HV_DUAL", HV_ROUTE, rule_set="REG_2009")
    story.event("2025-04-01 09:00", "ApplicationAccepted", "CUSTOMER_SERVICE")
    clock = story.clock("SUPPLY_PLAN")

    assert (clock["limit_days"], clock["rule_set"], clock["rule_version"]) == (45, "REG_2009", "2009.1")
    assert clock["calendar_version"] == CALENDAR.version
    assert (
        RULES.in_force("SGCC_INTERNAL", at("2025-01-01").date()).stage_limit("HV_DUAL", "SUPPLY_PLAN") == 30
    )
    assert RULES.in_force("REG_2009", at("2025-01-01").date()).review_limit_days is None


# ---- regressions of issue 17 (each failed before its fix) -----------------------------------------------


def test_a_long_pause_early_in_a_clock_moves_every_level_instant_by_all_its_paused_working_time() -> None:
    story = Story("HV_DUAL", HV_ROUTE)
    story.event("2025-03-03 09:00", "ApplicationAccepted", "CUSTOMER_SERVICE")
    story.event("2025-03-04 01:00", "ClockPaused", "OPERATIONS", reason_code="CUSTOMER_REQUESTED_DELAY")
    story.event("2025-04-30 12:00", "ClockResumed", "OPERATIONS")
    reading = read_clock(story.clock("SUPPLY_PLAN"), CALENDAR, at("2025-05-01 00:00"))

    # HV dual, 30 days. 1 h counted on 3-4, then paused to 4-30 12:00; the rest (30 d - 1 h) from there:
    # 4-30 has 12 h left, then 5-1..5-5 are holidays; 29 d - 13 h = 28 d 11 h after 4-30 24:00.
    paused = CALENDAR.working_seconds(at("2025-03-03 09:00"), at("2025-04-30 12:00")) - 3600
    assert reading.excluded_seconds == paused
    assert reading.deadline == CALENDAR.instant_after(at("2025-03-03 09:00"), 30 * DAY_SECONDS + paused)
    assert reading.crossings[0].at == CALENDAR.instant_after(
        at("2025-03-03 09:00"), 15 * DAY_SECONDS + paused
    )


def test_a_level_beyond_a_pause_still_open_has_no_instant_yet() -> None:
    story = Story("RESIDENTIAL", RES_ROUTE)
    story.event("2025-03-03 09:00", "ApplicationAccepted", "CUSTOMER_SERVICE")
    story.event("2025-03-04 01:00", "ClockPaused", "OPERATIONS", reason_code="CUSTOMER_REQUESTED_DELAY")
    reading = read_clock(story.clock("SUPPLY_PLAN"), CALENDAR, at("2025-04-30 12:00"))

    assert reading.elapsed_seconds == 3600
    assert reading.deadline is None and all(c.at is None for c in reading.crossings)


def test_a_return_before_the_plan_review_voids_the_pending_review_clocks() -> None:
    story = Story("HV_SINGLE", HV_ROUTE)
    story.event("2025-04-01 09:00", "ApplicationAccepted", "CUSTOMER_SERVICE")
    story.event(
        "2025-04-08 09:00", "PlanReviewsRequested", departments=["PLANNING", "OPERATIONS", "DISPATCH"]
    )
    story.event("2025-04-08 10:00", "PlanReviewApproved", "PLANNING", department="PLANNING")
    story.event(
        "2025-04-09 09:00", "CaseReturned", target_stage="SITE_SURVEY", withdrawn_stages=["SUPPLY_PLAN"]
    )

    reviews = [c for c in story.tracker.state["clocks"] if c["kind"] == "REVIEW"]
    assert [(c["department"], c["outcome"]) for c in reviews] == [
        ("PLANNING", "APPROVED"), ("OPERATIONS", "VOIDED"), ("DISPATCH", "VOIDED")
    ]  # fmt: skip
    assert all(c["stopped_at"] == at("2025-04-09 09:00").isoformat() for c in reviews[1:])
    assert story.clock("SUPPLY_PLAN")["stopped_at"] is None  # the plan clock runs on: rework


def test_an_answer_at_24_00_of_the_last_working_day_is_on_time_and_no_breach() -> None:
    story = Story("RESIDENTIAL", RES_ROUTE)
    story.event("2025-09-26 15:00", "ApplicationAccepted", "CUSTOMER_SERVICE")
    story.event("2025-10-01 00:00", "SupplyPlanReplied")  # 9-30 24:00, the deadline itself
    reading = read_clock(story.clock("SUPPLY_PLAN"), CALENDAR, at("2025-11-01 00:00"))

    assert reading.deadline == at("2025-10-01 00:00")
    assert reading.on_time is True and reading.crossings[2].at is None
    assert reading.crossings[1].at is not None  # the warning level was exceeded before


def test_the_whole_case_clock_ends_customer_time_when_the_customer_acts_during_a_pause() -> None:
    story = Story("LV_NON_RESIDENTIAL", [*RES_ROUTE[:3], "COMPLETION_INSPECTION", *RES_ROUTE[3:]],
                  rule_set="POLICY_2025", external=True)  # fmt: skip
    story.event("2025-06-09 09:00", "ApplicationAccepted", "CUSTOMER_SERVICE")
    story.event("2025-06-10 09:00", "CustomerStepAwaited", step="CUSTOMER_WORKS")
    story.event("2025-06-11 09:00", "ClockPaused", "OPERATIONS", reason_code="CUSTOMER_REQUESTED_DELAY")
    story.event("2025-06-12 09:00", "ClockResumed", "OPERATIONS")
    story.event("2025-06-13 09:00", "CompletionReported", "CONTRACTOR")
    whole = read_clock(story.clock("CASE", "CASE"), CALENDAR, at("2025-06-16 09:00"))

    # counted: 6-10 00:00-09:00, then customer time until 6-13 09:00, then 15 h + weekend + 9 h
    assert whole.excluded_seconds == 3 * DAY_SECONDS
    assert whole.elapsed_seconds == (9 + 15 + 9) * 3600


def test_utility_rework_after_a_return_is_not_customer_time_on_the_whole_case_clock() -> None:
    story = Story("RESIDENTIAL", RES_ROUTE, rule_set="POLICY_2025")
    story.event("2025-06-09 09:00", "ApplicationAccepted", "CUSTOMER_SERVICE")
    story.event("2025-06-10 09:00", "SupplyPlanReplied")
    story.event("2025-06-10 09:00", "CustomerStepAwaited", step="CONFIRM_PLAN")
    story.event("2025-06-11 09:00", "CaseReturned", target_stage="SITE_SURVEY", withdrawn_stages=[])
    whole = read_clock(story.clock("CASE", "CASE"), CALENDAR, at("2025-06-12 09:00"))

    assert whole.excluded_seconds == DAY_SECONDS  # 6-10 09:00 to 6-11 09:00 only
    assert whole.elapsed_seconds == (9 + 24) * 3600  # 6-10 00:00-09:00, then 6-11 09:00 to 6-12 09:00


def test_a_stop_half_a_second_after_the_deadline_is_late() -> None:
    story = Story("RESIDENTIAL", RES_ROUTE)
    story.event("2025-09-26 15:00", "ApplicationAccepted", "CUSTOMER_SERVICE")
    story.event("2025-10-09 00:00:00.500000", "SupplyPlanReplied")  # 10-1..10-8 are holidays
    reading = read_clock(story.clock("SUPPLY_PLAN"), CALENDAR, at("2025-11-01 00:00"))

    assert reading.on_time is False and reading.crossings[2].at == at("2025-10-01 00:00")
    assert reading.elapsed_microseconds == 3 * DAY_SECONDS * 1_000_000 + 500_000


def test_a_stage_re_requested_while_its_clock_still_runs_after_a_return_keeps_one_clock() -> None:
    story = Story("HV_SINGLE", HV_ROUTE)
    story.event("2025-05-06 09:00", "DesignSubmitted", "CUSTOMER")
    story.event("2025-05-06 09:00", "StageOpened", stage="DESIGN_REVIEW", department="OPERATIONS")
    story.event(
        "2025-05-07 09:00", "CaseReturned", target_stage="SUPPLY_PLAN", withdrawn_stages=["DESIGN_REVIEW"]
    )
    story.event("2025-05-09 09:00", "DesignSubmitted", "CUSTOMER")
    story.event("2025-05-12 09:00", "DesignReviewed", "OPERATIONS", passed=True)

    design = [c for c in story.tracker.state["clocks"] if c["stage"] == "DESIGN_REVIEW"]
    assert len(design) == 1 and design[0]["started_at"] == at("2025-05-06 09:00").isoformat()
    assert design[0]["outcome"] == "PASSED"
