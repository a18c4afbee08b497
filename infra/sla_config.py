"""Loads the SLA's data: the working-day calendar by year and the rule sets, from ``infra/data/`` and
optional directories/files named in the settings (a new year's holiday notice is a data file, not a
code release)."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import structlog

from domain.calendar import WorkingCalendar, YearData
from domain.sla_rules import DEFAULT_LEVELS, RuleBook, RuleSet
from infra.settings import Settings

log = structlog.get_logger("yekuo.sla")

DATA_DIR = Path(__file__).resolve().parent / "data"


@dataclass(frozen=True)
class SlaConfig:
    calendar: WorkingCalendar
    rules: RuleBook
    rule_set: str
    """The active rule set's name."""


def load_year(path: Path) -> YearData:
    raw = json.loads(path.read_text())
    return YearData(
        year=int(raw["year"]),
        source=raw["source"],
        holidays=frozenset(date.fromisoformat(d) for d in raw["holidays"]),
        makeup_workdays=frozenset(date.fromisoformat(d) for d in raw["makeup_workdays"]),
    )


def load_calendar(settings: Settings) -> WorkingCalendar:
    """Every year in ``infra/data/calendar`` and ``YEKUO_CALENDAR_DIR`` (which wins for a year in both)."""
    years: dict[int, YearData] = {}
    for directory in (DATA_DIR / "calendar", settings.calendar_dir):
        if directory is not None:
            for path in sorted(Path(directory).glob("*.json")):
                data = load_year(path)
                years[data.year] = data
    calendar = WorkingCalendar.build(years.values(), fallback_until=settings.calendar_fallback_until)
    if calendar.fallback_years:
        log.warning(
            "calendar fallback: these years count Monday-Friday only until their holiday notice is added",
            years=list(calendar.fallback_years),
            calendar_version=calendar.version,
        )
    return calendar


def load_rules(settings: Settings) -> RuleBook:
    sources = [DATA_DIR / "sla_rules.json"]
    if settings.sla_rules_file is not None:
        sources.append(Path(settings.sla_rules_file))
    rule_sets = []
    for source in sources:
        for raw in json.loads(source.read_text())["rule_sets"]:
            rule_sets.append(
                RuleSet(
                    name=raw["name"],
                    version=raw["version"],
                    effective_from=date.fromisoformat(raw["effective_from"]),
                    source=raw["source"],
                    stage_limits=raw["stage_limits"],
                    review_limit_days=raw.get("review_limit_days"),
                    whole_case_limits=raw.get("whole_case_limits"),
                    levels=tuple((level, float(share)) for level, share in raw.get("levels", []))
                    or DEFAULT_LEVELS,
                )
            )
    return RuleBook(rule_sets)


@functools.cache
def _cached(settings_json: str) -> SlaConfig:
    settings = Settings.model_validate_json(settings_json)
    rules = load_rules(settings)
    rules.in_force(settings.sla_rule_set, date(2000, 1, 1))  # an unknown name fails at start, not later
    return SlaConfig(load_calendar(settings), rules, settings.sla_rule_set)


def sla_config(settings: Settings | None = None) -> SlaConfig:
    """The SLA configuration of ``settings`` (default: from the environment), loaded once per process."""
    return _cached((settings or Settings()).model_dump_json())
