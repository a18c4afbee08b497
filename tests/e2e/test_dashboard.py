"""The managers' dashboard in a real headless browser (Debian's chromium driven by Playwright), served by a
``yekuo api`` process on the demo's data: every page renders it, every chart has data points, a warning the
SLA clock records appears on the open page without a reload, and a staff token sees its department only."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
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
from consumers.sla_clock import SlaClock
from demo.dashboard_data import load, prepare, project
from demo.run import DEMO_START
from demo.samples import sample_walk
from demo.screenshots import chromium
from infra.settings import Settings
from projections import registry
from projections.store import apply_events
from tests.e2e.test_api_process import free_port, start_api, wait_ready

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


def test_a_warning_recorded_by_the_sla_clock_appears_on_the_open_page(
    fresh_database_url: str, browser: Browser, tmp_path: Path
) -> None:
    app = build_case_application(Settings(state_dir=tmp_path), fresh_database_url)
    try:
        # submitted and accepted: the supply-plan clock runs
        accepted = sample_walk("RESIDENTIAL", "YK-E2E-WARN", DEMO_START)[:2]
        assert load(app, [accepted]) == []
        project(app, fresh_database_url)
        with serving(fresh_database_url, tmp_path) as base:
            site = Site(base, fresh_database_url)
            page = site.open(browser, "/dashboard/sla", site.token(Role.MANAGER))
            rendered(page)
            shown_before = page.locator("[data-crossing='YK-E2E-WARN']").count()
            page.evaluate("window.sameDocument = true")  # gone if the page reloaded
            log = CaseEventLog(app)
            position = log.head()

            recorded = SlaClock(app, fresh_database_url, clock=lambda: DEMO_START + timedelta(days=60)).tick()
            with psycopg.connect(fresh_database_url) as conn, conn.transaction():
                for messages, _ in log.read_all(position):
                    apply_events(conn, registry.select(), messages)

            warning = page.wait_for_selector(
                "[data-crossing='YK-E2E-WARN'][data-level='WARNING']", timeout=20_000
            )
            assert shown_before == 0
            assert recorded["recorded"] >= 2
            assert warning is not None and "时限预警" in warning.inner_text()
            assert page.evaluate("window.sameDocument") is True
    finally:
        app.close()
