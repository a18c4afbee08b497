"""The ``yekuo`` command line as a user runs it: real processes against the session's real servers."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from domain.commands import case_id_for

ROOT = Path(__file__).resolve().parents[2]
CLERK = "cs-0101,林晓燕,CUSTOMER_SERVICE"
SURVEYOR = "op-0201,陈建国,OPERATIONS"


def yekuo(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        cwd=ROOT,
        env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_case_is_submitted_worked_traced_and_verified_from_the_terminal(fresh_database_url: str) -> None:
    env = {"DATABASE_URL": fresh_database_url}
    submitted = yekuo(
        "case", "submit", "YK-CLI-1", "--category", "RESIDENTIAL", "--customer-name", "王秀英",
        "--customer-ref", "C-1", "--phone", "13905990123", "--id-number", "350782196805120027",
        "--address", "武夷山市柳营路18号", "--capacity-kva", "8", "--supply-voltage", "220V",
        "--actor", CLERK, "--occurred-at", "2025-09-01T09:00:00+08:00", env=env,
    )  # fmt: skip
    assert submitted.returncode == 0, submitted.stderr
    assert "✓ accepted" in submitted.stdout

    refused = yekuo("case", "do", "AcceptApplication", "YK-CLI-1", "--actor", SURVEYOR, env=env)
    accepted = yekuo("case", "do", "AcceptApplication", "YK-CLI-1", "--actor", CLERK, env=env)
    assigned = yekuo(
        "case", "do", "AssignHandler", "YK-CLI-1", "--actor", SURVEYOR,
        "-f", "stage=SITE_SURVEY", "-f", "handler=op-0214,李振华,OPERATIONS", env=env,
    )  # fmt: skip

    assert refused.returncode == 2
    assert "ACTOR_NOT_ACCOUNTABLE" in refused.stdout
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    assert assigned.returncode == 0, assigned.stdout + assigned.stderr

    shown = yekuo("case", "show", "YK-CLI-1", env=env)
    assert "现场勘查" in shown.stdout and "运维检修部" in shown.stdout and "李振华" in shown.stdout
    assert "林晓燕" in shown.stdout  # the customer manager

    history = yekuo("case", "history", "YK-CLI-1", env=env)
    assert "已受理" in history.stdout and "已派工" in history.stdout
    as_json = json.loads(yekuo("case", "history", "YK-CLI-1", "--json", env=env).stdout)
    assert [row["type"] for row in as_json][:2] == ["ApplicationSubmitted", "StageOpened"]

    verified = yekuo("case", "verify", "YK-CLI-1", env=env)
    assert verified.returncode == 0
    assert "intact" in verified.stdout


def test_verify_names_the_first_event_altered_in_the_database(fresh_database_url: str) -> None:
    env = {"DATABASE_URL": fresh_database_url}
    yekuo(
        "case", "submit", "YK-CLI-2", "--category", "RESIDENTIAL", "--customer-name", "王秀英",
        "--customer-ref", "C-2", "--phone", "13905990123", "--id-number", "350782196805120027",
        "--address", "武夷山市柳营路18号", "--capacity-kva", "8", "--supply-voltage", "220V",
        "--actor", CLERK, env=env,
    )  # fmt: skip
    assert yekuo("case", "do", "AcceptApplication", "YK-CLI-2", "--actor", CLERK, env=env).returncode == 0
    with psycopg.connect(fresh_database_url) as conn:
        conn.execute(
            "UPDATE cases_events SET state = convert_to(replace(convert_from(state, 'UTF8'), '林晓燕', '某人'), 'UTF8')"
            " WHERE originator_id = %s AND originator_version = 3",
            (case_id_for("YK-CLI-2"),),
        )

    verified = yekuo("case", "verify", "YK-CLI-2", env=env)

    assert verified.returncode == 1
    assert "BROKEN" in verified.stdout and "version 3" in verified.stdout


def test_the_demo_walks_every_category_through_every_stage(
    fresh_database_url: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    env = {
        "DATABASE_URL": fresh_database_url,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "YEKUO_STATE_DIR": str(tmp_path),
    }

    demo = yekuo("demo", env=env)

    assert demo.returncode == 0, demo.stdout[-2000:] + demo.stderr[-2000:]
    for number in ("RESIDENTIAL", "LV_NON_RESIDENTIAL-FAST", "LV_NON_RESIDENTIAL", "HV_SINGLE", "HV_DUAL"):
        assert f"YK-DEMO-{number} 办理记录" in demo.stdout
    assert demo.stdout.count("已办结") >= 5
    assert "all hash chains intact" in demo.stdout
    assert "接入 Intake: YK-DEMO-RESIDENTIAL" in demo.stdout  # the first case went through intake
    for read_model in ("进度查询 progress", "部门工作量 workload", "协同通知 notifications", "时限 SLA"):
        assert read_model in demo.stdout
    assert demo.stdout.count("已办结, 感谢您的支持") == 5  # every sample case reached the progress model
    caught_up = re.search(r"consumer yekuo-projections: (\d+) of (\d+) events applied, lag 0", demo.stdout)
    assert caught_up and caught_up[1] == caught_up[2]
    assert "started: none" in demo.stdout


SUBMIT = (
    "case", "submit", "YK-CLI-3", "--category", "RESIDENTIAL", "--customer-name", "王秀英",
    "--customer-ref", "C-3", "--phone", "13905990123", "--id-number", "350782196805120027",
    "--address", "武夷山市柳营路18号", "--capacity-kva", "8", "--supply-voltage", "220V", "--actor", CLERK,
)  # fmt: skip


@pytest.mark.parametrize(
    ("args", "option", "says"),
    [
        (("-f", "stage"), "-f/--field", "expected key=value, got 'stage'"),
        (("-f", "stage=NOWHERE", "-f", f"handler={SURVEYOR}"), "-f stage", "'NOWHERE' is not one of"),
        (("-f", "stage=SITE_SURVEY"), "-f/--field", "AssignHandler needs -f handler=…"),
        (("-f", "stage=SITE_SURVEY", "-f", "handler=op-1"), "-f handler", "person_id,name,DEPARTMENT"),
        (("--occurred-at", "2025-13-01T09:00"), "--occurred-at", "not an ISO-8601 time"),
        (("--occurred-at", "2025-09-01T09:00:00"), "--occurred-at", "has no time zone offset"),
        (("--channel", "FAX"), "--channel", "'FAX' is not one of"),
    ],
)
def test_bad_command_line_input_gets_one_line_naming_the_option_and_exit_2(
    fresh_database_url: str, args: tuple[str, ...], option: str, says: str
) -> None:
    env = {"DATABASE_URL": fresh_database_url}

    refused = yekuo("case", "do", "AssignHandler", "YK-CLI-3", "--actor", SURVEYOR, *args, env=env)

    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "Traceback" not in refused.stderr
    assert refused.stderr.strip().splitlines() == [refused.stderr.strip()]
    assert refused.stderr.startswith(f"Error: {option}: ") and says in refused.stderr


def test_a_bad_date_field_is_refused_without_a_traceback(fresh_database_url: str) -> None:
    refused = yekuo(
        "case", "do", "ScheduleConnection", "YK-CLI-3", "--actor", SURVEYOR, "-f", "scheduled_for=2025-02-30",
        env={"DATABASE_URL": fresh_database_url},
    )  # fmt: skip

    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert refused.stderr.startswith("Error: -f scheduled_for: not a date (YYYY-MM-DD): '2025-02-30'")


@pytest.mark.parametrize(
    ("option", "value", "rule"),
    [
        ("--capacity-kva", "inf", "CAPACITY_PLAUSIBLE"),
        ("--capacity-kva", "nan", "CAPACITY_PLAUSIBLE"),
        ("--phone", "139059901", "PHONE_FORMAT"),
        ("--id-number", "350782196805120026", "ID_NUMBER_CHECK_DIGIT"),
        ("--customer-name", "王秀英\x1b[31m", "TEXT_CONTROL_CHARACTER"),
        ("--category", "INDUSTRIAL", None),
    ],
)
def test_an_implausible_application_is_refused_with_its_rule_and_nothing_is_stored(
    fresh_database_url: str, option: str, value: str, rule: str | None
) -> None:
    env = {"DATABASE_URL": fresh_database_url}
    args = list(SUBMIT)
    args[args.index(option) + 1] = value

    refused = yekuo(*args, env=env)

    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "Traceback" not in refused.stderr
    if rule is None:
        assert refused.stderr.startswith(f"Error: {option}: '{value}' is not one of")
    else:
        assert f"✗ rejected: {rule}" in refused.stdout
    assert yekuo("case", "show", "YK-CLI-3", env=env).returncode == 1


def test_a_retry_without_occurred_at_is_a_repeat_and_a_different_command_cannot_reuse_its_id(
    fresh_database_url: str,
) -> None:
    env = {"DATABASE_URL": fresh_database_url}
    assert yekuo(*SUBMIT, "--command-id", "cli-3-submit", env=env).returncode == 0
    accept = ("case", "do", "AcceptApplication", "YK-CLI-3", "--actor", CLERK, "--command-id", "cli-3-accept")

    first = yekuo(*accept, env=env)
    retry = yekuo(*accept, env=env)
    reused = yekuo(*accept, "--reason", "another command", env=env)

    assert first.returncode == 0, first.stdout + first.stderr
    assert retry.returncode == 0, retry.stdout + retry.stderr
    assert "repeat: nothing appended" in retry.stdout
    assert reused.returncode == 2 and "COMMAND_ID_REUSED" in reused.stdout


def test_an_unreachable_database_is_one_line_and_exit_3_within_seconds_not_a_traceback() -> None:
    closed = "postgresql://postgres@127.0.0.1:1/yekuo"  # port 1: nothing listens, the connection is refused

    for args in (("case", "show", "YK-CLI-3"), SUBMIT):
        refused = yekuo(*args, env={"DATABASE_URL": closed})

        assert refused.returncode == 3, refused.stdout + refused.stderr
        assert "Traceback" not in refused.stderr
        assert refused.stderr.strip().splitlines() == [refused.stderr.strip()]
        assert refused.stderr.startswith("Error: PostgreSQL is unreachable 数据库不可用")
