"""Which stages a case passes through (办理环节), who owns each by default, and who must co-sign a plan."""

from __future__ import annotations

from dataclasses import dataclass

from domain.vocabulary import Category, Department, Stage

FAST_TRACK_MAX_CAPACITY_KVA = 160.0
"""三零 fast track: residential and small low-voltage (小微企业) customers up to this capacity."""

DEFAULT_OWNER: dict[Stage, Department] = {
    Stage.APPLICATION: Department.CUSTOMER_SERVICE,
    Stage.SITE_SURVEY: Department.OPERATIONS,
    Stage.SUPPLY_PLAN: Department.MARKETING,
    Stage.DESIGN_REVIEW: Department.OPERATIONS,
    Stage.MID_INSPECTION: Department.OPERATIONS,
    Stage.COMPLETION_INSPECTION: Department.OPERATIONS,
    Stage.CONTRACT: Department.MARKETING,
    Stage.CONNECTION: Department.METERING,
    Stage.ARCHIVE: Department.CUSTOMER_SERVICE,
    Stage.FOLLOW_UP: Department.CUSTOMER_SERVICE,
}

HV_PLAN_REVIEWERS: frozenset[Department] = frozenset(
    {Department.PLANNING, Department.OPERATIONS, Department.DISPATCH}
)
"""High-voltage plans need the joint review (会签) of planning, operations and dispatch."""

CUSTOMER_REQUESTED_STAGES: frozenset[Stage] = frozenset(
    {Stage.DESIGN_REVIEW, Stage.MID_INSPECTION, Stage.COMPLETION_INSPECTION}
)
"""Stages the customer starts by a request (design submitted, inspection requested, completion reported)."""


@dataclass(frozen=True)
class Route:
    """The stages of one case in process order; ``optional`` ones happen only if the customer asks."""

    stages: tuple[Stage, ...]
    optional: frozenset[Stage]

    def includes(self, stage: Stage) -> bool:
        return stage in self.stages

    def is_required(self, stage: Stage) -> bool:
        return stage in self.stages and stage not in self.optional

    def required_before(self, stage: Stage) -> tuple[Stage, ...]:
        """Required stages that come before ``stage`` in this route."""
        return tuple(s for s in self.stages if s.position < stage.position and s not in self.optional)


def fast_track_eligible(category: Category, capacity_kva: float) -> bool:
    """三零 applies to residential customers and low-voltage small businesses within the capacity cap."""
    return category is Category.RESIDENTIAL or (
        category is Category.LV_NON_RESIDENTIAL and capacity_kva <= FAST_TRACK_MAX_CAPACITY_KVA
    )


def route_for(category: Category, *, important_customer: bool, fast_track: bool) -> Route:
    """The route of BRIEF §2.2 for a category; 三零 merges survey, plan and contract into acceptance."""
    tail = (Stage.CONNECTION, Stage.ARCHIVE, Stage.FOLLOW_UP)
    if fast_track:
        return Route((Stage.APPLICATION, *tail), frozenset())
    head = (Stage.APPLICATION, Stage.SITE_SURVEY, Stage.SUPPLY_PLAN)
    if category is Category.RESIDENTIAL:
        return Route((*head, Stage.CONTRACT, *tail), frozenset())
    customer_works = (Stage.DESIGN_REVIEW, Stage.MID_INSPECTION, Stage.COMPLETION_INSPECTION)
    optional = (
        frozenset()
        if category.is_high_voltage and important_customer
        else frozenset({Stage.DESIGN_REVIEW, Stage.MID_INSPECTION})
    )
    return Route((*head, *customer_works, Stage.CONTRACT, *tail), optional)
