"""``yekuo stack up --api`` starts the HTTP API beside the servers, and ``stack down`` stops it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from infra.settings import Settings
from infra.stack import LocalStack

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def state_dir(tmp_path: Path) -> Iterator[Path]:
    state = tmp_path / "state"
    yield state
    LocalStack(Settings(state_dir=state)).down(purge=True)  # whatever a failed test left running


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
            return True
        time.sleep(0.05)
    return False


def yekuo(state_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the CLI as a user would, on the local stack of ``state_dir`` (nothing configured)."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS")}
    env.pop("YEKUO_API_TOKEN_KEY", None)
    env.update({"YEKUO_STATE_DIR": str(state_dir), "PYTHONPATH": str(ROOT), "COLUMNS": "200"})
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_stack_up_with_api_serves_the_api_and_stack_down_stops_it(state_dir: Path) -> None:
    port = _free_port()
    stack = LocalStack(Settings(state_dir=state_dir))

    started = yekuo(state_dir, "stack", "up", "--api", "--api-port", str(port))
    api = stack.status()["api"]
    ready = httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=10)
    again = stack.api_up(port)  # what a second `stack up --api` does
    api_again = stack.status()["api"]
    stack.down()  # what `stack down` does

    assert started.returncode == 0, started.stderr
    assert f"API=http://127.0.0.1:{port}" in started.stdout
    assert api["running"] and api["port"] == port
    assert ready.status_code == 200 and ready.json()["database"] == "ok" and ready.json()["broker"] == "ok"
    assert again == f"http://127.0.0.1:{port}" and api_again["pid"] == api["pid"]  # reused, not restarted
    assert _gone(api["pid"])
    assert "api" not in stack.status()
