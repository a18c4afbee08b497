"""The managers' dashboard in a real headless browser (Debian's chromium driven by Playwright), served by a
``yekuo api`` process on the demo's data: every page renders it, every chart has data points, a warning the
``yekuo sla-clock`` process records reaches the open page through the relay, a Tansu broker and the
projection worker without a reload, and a staff token sees its department only (and no party page)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from playwright.sync_api import Browser, Page, sync_playwright
from psycopg.conninfo import make_conninfo

from api.security import Role, issue_token
from app.bootstrap import build_case_application
from app.event_log import CaseEventLog
from demo.dashboard_data import load, prepare
from demo.run import DEMO_START
from demo.samples import sample_walk
from demo.screenshots import chromium
from infra.settings import Settings
from infra.stack import LocalStack
from projections import registry
from projections.store import create_schema
from tests.e2e.test_api_process import free_port, start_api, wait_ready

ROOT = Path(__file__).resolve().parents[2]
KEY = "dashboard-e2e-" + "d" * 40
PAGES = (
    "/dashboard/overview",
    "/dashboard/department?d=OPERATIONS",
    "/dashboard/sla",
    "/dashboard/case?n=YK-DASH-OPEN-09",
    "/dashboard/parties",
)
SERIES_OF_EVERY_CHART = """() => [...document.querySelectorAll('[data-chart]')].map((el) => {
    const chart = echarts.getInstanceByDom(el);
    return {name: el.dataset.chart, series: chart ? chart.getOption().series.map((s) => s.data) : null};
})"""


@dataclass
class Site:
    base: str
    database_url: str

    def token(self, role: Role, department: str | None = None) -> str:
        return issue_token(
            KEY, role=role, person_id=f"{role}-e2e", name=f"{role} 测试", department=department
        )

    def open(self, browser: Browser, path: str, token: str) -> Page:
        """A new tab signed in with ``token`` (given once as ?token=, then kept in sessionStorage) on ``path``."""
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(f"{self.base}/dashboard/case?token={token}")
        page.goto(f"{self.base}{path}")
        return page


def rendered(page: Page, times: int = 1) -> None:
    page.wait_for_function(f"Number(document.body.dataset.renders || 0) >= {times}", timeout=30_000)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium(), headless=True)
        yield launched
        launched.close()


@contextmanager
def serving(database_url: str, state_dir: Path) -> Iterator[str]:
    """``yekuo api`` on ``database_url`` until the block ends; yields its base URL."""
    port = free_port()
    process = start_api(database_url, state_dir, port, KEY)
    try:
        wait_ready(port, process)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def demo_database(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One database with the demo's data (SLA clock ticked), shared by the read-only tests of this module."""
    name = f"test_dashboard_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = make_conninfo(database_url, dbname=name)
    app = build_case_application(Settings(state_dir=tmp_path_factory.mktemp("dashboard")), url)
    try:
        prepare(app, url, DEMO_START, datetime.now(UTC))
    finally:
        app.close()
    yield url
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def site(demo_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with serving(demo_database, tmp_path_factory.mktemp("dashboard-api")) as base:
        yield Site(base, demo_database)


def test_the_demo_data_renders_on_every_page(site: Site, browser: Browser) -> None:
    page = site.open(browser, "/dashboard/overview", site.token(Role.MANAGER))
    rendered(page)
    open_stages = page.locator(".card", has_text="Open stages").locator(".value").inner_text()

    page.goto(f"{site.base}/dashboard/department?d=OPERATIONS")
    rendered(page)
    queue_rows = page.locator("#queue-table tbody tr").count()

    page.goto(f"{site.base}/dashboard/sla")
    rendered(page)
    crossing_rows = page.locator("#crossings-table tbody tr").count()
    clock_rows = page.locator("#clocks-table tbody tr").count()

    page.goto(f"{site.base}/dashboard/case?n=YK-DASH-OPEN-09")
    rendered(page)
    chain = page.locator(".card", has_text="Hash chain").locator(".value").inner_text()
    event_rows = page.locator("#events-table tbody tr").count()
    holder_rows = page.locator("#holders-table tbody tr").count()

    page.goto(f"{site.base}/dashboard/parties")
    rendered(page)
    party_kinds = page.eval_on_selector_all("[data-party]", "rows => rows.map(r => r.dataset.kind)")
    party_text = page.locator("#parties-table").inner_text()

    assert int(open_stages) > 0
    assert queue_rows > 0
    assert crossing_rows > 0 and clock_rows > 0
    assert "intact" in chain
    assert event_rows > 10 and holder_rows > 3
    assert sorted(party_kinds) == ["CONTRACTOR", "CONTRACTOR", "DESIGN_INSTITUTE", "DESIGN_INSTITUTE"]
    assert "福州电力设计院" in party_text and "施工单位 Contractor" in party_text
    assert page.locator("#error").is_hidden()


def test_every_chart_has_data_points(site: Site, browser: Browser) -> None:
    page = site.open(browser, "/dashboard/overview", site.token(Role.MANAGER))
    charts: dict[str, Any] = {}
    for path in PAGES:
        page.goto(f"{site.base}{path}")
        rendered(page)
        charts |= {chart["name"]: chart["series"] for chart in page.evaluate(SERIES_OF_EVERY_CHART)}

    empty = [
        name
        for name, series in charts.items()
        if not series or not any(isinstance(v, int | float) and v > 0 for data in series for v in data)
    ]
    assert len(charts) >= 15
    assert {"open-by-stage", "trend-category", "crossings-handler", "ageing", "bottlenecks"} <= set(charts)
    assert {"parties-rates", "parties-cases"} <= set(charts)
    assert empty == []


def test_a_staff_token_cannot_see_another_department(site: Site, browser: Browser) -> None:
    staff = site.token(Role.STAFF, "OPERATIONS")
    page = site.open(browser, "/dashboard/department?d=MARKETING", staff)
    page.wait_for_selector("#error[data-status='403']", timeout=30_000)
    queue_rows = page.locator("#queue-table tbody tr").count()

    page.goto(f"{site.base}/dashboard/overview")
    page.wait_for_url("**/dashboard/department", timeout=30_000)
    rendered(page)
    own_rows = page.locator("#queue-table tbody tr").count()

    page.goto(f"{site.base}/dashboard/sla")
    rendered(page)
    departments = page.eval_on_selector_all("[data-crossing]", "rows => rows.map(r => r.dataset.department)")

    page.goto(f"{site.base}/dashboard/parties")
    page.wait_for_selector("#error[data-status='403']", timeout=30_000)
    party_rows = page.locator("[data-party]").count()

    headers = {"Authorization": f"Bearer {staff}"}
    other = httpx.get(f"{site.base}/dashboard/api/departments/MARKETING", headers=headers, timeout=10)
    overview = httpx.get(f"{site.base}/dashboard/api/overview", headers=headers, timeout=10)
    parties = httpx.get(f"{site.base}/dashboard/api/parties", headers=headers, timeout=10)
    assert queue_rows == 0 and own_rows > 0
    assert departments and set(departments) == {"OPERATIONS"}
    assert other.status_code == 403 and overview.status_code == 403
    assert parties.status_code == 403 and party_rows == 0


@contextmanager
def pipeline_processes(database_url: str, bootstrap: str, workdir: Path) -> Iterator[Callable[[str], None]]:
    """Yields ``start(name)``: runs ``yekuo <name>`` (relay, worker, sla-clock) on ``database_url`` and
    ``bootstrap`` as the real process, logging to ``workdir/<name>.log``; all are stopped when the block ends."""
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": database_url,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "YEKUO_STATE_DIR": str(workdir / "state"),
        "YEKUO_KAFKA_SESSION_TIMEOUT_MS": "2000",
        "YEKUO_KAFKA_HEARTBEAT_INTERVAL_MS": "500",
        "YEKUO_SLA_TICK_SECONDS": "0.5",
    }
    processes: list[subprocess.Popen[bytes]] = []

    def start(name: str) -> None:
        log_file = (workdir / f"{name}.log").open("ab")
        processes.append(
            subprocess.Popen(
                [sys.executable, "-m", "cli.main", name],
                cwd=ROOT,
                env=env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        )

    try:
        yield start
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"gave up waiting for {what} after {timeout:.0f}s")


def projected_version(database_url: str, case_number: str) -> int:
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT v.version FROM progress_versions v JOIN case_progress p USING (case_id)"
            " WHERE p.case_number = %s",
            (case_number,),
        ).fetchone()
    return int(row[0]) if row else 0


def test_a_warning_recorded_by_the_sla_clock_appears_on_the_open_page(
    fresh_database_url: str, browser: Browser, tmp_path: Path
) -> None:
    """The real path: the ``yekuo sla-clock`` process records the warning in the event store, the relay
    publishes it to a Tansu broker, the projection worker builds the SLA read model, the open page polls it."""
    settings = Settings(state_dir=tmp_path / "stack")
    stack = LocalStack(settings)
    bootstrap = stack.up(("kafka",)).kafka_bootstrap_servers
    app = build_case_application(settings, fresh_database_url)
    try:
        with psycopg.connect(fresh_database_url, autocommit=True) as conn:
            create_schema(conn, registry.select())
        # submitted and accepted long ago: the supply-plan clock has run past its warning level
        accepted = sample_walk("RESIDENTIAL", "YK-E2E-WARN", DEMO_START)[:2]
        assert load(app, [accepted]) == []
        with pipeline_processes(fresh_database_url, bootstrap, tmp_path) as start:
            start("relay")
            start("worker")
            stored = app.get_case("YK-E2E-WARN").version
            wait_for(
                lambda: projected_version(fresh_database_url, "YK-E2E-WARN") >= stored, "the case projected"
            )
            with serving(fresh_database_url, tmp_path) as base:
                site = Site(base, fresh_database_url)
                page = site.open(browser, "/dashboard/sla", site.token(Role.MANAGER))
                rendered(page)
                clock_rows = page.locator("#clocks-table tbody tr").count()
                shown_before = page.locator("[data-crossing='YK-E2E-WARN']").count()
                page.evaluate("window.sameDocument = true")  # gone if the page reloaded

                start("sla-clock")
                warning = page.wait_for_selector(
                    "[data-crossing='YK-E2E-WARN'][data-level='WARNING']", timeout=90_000
                )
                assert clock_rows > 0 and shown_before == 0
                assert warning is not None and "时限预警" in warning.inner_text()
                assert page.evaluate("window.sameDocument") is True
        levels = [
            m.payload.get("level")
            for messages, _ in CaseEventLog(app).read_all()
            for m in messages
            if m.type == "SlaThresholdCrossed"
        ]
        assert "WARNING" in levels
    finally:
        app.close()
        stack.down(purge=True)
