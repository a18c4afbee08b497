"""The ``yekuo api`` process rides out a PostgreSQL kill -9: fast 503s and not ready while it is down, then
serving again by itself, as the same process, once PostgreSQL is back on its port.

The test starts its own PostgreSQL (a ``LocalStack`` in the test's directory) because it kills it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from api.security import Role, issue_token
from infra.settings import Settings
from infra.stack import LocalStack

ROOT = Path(__file__).resolve().parents[2]
KEY = "outage-key-" + "o" * 40
WAIT = 60.0


@dataclass
class ApiProcess:
    stack: LocalStack
    process: subprocess.Popen[bytes]
    base: str
    log: Path

    def get(self, path: str, timeout: float = 10.0) -> httpx.Response:
        token = issue_token(KEY, role=Role.MANAGER, person_id="m-1", name="经理")
        return httpx.get(f"{self.base}{path}", headers={"Authorization": f"Bearer {token}"}, timeout=timeout)


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except httpx.TransportError:
            pass  # the API is starting, or this request waited too long: ask again
        time.sleep(0.2)
    raise AssertionError(f"gave up waiting for {what} after {WAIT:.0f}s")


@pytest.fixture
def api_process(tmp_path: Path) -> Iterator[ApiProcess]:
    settings = Settings(state_dir=tmp_path / "stack")
    stack = LocalStack(settings)
    database_url = stack.up(("postgres",)).database_url
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DATABASE_URL": database_url, "YEKUO_API_TOKEN_KEY": KEY,
           "YEKUO_STATE_DIR": str(settings.state_dir), "YEKUO_LOG_JSON": "true"}  # fmt: skip
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    log = tmp_path / "api.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "api", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    running = ApiProcess(stack, process, f"http://127.0.0.1:{port}", log)
    try:
        wait_for(lambda: running.get("/health/ready").status_code == 200, "the API to start")
        yield running
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        stack.down(purge=True)


def test_the_api_answers_503_through_a_postgres_kill_and_serves_again_as_the_same_process(
    api_process: ApiProcess,
) -> None:
    assert api_process.get("/cases/YK-NONE/progress").status_code == 404  # the event store answers
    assert api_process.get("/workload").status_code == 200  # the read models answer
    postmaster = api_process.stack._postmaster_pid()
    assert postmaster is not None

    os.kill(postmaster, signal.SIGKILL)
    wait_for(lambda: api_process.get("/health/ready").status_code == 503, "the API to report not ready")
    not_ready = api_process.get("/health/ready")
    during = [api_process.get(path, timeout=5) for path in ("/cases/YK-NONE/progress", "/workload")]
    live = api_process.get("/health/live")

    api_process.stack.up(("postgres",))  # the same data directory and port
    wait_for(lambda: api_process.get("/health/ready").status_code == 200, "the API to report ready again")
    after = [api_process.get(path).status_code for path in ("/cases/YK-NONE/progress", "/workload")]

    assert not_ready.json()["database"] == "unavailable"
    assert not_ready.json()["database_down"]["reason"]
    for answer in during:
        assert answer.status_code == 503 and answer.json()["error"] == "database unavailable"
        assert int(answer.headers["Retry-After"]) >= 1
    assert live.status_code == 200
    assert after == [404, 200]
    assert api_process.process.poll() is None
    health = json.loads(
        (api_process.stack.state_dir / "health" / f"api-{api_process.process.pid}.json").read_text()
    )
    assert health["ready"] is True and health["pid"] == api_process.process.pid
    log = api_process.log.read_text()
    assert log.count("postgres unavailable; api waits and retries") == 1
    assert log.count("postgres available again; api resumed") == 1
    assert "Traceback" not in log
