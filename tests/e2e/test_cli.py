"""The ``yekuo`` command line as a user runs it: real processes against the session's real servers."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import psycopg

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
        "--customer-ref", "C-1", "--phone", "13905990123", "--id-number", "350782196805120026",
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
        "--customer-ref", "C-2", "--phone", "13905990123", "--id-number", "350782196805120026",
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
