"""The HTTP API in ``yekuo demo``: start ``yekuo api``, look a case up as its customer, read a department's
queue and inbox as its staff with tokens from the local key, then stop it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from subprocess import Popen

import httpx
from rich.console import Console

from api.security import Role, TokenKeyMissingError, issue_token
from cli.api import token_key
from infra.settings import Settings


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_api(
    console: Console, settings: Settings, env: dict[str, str], key: str
) -> tuple[Popen[bytes], str] | None:
    """``yekuo api`` on a free port, once ready: the process and its base URL (None, and a message, when it
    did not come up)."""
    port = _free_port()
    log_path = Path(settings.state_dir) / "demo-api.log"
    process = subprocess.Popen(  # noqa: S603 — our own CLI with a fixed argument list
        [sys.executable, "-m", "cli.main", "api", "--port", str(port)],
        env={**os.environ, **env, "YEKUO_API_TOKEN_KEY": key},
        stdout=subprocess.DEVNULL,
        stderr=log_path.open("ab"),
        stdin=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{base}/health/ready", timeout=2).status_code == 200:
                return process, base
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            console.print(f"HTTP API did not start; see {log_path}")
            stop_api(process)
            return None
        time.sleep(0.2)


def stop_api(process: Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()


def show_api(console: Console, settings: Settings, env: dict[str, str], case_number: str, phone: str) -> bool:
    """Run the tour; False (and a message) when the API did not come up."""
    try:
        key = token_key(settings)
    except TokenKeyMissingError as error:
        console.print(f"HTTP API skipped: {error}")
        return True
    started = start_api(console, settings, env, key)
    if started is None:
        return False
    process, base = started
    try:
        staff = issue_token(
            key, role=Role.STAFF, person_id="cs-demo", name="演示坐席", department="CUSTOMER_SERVICE"
        )
        headers = {"Authorization": f"Bearer {staff}"}
        lookup = httpx.post(
            f"{base}/customer/progress",
            json={"case_number": case_number, "phone_last4": phone[-4:]},
            timeout=10,
        ).json()
        queue = httpx.get(f"{base}/departments/CUSTOMER_SERVICE/queue", headers=headers, timeout=10).json()
        inbox = httpx.get(f"{base}/departments/CUSTOMER_SERVICE/inbox", headers=headers, timeout=10).json()
        console.print(
            f"HTTP API {base} (OpenAPI /docs): customer look-up of {case_number} by phone …{phone[-4:]} → "
            f"{lookup.get('status_label')}, next: {lookup.get('next_step')}; CUSTOMER_SERVICE queue "
            f"{len(queue)} open items, inbox {len(inbox)} unacknowledged (token: `yekuo token issue`)"
        )
        return True
    finally:
        stop_api(process)
