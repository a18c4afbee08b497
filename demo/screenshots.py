"""``yekuo dashboard screenshots``: PNGs of every dashboard page from the demo's data, for ``docs/``.

Starts a private embedded PostgreSQL (never the configured one), loads the demo's cases and the dashboard's
open and earlier ones, lets the SLA clock record what is due, serves the API in this process and opens each
page in headless chromium (the system's, driven by Playwright) with a manager's token.
"""

from __future__ import annotations

import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from api.main import create_app
from api.security import Role, issue_token
from app.bootstrap import build_case_application
from demo.dashboard_data import prepare
from infra.settings import Settings
from infra.stack import LocalStack

SHOTS: tuple[tuple[str, str], ...] = (
    ("overview", "/dashboard/overview"),
    ("department", "/dashboard/department?d=OPERATIONS"),
    ("sla", "/dashboard/sla"),
    ("case", "/dashboard/case?n=YK-DASH-OPEN-09"),
    ("parties", "/dashboard/parties"),
)
"""(file name, page) of each screenshot"""


def chromium() -> str:
    """The system chromium (Debian's ``chromium`` package), which Playwright drives instead of its own."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        raise FileNotFoundError("no chromium on PATH: `apt-get install -y chromium` (./dev.sh does, as root)")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    """``app`` served by uvicorn on a free local port in a thread; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False)
    )
    thread = threading.Thread(target=server.run, name="dashboard-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the API did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def take(out: Path, start: datetime, *, width: int = 1440, height: int = 900) -> list[Path]:
    """Write one PNG per page of ``SHOTS`` under ``out``; returns their paths."""
    from playwright.sync_api import sync_playwright

    key = "screenshots-" + "s" * 40
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="yekuo-screenshots-") as state:
        settings = Settings(state_dir=Path(state), database_url=None, api_token_key=key)
        stack = LocalStack(settings)
        database_url = stack.up(("postgres",)).database_url
        try:
            app = build_case_application(settings, database_url)
            try:
                prepare(app, database_url, start, datetime.now(UTC))
            finally:
                app.close()
            token = issue_token(key, role=Role.MANAGER, person_id="mgr-0001", name="营销部经理")
            written = []
            with serving(create_app(settings, database_url, None)) as base, sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=chromium(), headless=True)
                page = browser.new_page(viewport={"width": width, "height": height}, locale="zh-CN")
                page.goto(f"{base}/dashboard/overview?token={token}")
                for name, path in SHOTS:
                    page.goto(f"{base}{path}")
                    page.wait_for_function("Number(document.body.dataset.renders || 0) >= 1", timeout=30_000)
                    target = out / f"{name}.png"
                    page.screenshot(path=str(target), full_page=True)
                    written.append(target)
                browser.close()
            return written
        finally:
            stack.down(purge=True)
