"""The SLA engine on a real event store: the clock process records each level exactly once, also when
killed and run twice at once; responsibility, KPI and what-if reports from the command line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
import pytest

from app.application import CaseApplication
from app.bootstrap import build_case_application
from app.event_log import CaseEventLog
from consumers.sla_clock import SlaClock
from demo.samples import CATEGORIES_FOR_DEMO, sample_walk
from domain.commands import ReplySupplyPlan
from infra.settings import Settings
from projections import registry
from projections.rebuild import rebuild

ROOT = Path(__file__).resolve().parents[2]
START = datetime(2025, 9, 1, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
LATER = datetime(2025, 12, 1, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai"))


def walk_until_plan_reply(app: CaseApplication, count: int) -> list[str]:
    """Cases whose supply plan is never replied: their plan clocks run into breach."""
    numbers = []
    for index in range(count):
        category, _ = CATEGORIES_FOR_DEMO[index % len(CATEGORIES_FOR_DEMO)]
        number = f"YK-S-{index:03d}"
        for command in sample_walk(category, number, START + timedelta(hours=index)):
            if isinstance(command, ReplySupplyPlan):
                break
            assert app.execute(command).accepted
        numbers.append(number)
    return numbers


def project(app: CaseApplication, database_url: str) -> None:
    log = CaseEventLog(app)
    with psycopg.connect(database_url, autocommit=True) as conn:
        rebuild(conn, registry.select(), log.read_all, log.head)


def crossings_in_store(app: CaseApplication) -> Counter[tuple[str, str]]:
    counted: Counter[tuple[str, str]] = Counter()
    for messages, _ in CaseEventLog(app).read_all():
        for m in messages:
            if m.type == "SlaThresholdCrossed":
                counted[(m.payload["clock_id"], m.payload["level"])] += 1
    return counted


def levels_reached(database_url: str, by: datetime) -> int:
    """What the read model says is due: every level of every clock reached by ``by``."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM sla_clocks, jsonb_array_elements(crossings) AS x "
            "WHERE (x->>'at')::timestamptz <= %s",
            (by,),
        ).fetchone()
    return int(row[0]) if row else 0


@pytest.fixture
def app(fresh_database_url: str) -> CaseApplication:
    application = build_case_application(Settings(), fresh_database_url)
    yield application
    application.close()


def test_each_level_is_recorded_once_with_crossing_and_detection_apart(
    app: CaseApplication, fresh_database_url: str
) -> None:
    walk_until_plan_reply(app, 5)
    project(app, fresh_database_url)
    sla = SlaClock(app, fresh_database_url, clock=lambda: LATER)
    due = levels_reached(fresh_database_url, LATER)

    first = sla.tick()
    again = sla.tick()  # the read model has not seen the facts yet: the same commands, all repeats
    project(app, fresh_database_url)
    after = sla.tick()  # now the read model knows them: nothing is due

    # 5 plan clocks × 3 levels, and the notice of each of the six parallel reviews of the two HV cases
    assert due == 21
    assert first == {"due": 21, "recorded": 21, "repeated": 0, "refused": 0}
    assert again == {"due": 21, "recorded": 0, "repeated": 21, "refused": 0}
    assert after["due"] == 0
    assert set(crossings_in_store(app).values()) == {1}
    with psycopg.connect(fresh_database_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT level, crossed_at < detected_at, department FROM sla_crossings ORDER BY crossed_at"
        ).fetchall()
        supervisors = conn.execute(
            "SELECT count(*) FROM notifications WHERE recipient_kind = 'SUPERVISOR' AND kind LIKE 'SLA_%%'"
        ).fetchone()
    assert len(rows) == 21 and all(earlier for _, earlier, _ in rows)
    assert {department for level, _, department in rows if level == "BREACH"} == {"MARKETING"}
    assert supervisors == (10,)  # warning and breach of each clock reach the supervisor


def test_a_level_sent_again_at_a_later_tick_before_the_read_model_saw_it_is_a_repeat_not_a_refusal(
    app: CaseApplication, fresh_database_url: str
) -> None:
    walk_until_plan_reply(app, 2)
    project(app, fresh_database_url)
    ticks = iter([LATER, LATER + timedelta(seconds=30)])
    sla = SlaClock(app, fresh_database_url, clock=lambda: next(ticks))

    first = sla.tick()
    again = sla.tick()  # a worker killed meanwhile: the read model still lacks the facts, the time moved on

    assert first["recorded"] == first["due"] > 0
    assert again == {"due": first["due"], "recorded": 0, "repeated": first["due"], "refused": 0}
    assert set(crossings_in_store(app).values()) == {1}


def test_the_clock_process_killed_and_run_twice_at_once_records_each_breach_exactly_once(
    app: CaseApplication, fresh_database_url: str
) -> None:
    walk_until_plan_reply(app, 40)
    project(app, fresh_database_url)
    due = levels_reached(fresh_database_url, LATER)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": fresh_database_url,
        "YEKUO_LOG_JSON": "true",
    }
    command = [sys.executable, "-m", "cli.main", "sla-clock", "--once", "--now", LATER.isoformat()]

    victim = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while not crossings_in_store(app) and time.monotonic() < deadline:
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    twins = [
        subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for _ in range(2)
    ]
    outputs = [twin.communicate(timeout=120)[0].decode() for twin in twins]

    assert all(twin.returncode == 0 for twin in twins), outputs
    counted = crossings_in_store(app)
    assert due > 120 and len(counted) == due and set(counted.values()) == {1}


def test_responsibility_kpi_and_what_if_reports(app: CaseApplication, fresh_database_url: str) -> None:
    numbers = walk_until_plan_reply(app, 5)
    for index, (category, fast_track) in enumerate(CATEGORIES_FOR_DEMO):
        for command in sample_walk(category, f"YK-SD-{index}", START, fast_track=fast_track):
            assert app.execute(command).accepted
    project(app, fresh_database_url)
    SlaClock(app, fresh_database_url, clock=lambda: LATER).tick()
    project(app, fresh_database_url)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DATABASE_URL": fresh_database_url}

    def yekuo(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "cli.main", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    responsibility = yekuo("case", "responsibility", numbers[3], "--now", LATER.isoformat())
    assert "供电方案" in responsibility and "在途超期" in responsibility and "BREACH@12-01" in responsibility
    assert "市场营销部" in responsibility or "营销" in responsibility
    kpi = yekuo("kpi")
    assert "按时办结率" in kpi and "协同合规率" in kpi and "超期 breaches" in kpi
    whatif = yekuo("whatif", "--rules", "REG_2009", "--now", LATER.isoformat())
    assert "what-if: SGCC_INTERNAL → REG_2009" in whatif and "cases affected" in whatif
    with psycopg.connect(fresh_database_url, autocommit=True) as conn:
        before = conn.execute("SELECT count(*) FROM sla_clocks").fetchone()
    yekuo("whatif", "--rules", "POLICY_2025")
    with psycopg.connect(fresh_database_url, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM sla_clocks").fetchone() == before  # live model untouched
