"""``yekuo api`` as a process: it refuses to start without a signing key, and a kill -9 in the middle of a
stream of commands loses none that it acknowledged."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx

from api.security import Role, issue_token
from app.bootstrap import build_case_application
from demo.samples import sample_walk
from infra.settings import Settings
from tests.integration.test_api import payload_of

ROOT = Path(__file__).resolve().parents[2]
KEY = "e2e-key-" + "e" * 40
START = datetime(2025, 9, 1, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_api(database_url: str, tmp_path: Path, port: int, key: str | None) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": database_url,
        "YEKUO_STATE_DIR": str(tmp_path),
    }
    env.pop("YEKUO_API_TOKEN_KEY", None)
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    if key:
        env["YEKUO_API_TOKEN_KEY"] = key
    log = (tmp_path / f"api-{port}.log").open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "cli.main", "api", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=log,
    )


def wait_ready(port: int, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "yekuo api exited"
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError("yekuo api never became ready")


def test_the_api_refuses_to_start_without_a_signing_key(fresh_database_url: str, tmp_path: Path) -> None:
    process = start_api(fresh_database_url, tmp_path, free_port(), key=None)

    assert process.wait(timeout=60) == 2
    assert "YEKUO_API_TOKEN_KEY" in (tmp_path / next(p.name for p in tmp_path.glob("api-*.log"))).read_text()


def test_a_kill_9_mid_load_loses_no_acknowledged_command(fresh_database_url: str, tmp_path: Path) -> None:
    port = free_port()
    process = start_api(fresh_database_url, tmp_path, port, KEY)
    wait_ready(port, process)
    token = issue_token(KEY, role=Role.INTEGRATOR, person_id="load", name="压测", source_system="COUNTER")
    acknowledged: list[str] = []
    stop = threading.Event()

    def load(worker: int) -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            for index in range(10_000):
                if stop.is_set():
                    return
                submit = sample_walk("RESIDENTIAL", f"YK-K-{worker}-{index}", START)[0]
                try:
                    answer = client.post(
                        "/cases",
                        json=payload_of(submit),
                        headers={"Authorization": f"Bearer {token}", "Command-Id": submit.command_id},
                    )
                except httpx.TransportError:
                    return
                if answer.status_code == 200:
                    acknowledged.append(submit.command_id)

    threads = [threading.Thread(target=load, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 60
    while len(acknowledged) < 40 and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=10)
    stop.set()
    for thread in threads:
        thread.join(timeout=10)

    app = build_case_application(Settings(), fresh_database_url, create_tables=False)
    try:
        missing = [command_id for command_id in acknowledged if app.receipt(command_id) is None]
    finally:
        app.close()
    assert len(acknowledged) >= 40
    assert missing == []
