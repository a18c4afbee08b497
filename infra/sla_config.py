"""Loads the SLA's data: the working-day calendar by year and the rule sets, from ``infra/data/`` and the
installation's calendar store (``Settings.calendar_store``), where ``yekuo calendar add`` puts a new
year's holiday notice — a data file, not a code release. Every process sees an added year within
``RELOAD_SECONDS`` (the store is looked at again), so the SLA clock can record the deadlines it moves."""

from __future__ import annotations

import functools
import hashlib
import json
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import structlog

from domain.calendar import CalendarDataError, WorkingCalendar, YearData
from domain.sla_rules import DEFAULT_LEVELS, RuleBook, RuleSet
from infra.settings import Settings

log = structlog.get_logger("yekuo.sla")

DATA_DIR = Path(__file__).resolve().parent / "data"
RELOAD_SECONDS = 5.0
"""How often a process looks whether a calendar year was added."""


@dataclass(frozen=True)
class SlaConfig:
    calendar: WorkingCalendar
    rules: RuleBook
    rule_set: str
    """The active rule set's name."""


def parse_year(raw: dict[str, Any]) -> YearData:
    """A year's notice from its JSON form (``{"year", "source", "holidays", "makeup_workdays"}``, dates
    as keys of an object — name as value — or as a list)."""
    try:
        return YearData(
            year=int(raw["year"]),
            source=str(raw["source"]),
            holidays=frozenset(date.fromisoformat(d) for d in raw["holidays"]),
            makeup_workdays=frozenset(date.fromisoformat(d) for d in raw["makeup_workdays"]),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise CalendarDataError(f"not a calendar year: {error!r}") from None


def load_year(path: Path) -> YearData:
    return parse_year(json.loads(path.read_text()))


def _calendar_files(settings: Settings) -> list[Path]:
    """Year files, shipped data first: a year in the store replaces the shipped one."""
    files = sorted((DATA_DIR / "calendar").glob("*.json"))
    store = settings.calendar_store
    if store.is_dir():
        files += sorted(store.glob("[0-9][0-9][0-9][0-9].json"))
    return files


def load_calendar(settings: Settings) -> WorkingCalendar:
    """Every year in ``infra/data/calendar`` and the calendar store, then the provisional years."""
    years = {data.year: data for data in map(load_year, _calendar_files(settings))}
    return WorkingCalendar.build(years.values(), provisional_years=settings.calendar_provisional_years)


@dataclass(frozen=True)
class AddedYear:
    year: YearData
    path: Path
    digest: str
    replaced: bool
    calendar_version: str


def add_year(settings: Settings, raw: dict[str, Any], *, added_by: str) -> AddedYear:
    """Validate a year's notice and put it in the calendar store; the previous version of that year, if
    any, stays in ``history/`` and every addition is a line of ``history.jsonl`` (who, when, digest)."""
    data = parse_year(raw)
    problems = data.problems()
    if problems:
        raise CalendarDataError(f"{data.year}: " + "; ".join(problems))
    store = settings.calendar_store
    (store / "history").mkdir(parents=True, exist_ok=True)
    text = json.dumps(
        {
            "year": data.year,
            "source": data.source,
            "holidays": sorted(map(str, data.holidays)),
            "makeup_workdays": sorted(map(str, data.makeup_workdays)),
        },
        ensure_ascii=False,
        indent=1,
    )
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    path = store / f"{data.year}.json"
    replaced = path.exists()
    (store / "history" / f"{data.year}-{digest}.json").write_text(text)
    staged = path.with_suffix(".json.new")
    staged.write_text(text)
    staged.replace(path)  # atomic: a process never reads half a year
    with (store / "history.jsonl").open("a") as history:
        entry = {
            "year": data.year,
            "digest": digest,
            "added_by": added_by,
            "added_at": datetime.now(UTC).isoformat(),
        }
        history.write(json.dumps(entry, ensure_ascii=False) + "\n")
    return AddedYear(data, path, digest, replaced, load_calendar(settings).version)


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
                    complaint_limits=raw.get("complaint_limits"),
                    levels=tuple((level, float(share)) for level, share in raw.get("levels", []))
                    or DEFAULT_LEVELS,
                )
            )
    return RuleBook(rule_sets)


@functools.cache
def _rules(settings_json: str) -> RuleBook:
    settings = Settings.model_validate_json(settings_json)
    rules = load_rules(settings)
    rules.in_force(settings.sla_rule_set, date(2000, 1, 1))  # an unknown name fails at start, not later
    return rules


@functools.cache
def _config(settings_json: str, calendar_files: tuple[tuple[str, int, int], ...]) -> SlaConfig:
    settings = Settings.model_validate_json(settings_json)
    return SlaConfig(load_calendar(settings), _rules(settings_json), settings.sla_rule_set)


class FollowingSlaConfig:
    """A source of the SLA configuration that follows the calendar store: it looks for an added year at
    most every ``RELOAD_SECONDS`` (or at once with ``reload=True``), so long-running processes count
    with a new holiday notice without a restart."""

    def __init__(self, settings: Settings) -> None:
        self._settings_json = settings.model_dump_json()
        self._settings = settings
        self._looked_at = -RELOAD_SECONDS
        self._config: SlaConfig | None = None

    def __call__(self, *, reload: bool = False) -> SlaConfig:
        now = time.monotonic()
        if self._config is None or reload or now - self._looked_at >= RELOAD_SECONDS:
            files = tuple(
                (str(path), stat.st_mtime_ns, stat.st_size)
                for path in _calendar_files(self._settings)
                for stat in (path.stat(),)
            )
            self._config = _config(self._settings_json, files)
            self._looked_at = now
        return self._config


@functools.cache
def following_sla_config(settings_json: str) -> FollowingSlaConfig:
    return FollowingSlaConfig(Settings.model_validate_json(settings_json))


def sla_config(settings: Settings | None = None, *, reload: bool = False) -> SlaConfig:
    """The SLA configuration of ``settings`` (default: from the environment), as it stands now."""
    return following_sla_config((settings or Settings()).model_dump_json())(reload=reload)
