"""The calendar's end on the real servers (a supply plan accepted in November 2026 running into 2027):
nothing dies, the deadline is provisional; once an operator adds the 2027 notice, the SLA clock records
the move. The case runs under REG_2009 (45 working days for HV_DUAL) so that it is accepted in the past
of any run of this test and still reaches 2027; the unit tests check the brief's own 2026-11-24 example."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from app.application import CaseApplication
from app.bootstrap import build_case_application
from app.event_log import CaseEventLog
from consumers.sla_clock import SlaClock
from demo.samples import sample_walk
from domain.calendar import FIXED_DATE_HOLIDAYS, SHANGHAI
from domain.commands import DraftSupplyPlan, case_id_for
from infra.settings import Settings
from infra.sla_config import following_sla_config, sla_config
from projections import registry
from projections.rebuild import rebuild

ROOT = Path(__file__).resolve().parents[2]
TODAY = datetime(2026, 11, 2, 9, 30, tzinfo=SHANGHAI)
CASE = "YK-2026-EDGE"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(state_dir=tmp_path, sla_rule_set="REG_2009")


@pytest.fixture
def app(settings: Settings, fresh_database_url: str) -> Iterator[CaseApplication]:
    application = build_case_application(settings, fresh_database_url)
    yield application
    application.close()


def yekuo(settings: Settings, database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": database_url,
        "YEKUO_STATE_DIR": str(settings.state_dir),
        "YEKUO_SLA_RULE_SET": settings.sla_rule_set,
    }
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def project(app: CaseApplication, settings: Settings, database_url: str) -> None:
    projections = registry.build(sla_config(settings), following_sla_config(settings.model_dump_json()))
    log = CaseEventLog(app)
    with psycopg.connect(database_url, autocommit=True) as conn:
        rebuild(conn, list(projections.values()), log.read_all, log.head)


def plan_clock(database_url: str) -> tuple[datetime, bool, str]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT deadline_at, deadline_provisional, calendar_version FROM sla_clocks "
            "WHERE kind = 'STAGE' AND stage = 'SUPPLY_PLAN'"
        ).fetchone()
    assert row is not None
    return row[0], row[1], row[2]


def notice_2027(path: Path, *extra_holidays: str) -> Path:
    """A hypothetical 2027 notice (the real one is not out yet) with a holiday on Monday 01-04."""
    holidays = {date(2027, m, d) for m, d, _ in FIXED_DATE_HOLIDAYS}
    holidays |= {date(2027, 2, 8) + timedelta(days=i) for i in range(5)} | {
        date(2027, 4, 5),
        date(2027, 6, 9),
    }
    holidays |= {date.fromisoformat(day) for day in extra_holidays}
    path.write_text(
        json.dumps(
            {
                "year": 2027,
                "source": "test notice",
                "holidays": sorted(map(str, holidays)),
                "makeup_workdays": ["2027-02-20"],
            }
        )
    )
    return path


def test_a_plan_clock_into_2027_is_provisional_then_revised_once_the_notice_is_added(
    app: CaseApplication, settings: Settings, fresh_database_url: str, tmp_path: Path
) -> None:
    for command in sample_walk("HV_DUAL", CASE, TODAY):
        if isinstance(command, DraftSupplyPlan):
            break
        assert app.execute(command).accepted, command
    project(app, settings, fresh_database_url)
    now = (TODAY + timedelta(days=1)).isoformat()

    deadline, provisional, version = plan_clock(fresh_database_url)
    sla_open = yekuo(settings, fresh_database_url, "sla", "open", "--now", now)
    responsibility = yekuo(settings, fresh_database_url, "case", "responsibility", CASE, "--now", now)

    assert provisional and "+provisional:2027" in version
    assert deadline.astimezone(SHANGHAI).year == 2027
    assert sla_open.returncode == 0, sla_open.stderr
    assert "暂定" in sla_open.stdout
    assert responsibility.returncode == 0, responsibility.stderr
    assert "暂定" in responsibility.stdout

    refused = yekuo(
        settings, fresh_database_url, "calendar", "add", str(notice_2027(tmp_path / "bad.json", "2026-12-31"))
    )
    added = yekuo(
        settings,
        fresh_database_url,
        "calendar",
        "add",
        str(notice_2027(tmp_path / "2027.json", "2027-01-04")),
    )
    shown = yekuo(settings, fresh_database_url, "calendar", "show", "2027")

    assert refused.returncode == 2 and "outside 2027" in refused.stdout
    assert added.returncode == 0, added.stdout + added.stderr
    assert "据通知" in shown.stdout and "2027-01-04" in shown.stdout

    clock = SlaClock(
        app,
        fresh_database_url,
        clock=lambda: TODAY + timedelta(days=10),
        config=lambda **kw: sla_config(settings, **kw),
    )
    first = clock.tick()
    again = SlaClock(
        app,
        fresh_database_url,
        clock=lambda: TODAY + timedelta(days=10),
        config=lambda **kw: sla_config(settings, **kw),
    ).tick()
    revised = [m for m in CaseEventLog(app).history(case_id_for(CASE)) if m.type == "SlaDeadlineRevised"]
    project(app, settings, fresh_database_url)
    new_deadline, still_provisional, new_version = plan_clock(fresh_database_url)

    assert first["recorded"] >= 1 and first["refused"] == 0
    assert again["recorded"] == 0  # the command id names clock and calendar version: recorded once
    plan = [m for m in revised if m.payload["stage"] == "SUPPLY_PLAN" and ":STAGE:" in m.payload["clock_id"]]
    assert len(plan) == 1
    assert datetime.fromisoformat(plan[0].payload["previous_deadline"]) == deadline
    assert datetime.fromisoformat(plan[0].payload["deadline"]) == new_deadline == deadline + timedelta(days=1)
    assert not plan[0].payload["provisional"] and not still_provisional
    assert new_version != version and "+provisional:2028" in new_version
