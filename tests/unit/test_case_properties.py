"""Property tests: random command sequences never break the case's invariants.

Each example walks a case of one category, mostly taking the sample route's next step (so cases do get
energised) and otherwise a random command by a random department, valid or not.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import date
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from demo.samples import sample_walk
from domain.case import Case
from domain.case_values import CommandContext
from domain.commands import SubmitApplication
from domain.errors import RuleViolationError
from domain.hashchain import ChainLink, verify_chain
from domain.vocabulary import Actor, CaseStatus, Department, Stage
from tests.unit.case_builders import ROUTE_KINDS, START, Clock

DEPARTMENTS = [*Department.__members__, "CUSTOMER"]
Action = Callable[[Case, CommandContext], object]

RANDOM_ACTIONS: list[Action] = [
    lambda case, ctx: case.accept(ctx),
    lambda case, ctx: case.request_supplement(ctx, ["营业执照"]),
    lambda case, ctx: case.provide_supplement(ctx, ["营业执照"]),
    lambda case, ctx: case.assign_handler(ctx, Stage.SITE_SURVEY, ctx.actor),
    lambda case, ctx: case.reassign_handler(ctx, Stage.SUPPLY_PLAN, ctx.actor),
    lambda case, ctx: case.complete_site_survey(ctx, "ok"),
    lambda case, ctx: case.draft_plan(ctx, "方案"),
    lambda case, ctx: case.request_plan_reviews(ctx, ["PLANNING", "OPERATIONS", "DISPATCH"]),
    lambda case, ctx: case.approve_plan_review(ctx),
    lambda case, ctx: case.reject_plan_review(ctx),
    lambda case, ctx: case.reply_plan(ctx),
    lambda case, ctx: case.confirm_plan(ctx),
    lambda case, ctx: case.object_to_plan(ctx),
    lambda case, ctx: case.submit_design(ctx),
    lambda case, ctx: case.review_design(ctx, passed=False, issues=["缺图"]),
    lambda case, ctx: case.request_mid_inspection(ctx),
    lambda case, ctx: case.record_mid_inspection(ctx, passed=True, issues=[]),
    lambda case, ctx: case.report_completion(ctx),
    lambda case, ctx: case.inspect_completion(ctx, passed=False, rectifications=["整改"]),
    lambda case, ctx: case.inspect_completion(ctx, passed=True, rectifications=[]),
    lambda case, ctx: case.sign_contract(ctx, "HT-1"),
    lambda case, ctx: case.schedule_connection(ctx, date(2030, 1, 1)),
    lambda case, ctx: case.install_meter(ctx, "M-1"),
    lambda case, ctx: case.energise(ctx, "DD-1"),
    lambda case, ctx: case.archive(ctx),
    lambda case, ctx: case.record_follow_up(ctx, 4),
    lambda case, ctx: case.file_complaint(ctx, "TS-1", "慢"),
    lambda case, ctx: case.resolve_complaint(ctx, "TS-1", "已处理"),
    lambda case, ctx: case.pause_clock(ctx, "CUSTOMER_REQUESTED_DELAY"),
    lambda case, ctx: case.resume_clock(ctx),
    lambda case, ctx: case.escalate(ctx),
    lambda case, ctx: case.return_to_stage(ctx, Stage.SITE_SURVEY),
    lambda case, ctx: case.return_to_stage(ctx, Stage.SUPPLY_PLAN),
    lambda case, ctx: case.cancel(ctx),
]

steps = st.lists(
    st.tuples(
        st.integers(0, 99),
        st.integers(0, len(RANDOM_ACTIONS) - 1),
        st.sampled_from(DEPARTMENTS),
        st.sampled_from(["", "客户原因"]),
    ),
    max_size=70,
)
categories = st.sampled_from(ROUTE_KINDS)


def _check_invariants(case: Case, manager: Actor | None) -> None:
    assert case.status in CaseStatus
    for stage, item in case.accountable().items():
        assert isinstance(item.department, Department)
        assert item.stage is stage
        assert item.handler is None or item.handler.department == item.department.value
    if case.is_closed:
        assert not case.open_stages
    if manager is not None:
        assert case.customer_manager == manager
    if case.status in (CaseStatus.ENERGISED, CaseStatus.COMPLETED):
        passed = [Stage(s) for s in case.passed_stages]
        assert passed == sorted(passed, key=lambda s: s.position)
        before_connection = case.route.required_before(Stage.CONNECTION)
        assert set(before_connection) <= set(passed)


def _run(category: str, fast_track: bool, plan: list[tuple[int, int, str, str]]) -> Case:
    route = sample_walk(category, "YK-PROP", START, fast_track=fast_track)
    clock = Clock()
    submit = route[0]
    assert isinstance(submit, SubmitApplication)
    case = submit.create(clock.ctx(submit.actor))
    next_step, manager = 1, None
    for chance, action_index, department, reason in plan:
        if chance < 70 and next_step < len(route):
            command = route[next_step]
            next_step += 1
            actor, reason = command.actor, command.reason

            def action(c: Case, ctx: CommandContext, command: Any = command) -> object:
                return command.execute(c, ctx)
        else:
            actor = Actor(f"{department.lower()}-x", "随机", department)
            action = RANDOM_ACTIONS[action_index]
        before = copy.deepcopy(case.__dict__)
        try:
            action(case, clock.ctx(actor, reason))
        except RuleViolationError:
            assert case.__dict__ == before, "a rejected command changed the case"
            continue
        manager = manager or case.customer_manager
        _check_invariants(case, manager)
    return case


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(categories, steps)
def test_random_command_sequences_keep_every_invariant(category: tuple[str, bool], plan: list[Any]) -> None:
    case = _run(*category, plan)

    events = case.collect_events()
    links = [ChainLink(type(e).__qualname__, e.originator_version, e.timestamp, vars(e)) for e in events]
    assert verify_chain(case.id, links).intact
    replayed: Case | None = None
    for event in events:
        replayed = event.mutate(replayed)
    assert replayed == case


@settings(max_examples=30, deadline=None)
@given(categories)
def test_following_the_route_always_reaches_completion(category: tuple[str, bool]) -> None:
    case = _run(*category, [(0, 0, "CUSTOMER", "")] * 80)

    assert case.status is CaseStatus.COMPLETED
