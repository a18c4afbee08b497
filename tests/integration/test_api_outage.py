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
from demo.samples import sample_walk
from infra.settings import Settings
from infra.stack import LocalStack
from tests.integration.test_api import START, SYSTEMS, payload_of

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


def start_api(tmp_path: Path, stack: LocalStack, database_url: str) -> ApiProcess:
    """``yekuo api`` as its own process on ``database_url`` (whether or not PostgreSQL answers yet)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DATABASE_URL": database_url, "YEKUO_API_TOKEN_KEY": KEY,
           "YEKUO_STATE_DIR": str(stack.state_dir), "YEKUO_LOG_JSON": "true"}  # fmt: skip
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
    return ApiProcess(stack, process, f"http://127.0.0.1:{port}", log)


def stop_api(running: ApiProcess) -> None:
    running.process.terminate()
    try:
        running.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        running.process.kill()
        running.process.wait()
    running.stack.down(purge=True)


@pytest.fixture
def api_process(tmp_path: Path) -> Iterator[ApiProcess]:
    stack = LocalStack(Settings(state_dir=tmp_path / "stack"))
    running = start_api(tmp_path, stack, stack.up(("postgres",)).database_url)
    try:
        wait_for(lambda: running.get("/health/ready").status_code == 200, "the API to start")
        yield running
    finally:
        stop_api(running)


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


def test_an_api_started_before_postgres_waits_and_serves_once_postgres_comes_up(tmp_path: Path) -> None:
    stack = LocalStack(Settings(state_dir=tmp_path / "stack"))
    database_url = stack.up(("postgres",)).database_url  # made once for its data directory and port…
    stack._postgres_down()  # …then stopped (its port kept): the API starts while PostgreSQL is not running
    running = start_api(tmp_path, stack, database_url)
    try:
        wait_for(lambda: running.get("/health/live").status_code == 200, "the API to answer while waiting")
        not_ready = running.get("/health/ready")
        gated = running.get("/cases/YK-LATE-1/progress", timeout=5)
        assert running.process.poll() is None

        assert stack.up(("postgres",)).database_url == database_url  # the same port as the API was given
        wait_for(lambda: running.get("/health/ready").status_code == 200, "the API to become ready")
        submit = next(iter(sample_walk("HV_SINGLE", "YK-LATE-1", START)))
        system = next(s.name for s in SYSTEMS.systems.values() if s.channel == submit.channel)
        token = issue_token(KEY, role=Role.INTEGRATOR, person_id=submit.actor.person_id,
                            name=submit.actor.name, source_system=system)  # fmt: skip
        submitted = httpx.post(
            f"{running.base}/cases",
            json=payload_of(submit),
            headers={"Authorization": f"Bearer {token}", "Command-Id": submit.command_id},
            timeout=10,
        )
        progress = running.get("/cases/YK-LATE-1/progress")
        pid_ready = running.process.poll() is None
    finally:
        stop_api(running)

    assert not_ready.status_code == 503 and not_ready.json()["database"] == "unavailable"
    assert not_ready.json()["database_down"]["reason"]
    assert gated.status_code == 503 and gated.json()["rule"] == "DATABASE_UNAVAILABLE"
    assert int(gated.headers["Retry-After"]) >= 1
    assert submitted.status_code == 200, submitted.text
    assert progress.status_code == 200 and progress.json()["case_number"] == "YK-LATE-1"
    assert pid_ready  # the process that started during the outage is the one that served
    log = running.log.read_text()
    assert log.count("postgres unavailable; api waits and retries") == 1
    assert log.count("postgres available again; api resumed") == 1
    assert "Traceback" not in log
