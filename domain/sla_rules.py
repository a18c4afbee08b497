"""Time-limit rule sets (时限规则) as versioned data with effective dates (BRIEF §2.4).

A ``RuleSet`` gives, per category and utility stage, a limit in working days, the limit of each internal
parallel review, optional whole-case limits (acceptance → energised, customer time excluded) and the
warning levels. Several versions of one named set may exist; the version in force on the day a clock
starts applies to it, and every computed deadline records the set's name and version.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date

from domain.errors import DomainError

NOTICE, WARNING, BREACH = "NOTICE", "WARNING", "BREACH"
DEFAULT_LEVELS: tuple[tuple[str, float], ...] = ((NOTICE, 0.5), (WARNING, 0.8), (BREACH, 1.0))
"""Default warning levels: notice at 50 %, warning with escalation to the supervisor at 80 %, breach."""


class UnknownRuleSetError(DomainError):
    """No rule set of that name is in force on that date."""


@dataclass(frozen=True)
class RuleSet:
    """One version of a named rule set."""

    name: str
    version: str
    effective_from: date
    source: str
    stage_limits: Mapping[str, Mapping[str, int]]
    """category → stage → working days; a stage without a limit has no clock."""
    review_limit_days: int | None = None
    whole_case_limits: Mapping[str, int] | None = None
    """category, or ``category+EXTERNAL`` when external line works are needed → working days."""
    levels: tuple[tuple[str, float], ...] = DEFAULT_LEVELS
    complaint_limits: Mapping[str, int] | None = None
    """Complaint time limits (投诉处理时限) in working days: case category → days, ``DEFAULT`` for the
    others; a set without them starts no complaint clock."""

    def stage_limit(self, category: str, stage: str) -> int | None:
        return self.stage_limits.get(category, {}).get(stage)

    def whole_case_limit(self, category: str, external_line_works: bool) -> int | None:
        limits = self.whole_case_limits or {}
        if external_line_works and f"{category}+EXTERNAL" in limits:
            return limits[f"{category}+EXTERNAL"]
        return limits.get(category)

    def complaint_limit(self, category: str) -> int | None:
        limits = self.complaint_limits or {}
        return limits.get(category, limits.get("DEFAULT"))

    @property
    def label(self) -> str:
        return f"{self.name}@{self.version}"


class RuleBook:
    """Every version of every rule set; picks the version in force on a day."""

    def __init__(self, rule_sets: Iterable[RuleSet]) -> None:
        self._by_name: dict[str, list[RuleSet]] = {}
        for rule_set in rule_sets:
            self._by_name.setdefault(rule_set.name, []).append(rule_set)
        for versions in self._by_name.values():
            versions.sort(key=lambda r: r.effective_from)

    @property
    def names(self) -> list[str]:
        return sorted(self._by_name)

    def in_force(self, name: str, on: date) -> RuleSet:
        versions = self._by_name.get(name)
        if not versions:
            raise UnknownRuleSetError(f"no rule set {name!r}; known: {', '.join(self.names)}")
        current = [r for r in versions if r.effective_from <= on]
        # Before a set's first version, its earliest version applies (histories older than the data).
        return current[-1] if current else versions[0]
