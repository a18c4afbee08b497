"""The relay's witness of each case's head catches a history whose last events were deleted."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from app.application import CaseApplication
from app.bootstrap import build_case_application
from app.witness import check_all, check_case
from consumers.relay import Relay
from demo.samples import sample_walk
from domain.commands import case_id_for
from domain.witness import Integrity
from infra.settings import Settings
from tests.e2e.test_cli import yekuo

START = datetime(2025, 9, 1, 1, 0, tzinfo=UTC)


@pytest.fixture
def app(fresh_database_url: str) -> Iterator[CaseApplication]:
    application = build_case_application(Settings(), fresh_database_url)
    yield application
    application.close()


def _walk(app: CaseApplication, case_number: str) -> int:
    version = 0
    for command in sample_walk("LV_NON_RESIDENTIAL", case_number, START):
        outcome = app.execute(command)
        assert outcome.accepted, (outcome.rule, outcome.message)
        version = outcome.case_version or version
    return version


def _relay_everything(app: CaseApplication, database_url: str, bootstrap: str, tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path, kafka_session_timeout_ms=2000, kafka_heartbeat_interval_ms=500)
    relay = Relay(app, database_url, bootstrap, settings, name=f"witness-{tmp_path.name}")
    try:
        while relay.relay_once().read:
            pass
    finally:
        relay._close_producer()
        relay._close_connection()


def _delete_last_event(database_url: str, case_number: str, version: int) -> None:
    with psycopg.connect(database_url) as conn:
        deleted = conn.execute(
            "DELETE FROM cases_events WHERE originator_id = %s AND originator_version = %s",
            (case_id_for(case_number), version),
        )
        assert deleted.rowcount == 1


def test_deleting_a_cases_last_event_is_reported_as_truncated_and_other_cases_stay_intact(
    app: CaseApplication, fresh_database_url: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    last = _walk(app, "YK-WIT-1")
    _walk(app, "YK-WIT-2")
    _relay_everything(app, fresh_database_url, kafka_bootstrap, tmp_path)
    assert check_case(app, "YK-WIT-1").verdict.integrity is Integrity.INTACT
    assert app.verify("YK-WIT-1").intact

    _delete_last_event(fresh_database_url, "YK-WIT-1", last)

    assert app.verify("YK-WIT-1").intact  # the chain alone cannot see it
    truncated = check_case(app, "YK-WIT-1")
    assert truncated.verdict.integrity is Integrity.TRUNCATED
    assert truncated.stored is not None and truncated.witness is not None
    assert (truncated.stored.version, truncated.witness.version) == (last - 1, last)
    assert check_case(app, "YK-WIT-2").verdict.integrity is Integrity.INTACT
    swept = {item.case_number: item.verdict.integrity for item in check_all(app)}
    assert swept == {"YK-WIT-1": Integrity.TRUNCATED, "YK-WIT-2": Integrity.INTACT}


def test_the_cli_reports_a_truncated_case_with_exit_1_and_sweeps_every_case(
    app: CaseApplication, fresh_database_url: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    last = _walk(app, "YK-WIT-3")
    _walk(app, "YK-WIT-4")
    _relay_everything(app, fresh_database_url, kafka_bootstrap, tmp_path)
    _delete_last_event(fresh_database_url, "YK-WIT-3", last)
    env = {"DATABASE_URL": fresh_database_url}

    truncated = yekuo("case", "verify", "YK-WIT-3", env=env)
    intact = yekuo("case", "verify", "YK-WIT-4", env=env)
    swept = yekuo("case", "verify", "--all", env=env)

    assert truncated.returncode == 1, truncated.stderr
    assert "TRUNCATED" in truncated.stdout and f"version {last - 1}" in truncated.stdout
    assert intact.returncode == 0 and "intact" in intact.stdout
    assert swept.returncode == 1
    assert "YK-WIT-3" in swept.stdout and "YK-WIT-4" not in swept.stdout  # the sweep lists only problems
    assert "2 cases verified" in swept.stdout and "TRUNCATED 1" in swept.stdout


def test_a_case_whose_events_were_all_deleted_is_still_found_by_the_sweep(
    app: CaseApplication, fresh_database_url: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    _walk(app, "YK-WIT-5")
    _relay_everything(app, fresh_database_url, kafka_bootstrap, tmp_path)
    with psycopg.connect(fresh_database_url) as conn:
        conn.execute("DELETE FROM cases_events WHERE originator_id = %s", (case_id_for("YK-WIT-5"),))

    swept = check_all(app)

    assert [(item.case_number, item.verdict.integrity) for item in swept] == [
        ("YK-WIT-5", Integrity.TRUNCATED)
    ]
