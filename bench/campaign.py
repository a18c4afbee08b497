"""The fault and load campaign (issue 14): break everything at once under load, then prove nothing was lost.

Not a unit of the product: a Jepsen-style harness. It starts a private PostgreSQL and Tansu broker (a
``LocalStack`` in a temporary directory, all on 127.0.0.1) and every process as the real ``yekuo`` command —
API, intake, relay, projection worker(s) with their notifier timers, SLA clock — and then, for a bounded time:

- drives sample cases (``demo.samples.sample_walk``, every category) through both doors at a chosen rate:
  HTTP commands with a ``Command-Id`` header from API client threads, and envelopes on ``yekuo.intake.v1``
  from intake client threads that read their outcomes from ``yekuo.intake-results.v1``. Each case goes
  through one door, one command at a time. Clients retry through outages with the **same** command or
  message id, which is what makes a retry safe. Every acknowledgement a client got is recorded: an API 200
  with its command id, an intake ``ACCEPTED`` result by message id;
- every ``--kill-every`` seconds (±30 %), one fault: first every kind once in a shuffled order (each kind
  of process, PostgreSQL, the broker), then a random process; the run goes on until that first round is
  done (``FaultSchedule``). A process gets kill -9 and is restarted at once. PostgreSQL (postmaster and
  backends) gets kill -9 once and is restarted on the same port and data after ``--outage-seconds``; the
  broker once, restarted empty on the same port (a memory broker loses everything);
- sends bursts of hostile intake messages (bad JSON, not UTF-8, unknown type, wrong source, schema-invalid)
  and malformed API requests (bad JSON, no command id, unknown type, bad token, invalid fields).

Afterwards it stops the load and the SLA clock, waits until the pipeline has caught up with the event
store, and checks (printed as one JSON document, exit code 1 when a guarantee is broken):

- ``acknowledged_missing``: acknowledged commands without an accepted receipt in the store (must be 0);
- ``case_events_topic``: stored case events missing from ``yekuo.case-events.v1`` for the relay's current
  incarnation, read with an independent kafka-python consumer (must be 0); repeats are counted (the relay
  is at least once: a kill -9 republishes its unacknowledged batch);
- ``read_models``: every read-model table equal to a fresh rebuild from the event store, row for row;
- ``intake``: every message id sent has a result and all its results agree; every hostile message of the
  broker's current life has a result or a dead letter;
- ``notifications``: nothing on the topic that is not in the read model, every delivery recorded after the
  broker restart seen on the topic, repeats of an id counted and within the documented bound (one dispatch
  batch per worker kill or server kill);
- ``hash_chains``: ``yekuo case verify --all`` exits 0;
- ``processes``: every kind of fault happened (``kills_by_kind``); no process exited by itself; hostile
  API requests never got a 5xx;
- ``availability``: the longest gap between two acknowledgements at each door while load was offered, the
  longest a command waited from its first attempt to its acknowledgement, and the recovery time after each
  kill and restart (to ready, or to the door's next acknowledgement).

    python bench/campaign.py [--seconds 240] [--rate 20] [--kill-every 3.5] [--workers 2] [--seed 14]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import itertools
import json
import logging
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import psutil
import psycopg
import structlog
from fastapi.encoders import jsonable_encoder
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from api.commands import MANAGER_COMMANDS
from api.security import Role, issue_token
from app.bootstrap import build_case_application
from app.command_payloads import ENVELOPE_FIELDS
from app.event_log import CaseEventLog
from app.intake_envelopes import envelope_for, source_for
from consumers.backoff import read_health
from consumers.notifier import DISPATCH_BATCH
from demo.samples import CATEGORIES_FOR_DEMO, sample_walk
from domain.commands import Command, SubmitApplication
from infra.messages import CASE_EVENT_TOPIC_PREFIX, INCARNATION_HEADER
from infra.settings import (
    CASE_EVENTS_TOPIC,
    INTAKE_DLQ_TOPIC,
    INTAKE_RESULTS_TOPIC,
    INTAKE_TOPIC,
    NOTIFICATIONS_TOPIC,
    Settings,
)
from infra.source_systems import SourceSystems, load_source_systems
from infra.stack import LocalStack
from projections import registry
from projections.rebuild import rebuild
from projections.store import create_schema
from projections.tables import all_tables

ROOT = Path(__file__).resolve().parents[1]
KEY = "campaign-key-" + "c" * 40
SHANGHAI = ZoneInfo("Asia/Shanghai")
START = datetime(2025, 9, 1, 9, 0, tzinfo=SHANGHAI)
RESEND_AFTER = 8.0
"""Seconds an intake client waits for a result before it sends the same message again."""
SETTLE = 180.0
"""Longest the checks wait for the pipeline to catch up after the load; a hang becomes a failure."""
HEALTH_PROCESSES = ("relay", "worker", "sla-clock")


@dataclass(frozen=True)
class CampaignConfig:
    """How long, how hard and how often: the short test and the long bench differ only here."""

    seconds: float = 240.0
    rate: float = 20.0
    """Commands offered per second, both doors together."""
    api_clients: int = 3
    intake_clients: int = 2
    intake_lane: int = 6
    """Cases each intake client keeps in flight (one command of each at a time)."""
    kill_every: float = 3.5
    workers: int = 2
    outage_seconds: float = 3.0
    hostile_every: float = 10.0
    seed: int = 14
    workdir: Path | None = None


# ---- the faults ------------------------------------------------------------------------------------------

PROCESS_KINDS = ("api", "intake", "relay", "worker", "sla-clock")
SERVER_KINDS = ("postgres", "kafka")
FAULT_KINDS = PROCESS_KINDS + SERVER_KINDS
"""Every kind of fault: a kill -9 of each kind of process, and of each server (then restarted)."""


def kind_of(name: str) -> str:
    """The kind of a process name: ``worker-2`` → ``worker``."""
    return "worker" if name.startswith("worker-") else name


class FaultSchedule:
    """Which fault comes next: first every kind once, in a shuffled order, then random process kills.

    So every run, however short, kills each kind of process and each server (once: a server is killed in
    the first round only), and the campaign goes on until that round is done even when its time is up."""

    def __init__(self, rng: random.Random, processes: list[str]) -> None:
        self.random = rng
        self.processes = processes
        self.first_round = list(FAULT_KINDS)
        rng.shuffle(self.first_round)

    @property
    def every_kind_done(self) -> bool:
        return not self.first_round

    def next(self) -> str:
        """A server kind (``postgres``, ``kafka``) or the name of the process to kill."""
        if self.first_round:
            kind = self.first_round.pop(0)
            if kind in SERVER_KINDS:
                return kind
            return self.random.choice([p for p in self.processes if kind_of(p) == kind])
        return self.random.choice(self.processes)


# ---- what the clients saw ---------------------------------------------------------------------------------


@dataclass
class Ledger:
    """Everything clients were told, with times (monotonic seconds since the campaign started)."""

    t0: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock)
    acks: dict[str, dict[str, Any]] = field(default_factory=dict)
    """command id → {door, at, waited, case_number}."""
    ack_times: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    refusals: list[dict[str, Any]] = field(default_factory=list)
    sent_intake: dict[str, float] = field(default_factory=dict)
    hostile_intake: list[dict[str, Any]] = field(default_factory=list)
    hostile_api: Counter[str] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)
    events: list[dict[str, Any]] = field(default_factory=list)
    """Kills, restarts and outages in order."""
    unexpected_exits: list[dict[str, Any]] = field(default_factory=list)
    load_started: float = 0.0
    load_stopped: float = 0.0

    def now(self) -> float:
        return time.monotonic() - self.t0

    def ack(self, door: str, command_id: str, case_number: str, first_try: float) -> None:
        at = self.now()
        with self.lock:
            self.acks[command_id] = {"door": door, "at": at, "waited": at - first_try, "case": case_number}
            self.ack_times[door].append(at)

    def event(self, **what: Any) -> dict[str, Any]:
        what["at"] = round(self.now(), 3)
        with self.lock:
            self.events.append(what)
        return what


class Pacer:
    """Spaces command starts to ``rate`` per second across every client thread."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate
        self.next = time.monotonic()
        self.lock = threading.Lock()

    def wait(self, stop: threading.Event) -> bool:
        with self.lock:
            slot = max(self.next, time.monotonic())
            self.next = slot + self.interval
        delay = slot - time.monotonic()
        return not (delay > 0 and stop.wait(delay))


class CaseNumbers:
    """Case numbers handed out to the clients, with the category mix of the demo."""

    def __init__(self) -> None:
        self.count = 0
        self.lock = threading.Lock()

    def next_walk(self, door: str) -> list[Command]:
        with self.lock:
            index = self.count
            self.count += 1
        category, fast_track = CATEGORIES_FOR_DEMO[index % len(CATEGORIES_FOR_DEMO)]
        number = f"YK-{door[0].upper()}-{index:05d}"
        return sample_walk(category, number, START + timedelta(minutes=index), fast_track=fast_track)


# ---- topics read by an independent client -------------------------------------------------------------


class TopicCollector:
    """Reads topics from the beginning with a plain kafka-python consumer, across a broker restart.

    Records are kept by (broker life, topic, partition, offset), so a re-read never counts twice; the
    campaign bumps ``life`` when it kills the broker, and the collector then starts again from the new
    log's beginning."""

    def __init__(
        self, bootstrap: str, topics: tuple[str, ...], on_record: Callable[[str, dict[str, Any]], None]
    ):
        self.bootstrap = bootstrap
        self.topics = topics
        self.on_record = on_record
        self.life = 0
        self.seen: set[tuple[int, str, int, int]] = set()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"collect-{topics[0]}", daemon=True)
        self.thread.start()

    def _consumer(self) -> KafkaConsumer:
        consumer = KafkaConsumer(
            bootstrap_servers=self.bootstrap,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            request_timeout_ms=5000,
            reconnect_backoff_max_ms=1000,
        )
        partitions = [
            TopicPartition(topic, p)
            for topic in self.topics
            for p in consumer.partitions_for_topic(topic) or ()
        ]
        if len(partitions) == 0:
            consumer.close()
            raise RuntimeError("topics not there yet")
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        return consumer

    def _run(self) -> None:
        consumer: KafkaConsumer | None = None
        life = -1
        while not self.stop.is_set():
            try:
                if consumer is None or life != self.life:
                    if consumer is not None:
                        with contextlib.suppress(Exception):
                            consumer.close()
                        consumer = None
                    life = self.life
                    consumer = self._consumer()
                for records in consumer.poll(timeout_ms=300, max_records=5000).values():
                    for record in records:
                        key = (life, record.topic, record.partition, record.offset)
                        if key in self.seen:
                            continue
                        self.seen.add(key)
                        document = json.loads(record.value)
                        document["_life"] = life
                        self.on_record(record.topic, document)
            except Exception:
                with contextlib.suppress(Exception):
                    if consumer is not None:
                        consumer.close()
                consumer = None
                self.stop.wait(0.5)
        if consumer is not None:
            consumer.close()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=10)


# ---- the campaign ---------------------------------------------------------------------------------------


class Campaign:
    """One run: stack, processes, load, faults, checks."""

    def __init__(self, config: CampaignConfig) -> None:
        self.config = config
        self.random = random.Random(config.seed)
        self.workdir = config.workdir or Path(tempfile.mkdtemp(prefix="yekuo-campaign-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.settings = Settings(
            state_dir=self.workdir / "stack",
            kafka_session_timeout_ms=2000,
            kafka_heartbeat_interval_ms=500,
            kafka_request_timeout_ms=3000,
        )
        self.stack = LocalStack(self.settings)
        self.ledger = Ledger()
        self.systems: SourceSystems = load_source_systems()
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.killing: set[str] = set()
        self.process_lock = threading.RLock()
        self.stop_load = threading.Event()
        self.stop_faults = threading.Event()
        self.stop_supervisor = threading.Event()
        self.pause_kills = threading.Event()
        self.broker_life = 0
        self.results: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.dead_letters: list[dict[str, Any]] = []
        self.notifications: Counter[str] = Counter()
        self.notification_lives: dict[str, set[int]] = defaultdict(set)
        self.collected = threading.Condition()
        self.cases = CaseNumbers()
        self.pacer = Pacer(config.rate)
        self.tokens: dict[tuple[str, ...], str] = {}
        self.database_url = ""
        self.bootstrap = ""
        self.api_port = 0

    # ---- processes ----------------------------------------------------------------------------------

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "DATABASE_URL": self.database_url,
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "YEKUO_STATE_DIR": str(self.settings.state_dir),
            "YEKUO_API_TOKEN_KEY": KEY,
            "YEKUO_KAFKA_SESSION_TIMEOUT_MS": "2000",
            "YEKUO_KAFKA_HEARTBEAT_INTERVAL_MS": "500",
            "YEKUO_KAFKA_REQUEST_TIMEOUT_MS": "3000",
            "YEKUO_NOTIFICATION_DISPATCH_SECONDS": "0.3",
            "YEKUO_SLA_TICK_SECONDS": "1",
            "YEKUO_LOG_JSON": "true",
            "YEKUO_RELAY_BATCH_SIZE": "200",
            "YEKUO_PROJECTION_BATCH_SIZE": "100",
        }

    def arguments(self, name: str) -> list[str]:
        if name == "api":
            return ["api", "--port", str(self.api_port)]
        if name.startswith("worker"):
            return ["worker"]
        return [name]

    def start(self, name: str) -> subprocess.Popen[bytes]:
        log_file = (self.workdir / f"{name}.log").open("ab")
        process = subprocess.Popen(  # noqa: S603 -- our own CLI
            [sys.executable, "-m", "cli.main", *self.arguments(name)],
            cwd=ROOT,
            env=self.env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log_file.close()
        with self.process_lock:
            self.processes[name] = process
        return process

    def names(self) -> list[str]:
        return [
            "api",
            "intake",
            "relay",
            *[f"worker-{i + 1}" for i in range(self.config.workers)],
            "sla-clock",
        ]

    def restart(self, name: str) -> subprocess.Popen[bytes]:
        """Start ``name`` again, whatever is down: every process waits for its dependencies by itself."""
        with self.process_lock:
            return self.start(name)

    def kill(self, name: str) -> int:
        with self.process_lock:
            process = self.processes[name]
            self.killing.add(name)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        with self.process_lock:
            self.killing.discard(name)
        return process.pid

    def supervise(self) -> None:
        """Restart a process that exited by itself, recording it: no process may stop on its own."""
        while not self.stop_supervisor.wait(0.5):
            with self.process_lock:
                exited = [
                    (name, p)
                    for name, p in self.processes.items()
                    if p.poll() is not None and name not in self.killing
                ]
                for name, process in exited:
                    tail = (self.workdir / f"{name}.log").read_text(errors="replace")[-2000:]
                    self.ledger.unexpected_exits.append(
                        {
                            "process": name,
                            "returncode": process.returncode,
                            "at": self.ledger.now(),
                            "log": tail,
                        }
                    )
                    self.restart(name)

    def ready(self, name: str, pid: int) -> bool:
        if name == "api":
            try:
                return (
                    httpx.get(f"http://127.0.0.1:{self.api_port}/health/ready", timeout=1).status_code == 200
                )
            except httpx.HTTPError:
                return False
        return any(h.pid == pid and h.ready and not h.stale for h in read_health(self.settings.state_dir))

    def all_ready(self) -> bool:
        with self.process_lock:
            current = {name: p.pid for name, p in self.processes.items()}
        return all(self.ready(name, pid) for name, pid in current.items())

    # ---- start-up -----------------------------------------------------------------------------------

    def up(self) -> None:
        ends = self.stack.up(("postgres", "kafka"))
        self.database_url, self.bootstrap = ends.database_url, ends.kafka_bootstrap_servers
        build_case_application(self.settings, self.database_url).close()  # tables before processes start
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            create_schema(conn, registry.select())
        with contextlib.closing(socket.socket()) as probe:
            probe.bind(("127.0.0.1", 0))
            self.api_port = int(probe.getsockname()[1])
        for name in self.names():
            self.start(name)
        wait_for(self.all_ready, "every process ready", 120)
        self.collectors = [
            TopicCollector(self.bootstrap, (INTAKE_RESULTS_TOPIC, INTAKE_DLQ_TOPIC), self.on_intake_record),
            TopicCollector(self.bootstrap, (NOTIFICATIONS_TOPIC,), self.on_notification),
        ]

    def on_intake_record(self, topic: str, record: dict[str, Any]) -> None:
        with self.collected:
            if topic == INTAKE_DLQ_TOPIC:
                self.dead_letters.append(record)
            elif record.get("message_id"):
                record["_seen"] = self.ledger.now()
                self.results[record["message_id"]].append(record)
            else:
                self.dead_letters.append(record)  # a result without a readable id: counted with the letters
            self.collected.notify_all()

    def on_notification(self, _topic: str, record: dict[str, Any]) -> None:
        with self.collected:
            self.notifications[str(record["notification_id"])] += 1
            self.notification_lives[str(record["notification_id"])].add(record["_life"])

    # ---- load: the API door -------------------------------------------------------------------------

    def token_for(self, command: Command) -> str:
        actor = command.actor
        if command.command_type in MANAGER_COMMANDS:
            claims: tuple[str, ...] = ("manager", actor.person_id, actor.name, actor.department, "")
        elif command.channel == "STAFF_CONSOLE":
            claims = ("staff", actor.person_id, actor.name, actor.department, "")
        else:
            system = next(
                s.name
                for s in self.systems.systems.values()
                if s.channel == command.channel and s.may_send(command.command_type)
            )
            claims = ("integrator", actor.person_id, actor.name, actor.department, system)
        if claims not in self.tokens:
            self.tokens[claims] = issue_token(
                KEY,
                role=Role(claims[0]),
                person_id=claims[1],
                name=claims[2],
                department=claims[3] if claims[0] != "integrator" else actor.department,
                source_system=claims[4] or None,
                hours=24,
            )
        return self.tokens[claims]

    def api_client(self) -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{self.api_port}", timeout=10) as client:
            while not self.stop_load.is_set():
                for command in self.cases.next_walk("api"):
                    if not self.pacer.wait(self.stop_load) or not self.send_over_api(
                        client, in_real_time(command)
                    ):
                        break

    def send_over_api(self, client: httpx.Client, command: Command) -> bool:
        """Send until answered, with the same command id; False when the case cannot go on."""
        path = (
            "/cases"
            if isinstance(command, SubmitApplication)
            else f"/cases/{command.case_number}/commands/{command.command_type}"
        )
        headers = {"Authorization": f"Bearer {self.token_for(command)}", "Command-Id": command.command_id}
        first = self.ledger.now()
        pause = 0.2
        while True:
            try:
                answer = client.post(path, json=payload_of(command), headers=headers)
            except httpx.TransportError as error:
                self.ledger.failures[f"api {type(error).__name__}"] += 1
            else:
                if answer.status_code == 200:
                    self.ledger.ack("api", command.command_id, command.case_number, first)
                    return True
                if answer.status_code < 500 and answer.status_code not in (408, 429):
                    with self.ledger.lock:
                        self.ledger.refusals.append(
                            {
                                "door": "api",
                                "command_id": command.command_id,
                                "status": answer.status_code,
                                "answer": answer.text[:300],
                            }
                        )
                    return False
                self.ledger.failures[f"api {answer.status_code}"] += 1
            if self.stop_load.is_set() and self.ledger.now() - first > 60:
                self.ledger.failures["api given up after the load stopped"] += 1
                return False
            time.sleep(pause * (0.75 + self.random.random() / 2))
            pause = min(pause * 2, 2.0)

    # ---- load: the intake door ----------------------------------------------------------------------

    def intake_client(self) -> None:
        producer: KafkaProducer | None = None
        lane: list[list[Command]] = []
        pending: dict[str, tuple[Command, float, float]] = {}  # message id → (command, first try, last send)
        while True:
            stopping = self.stop_load.is_set()
            if stopping and not pending:
                break
            if stopping and self.ledger.now() - self.ledger.load_stopped > SETTLE:
                self.ledger.failures["intake given up after the load stopped"] += len(pending)
                break
            while not stopping and len(lane) < self.config.intake_lane:
                lane.append(self.cases.next_walk("intake"))
            for walk in list(lane):
                if not walk:
                    lane.remove(walk)
                    continue
                command = walk[0]
                if command.command_id in pending:
                    continue
                if stopping or not self.pacer.wait(self.stop_load):
                    continue
                walk[0] = command = in_real_time(command)
                pending[command.command_id] = (command, self.ledger.now(), -RESEND_AFTER)
            for message_id, (command, first, last) in list(pending.items()):
                with self.collected:
                    seen = self.results.get(message_id)
                if seen:
                    del pending[message_id]
                    walk = next(w for w in lane if w and w[0].command_id == message_id)
                    if seen[0]["outcome"] == "ACCEPTED":
                        self.ledger.ack("intake", message_id, command.case_number, first)
                        walk.pop(0)
                    else:
                        with self.ledger.lock:
                            self.ledger.refusals.append(
                                {"door": "intake", "command_id": message_id, "result": seen[0]}
                            )
                        lane.remove(walk)
                    continue
                if self.ledger.now() - last < RESEND_AFTER:
                    continue
                try:
                    producer = producer or KafkaProducer(
                        bootstrap_servers=self.bootstrap,
                        acks="all",
                        linger_ms=5,
                        request_timeout_ms=3000,
                        max_block_ms=3000,
                        reconnect_backoff_max_ms=1000,
                    )
                    envelope = envelope_for(command, source_for(command, self.systems))
                    producer.send(
                        INTAKE_TOPIC, key=command.case_number.encode(), value=envelope.to_bytes()
                    ).get(timeout=5)
                    with self.ledger.lock:
                        self.ledger.sent_intake.setdefault(message_id, self.ledger.now())
                    pending[message_id] = (command, first, self.ledger.now())
                except Exception as error:
                    self.ledger.failures[f"intake {type(error).__name__}"] += 1
                    with contextlib.suppress(Exception):
                        if producer is not None:
                            producer.close(timeout=1)
                    producer = None
                    pending[message_id] = (command, first, self.ledger.now() - RESEND_AFTER + 1.0)
            with self.collected:
                self.collected.wait(0.05)
        if producer is not None:
            producer.close(timeout=5)

    # ---- hostile input ------------------------------------------------------------------------------

    def hostile_burst(self, index: int) -> None:
        valid = sample_walk("RESIDENTIAL", f"YK-H-{index:04d}", START)[0]
        base = json.loads(envelope_for(valid, "ONLINE_HALL").to_bytes())
        messages = {
            "bad json": b'{"message_id": "broken-%d", ' % index,
            "not utf-8": b"\xff\xfe not utf-8 %d" % index,
            "unknown type": json.dumps(
                {**base, "message_id": f"h-type-{index}", "type": "LaunchRocket"}
            ).encode(),
            "wrong source": json.dumps(
                {**base, "message_id": f"h-src-{index}", "source_system": "HACKER"}
            ).encode(),
            "schema": json.dumps({**base, "message_id": f"h-schema-{index}", "actor": "nobody"}).encode(),
        }
        with contextlib.suppress(Exception):
            producer = KafkaProducer(
                bootstrap_servers=self.bootstrap, acks="all", max_block_ms=3000, request_timeout_ms=3000
            )
            try:
                life = self.broker_life
                for kind, value in messages.items():
                    sent = producer.send(INTAKE_TOPIC, key=b"hostile", value=value).get(timeout=5)
                    with self.ledger.lock:
                        self.ledger.hostile_intake.append(
                            {"kind": kind, "life": life, "partition": sent.partition, "offset": sent.offset}
                        )
            finally:
                producer.close(timeout=2)
        token = self.token_for(valid)
        requests: list[tuple[str, str, dict[str, str], bytes]] = [
            (
                "bad json",
                "/cases",
                {"Authorization": f"Bearer {token}", "Command-Id": f"hx-{index}"},
                b'{"x": ',
            ),
            (
                "no command id",
                "/cases",
                {"Authorization": f"Bearer {token}"},
                json.dumps(payload_of(valid)).encode(),
            ),
            (
                "unknown type",
                "/cases/YK-H/commands/LaunchRocket",
                {"Authorization": f"Bearer {token}", "Command-Id": f"hy-{index}"},
                b"{}",
            ),
            (
                "bad token",
                "/cases",
                {"Authorization": "Bearer nonsense", "Command-Id": f"hz-{index}"},
                json.dumps(payload_of(valid)).encode(),
            ),
            (
                "invalid fields",
                "/cases",
                {"Authorization": f"Bearer {token}", "Command-Id": f"hw-{index}"},
                json.dumps({**payload_of(valid), "capacity_kva": "lots"}).encode(),
            ),
        ]
        with httpx.Client(base_url=f"http://127.0.0.1:{self.api_port}", timeout=10) as client:
            for kind, path, headers, body in requests:
                try:
                    answer = client.post(
                        path, content=body, headers={**headers, "Content-Type": "application/json"}
                    )
                except httpx.TransportError:
                    self.ledger.hostile_api["no answer (door down)"] += 1
                    continue
                self.ledger.hostile_api[f"{kind} {answer.status_code}"] += 1
                if answer.status_code >= 500:
                    self.ledger.hostile_api["5xx"] += 1

    # ---- faults -------------------------------------------------------------------------------------

    def chaos(self) -> None:
        """Faults until the time is up and every kind has happened once (``FaultSchedule``)."""
        config = self.config
        schedule = FaultSchedule(self.random, self.names())
        started = self.ledger.now()
        next_fault = started + config.kill_every
        next_hostile = started + config.hostile_every / 2
        hostile_index = 0
        while not (self.stop_faults.wait(0.1) and schedule.every_kind_done):
            now = self.ledger.now()
            if now >= next_fault:
                fault = schedule.next()
                if fault in SERVER_KINDS:
                    self.server_outage(fault)
                    now = self.ledger.now()
                else:
                    self.kill_and_restart(fault)
                next_fault = now + config.kill_every * (0.7 + 0.6 * self.random.random())
            if now >= next_hostile:
                self.hostile_burst(hostile_index)
                hostile_index += 1
                next_hostile = now + config.hostile_every

    def kill_and_restart(self, name: str) -> None:
        old = self.kill(name)
        record = self.ledger.event(kind="kill", process=name, pid=old)
        process = self.restart(name)
        record["restarted_at"] = round(self.ledger.now(), 3)
        threading.Thread(target=self.time_recovery, args=(record, name, process.pid), daemon=True).start()

    def time_recovery(self, record: dict[str, Any], name: str, pid: int) -> None:
        if name == "intake":
            return  # measured afterwards: the door's next acknowledgement
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.processes.get(name) is not None and self.processes[name].pid != pid:
                record["recovered_in"] = None  # killed again before it was ready
                return
            if self.ready(name, pid):
                record["recovered_in"] = round(self.ledger.now() - record["restarted_at"], 3)
                return
            time.sleep(0.1)
        record["recovered_in"] = None

    def server_outage(self, server: str) -> None:
        if server == "postgres":
            kill_postgres(self.stack)
        else:
            self.broker_life += 1
            kill_broker(self.stack)
            for collector in self.collectors:
                collector.life = self.broker_life
        record = self.ledger.event(kind="server kill", process=server)
        time.sleep(self.config.outage_seconds)  # the outage itself
        self.stack.up((server,))  # the same port (and, for PostgreSQL, the same data directory)
        record["restarted_at"] = round(self.ledger.now(), 3)
        record["restarted_wall"] = datetime.now(UTC)
        try:
            wait_for(self.all_ready, f"every process ready after the {server} restart", 120)
            record["all_ready_in"] = round(self.ledger.now() - record["restarted_at"], 3)
        except AssertionError:
            record["all_ready_in"] = None

    # ---- run ----------------------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        try:
            began = time.monotonic()
            self.up()
            self.startup_seconds = round(time.monotonic() - began, 1)
            supervisor = threading.Thread(target=self.supervise, daemon=True)
            supervisor.start()
            clients = [
                threading.Thread(target=self.api_client, daemon=True) for _ in range(self.config.api_clients)
            ]
            clients += [
                threading.Thread(target=self.intake_client, daemon=True)
                for _ in range(self.config.intake_clients)
            ]
            self.ledger.load_started = self.ledger.now()
            for client in clients:
                client.start()
            chaos = threading.Thread(target=self.chaos, daemon=True)
            chaos.start()
            self.stop_faults.wait(self.config.seconds)
            self.stop_faults.set()
            chaos.join(timeout=180)
            self.stop_supervisor.set()
            supervisor.join(timeout=10)
            wait_for(self.all_ready, "every process ready after the last kill", 120)
            self.ledger.load_stopped = self.ledger.now()
            self.stop_load.set()
            for client in clients:
                client.join(timeout=SETTLE + 30)
            self.kill("sla-clock")  # it appends crossing facts: stopped, the log stands still for the checks
            return self.check()
        finally:
            self.down()

    def down(self) -> None:
        for collector in getattr(self, "collectors", []):
            collector.close()
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=10)
        self.stack.down(purge=True)

    # ---- checks -------------------------------------------------------------------------------------

    def check(self) -> dict[str, Any]:
        checks_started = time.monotonic()
        settle_started = time.monotonic()
        wait_for(self.caught_up, "the relay and the read models caught up with the event store", SETTLE)
        settled_in = time.monotonic() - settle_started
        live = read_models(self.database_url)  # before the rebuild, which swaps its rows into these tables
        app = build_case_application(self.settings, self.database_url, create_tables=False)
        try:
            log = CaseEventLog(app)
            with psycopg.connect(self.database_url, autocommit=True) as conn:
                rebuild(conn, registry.select(), log.read_all, log.head)
            rebuilt = read_models(self.database_url)
            missing = []
            for command_id in self.ledger.acks:
                receipt = app.receipt(command_id)
                if receipt is None or not receipt.accepted:
                    missing.append(command_id)
        finally:
            app.close()
        differing = {
            table: {
                "live_only": len(set(rows) - set(rebuilt.get(table, []))),
                "rebuild_only": len(set(rebuilt.get(table, [])) - set(rows)),
            }
            for table, rows in live.items()
            if rows != rebuilt.get(table)
        }
        checks = {
            "acknowledged": self.acknowledged_figures(missing),
            "case_events_topic": self.case_events_topic(),
            "read_models": {
                "tables": len(live),
                "rows": sum(len(r) for r in live.values()),
                "differing": differing,
            },
            "intake": self.intake_figures(),
            "notifications": self.notification_figures(),
            "hash_chains": self.hash_chains(),
            "processes": self.process_figures(),
            "availability": self.availability(),
        }
        broken = broken_guarantees(checks)
        checks_seconds = round(time.monotonic() - checks_started, 1)
        return {
            "benchmark": "campaign",
            "config": {
                k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(self.config).items()
            },
            "workdir": str(self.workdir),
            "startup_seconds": getattr(self, "startup_seconds", None),
            "settled_in_seconds": round(settled_in, 1),
            "checks_seconds": checks_seconds,
            "checks": checks,
            "broken": broken,
            "ok": not broken,
        }

    def caught_up(self) -> bool:
        with psycopg.connect(self.database_url, autocommit=True, connect_timeout=3) as conn:
            head = conn.execute("SELECT coalesce(max(notification_id), 0) FROM cases_events").fetchone()
            relayed = conn.execute("SELECT coalesce(min(position), 0) FROM relay_state").fetchone()
            heads = dict(
                conn.execute(
                    "SELECT originator_id, max(originator_version) FROM cases_events "
                    "WHERE topic LIKE %s GROUP BY originator_id",
                    (CASE_EVENT_TOPIC_PREFIX + "%",),
                ).fetchall()
            )
            versions = dict(conn.execute("SELECT case_id, version FROM progress_versions").fetchall())
            pending = conn.execute(
                "SELECT count(*) FROM notifications n WHERE NOT EXISTS "
                "(SELECT 1 FROM notification_deliveries d WHERE d.notification_id = n.notification_id)"
            ).fetchone()
        return (
            head is not None
            and relayed is not None
            and relayed[0] >= head[0]
            and all(versions.get(case) == version for case, version in heads.items())
            and pending == (0,)
        )

    def acknowledged_figures(self, missing: list[str]) -> dict[str, Any]:
        by_door = Counter(a["door"] for a in self.ledger.acks.values())
        return {
            "by_door": dict(by_door),
            "missing_from_store": len(missing),
            "missing_examples": missing[:10],
            "refused_or_rejected": len(self.ledger.refusals),
            "refusal_examples": self.ledger.refusals[:5],
            "client_errors_retried": dict(self.ledger.failures),
        }

    def case_events_topic(self) -> dict[str, Any]:
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            incarnations = {row[0] for row in conn.execute("SELECT incarnation FROM relay_state")}
            stored = {
                (str(case), version)
                for case, version in conn.execute(
                    "SELECT originator_id, originator_version FROM cases_events WHERE topic LIKE %s",
                    (CASE_EVENT_TOPIC_PREFIX + "%",),
                )
            }
        on_topic: Counter[tuple[str, int]] = Counter()
        other_incarnation = 0
        for record in read_topic(self.bootstrap, CASE_EVENTS_TOPIC):
            headers = dict(record.headers or [])
            if headers.get(INCARNATION_HEADER, b"").decode() not in incarnations:
                other_incarnation += 1
                continue
            document = json.loads(record.value)
            on_topic[(document["case_id"], document["case_version"])] += 1
        return {
            "stored_events": len(stored),
            "published_current_incarnation": sum(on_topic.values()),
            "missing": len(stored - set(on_topic)),
            "missing_examples": sorted(stored - set(on_topic))[:5],
            "not_in_store": len(set(on_topic) - stored),
            "repeats": sum(count - 1 for count in on_topic.values()),
            "other_incarnation_records": other_incarnation,
        }

    def intake_figures(self) -> dict[str, Any]:
        with self.collected:
            results = {k: list(v) for k, v in self.results.items()}
            letters = list(self.dead_letters)
        unanswered = [m for m in self.ledger.sent_intake if m not in results]
        disagreeing = [
            m
            for m in self.ledger.sent_intake
            if m in results and len({(r["outcome"], r.get("case_version")) for r in results[m]}) > 1
        ]
        answered = {(r["_life"], r["partition"], r["offset"]) for rs in results.values() for r in rs}
        answered |= {(d["_life"], d["partition"], d["offset"]) for d in letters if "partition" in d}
        current = [h for h in self.ledger.hostile_intake if h["life"] == self.broker_life]
        hostile_unanswered = [h for h in current if (h["life"], h["partition"], h["offset"]) not in answered]
        rules = Counter(d.get("rule") for d in letters)
        return {
            "message_ids_sent": len(self.ledger.sent_intake),
            "without_result": len(unanswered),
            "without_result_examples": unanswered[:5],
            "with_disagreeing_results": len(disagreeing),
            "repeated_results": sum(len(v) - 1 for k, v in results.items() if k in self.ledger.sent_intake),
            "hostile_sent": len(self.ledger.hostile_intake),
            "hostile_sent_to_current_broker": len(current),
            "hostile_without_outcome": len(hostile_unanswered),
            "dead_letters_by_rule": dict(rules),
        }

    def notification_figures(self) -> dict[str, Any]:
        restart_wall = next(
            (
                e["restarted_wall"]
                for e in self.ledger.events
                if e.get("process") == "kafka" and "restarted_wall" in e
            ),
            None,
        )
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            known = {str(n) for (n,) in conn.execute("SELECT notification_id FROM notifications")}
            ledger = [
                (str(n), at)
                for n, at in conn.execute("SELECT notification_id, published_at FROM notification_deliveries")
            ]
        deadline = time.monotonic() + 30
        while True:  # the collector may be a moment behind the ledger
            with self.collected:
                seen = dict(self.notifications)
            unseen_after = [
                n for n, at in ledger if n not in seen and (restart_wall is None or at > restart_wall)
            ]
            if not unseen_after or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        unseen_before = [
            n for n, at in ledger if n not in seen and restart_wall is not None and at <= restart_wall
        ]
        # The documented repeat (docs/messaging.md): a notifier interrupted between the broker's
        # acknowledgement and its ledger commit republishes at most one batch, with the same ids. Workers
        # run the notifier, and a server kill interrupts it too.
        interruptions = sum(
            1
            for e in self.ledger.events
            if (e["kind"] == "kill" and kind_of(e["process"]) == "worker") or e["kind"] == "server kill"
        )
        repeats = sum(count - 1 for count in seen.values())
        return {
            "in_read_model": len(known),
            "delivered_per_ledger": len(ledger),
            "distinct_seen_on_topic": len(seen),
            "repeats_on_topic": repeats,
            "repeat_bound": DISPATCH_BATCH * interruptions,
            "most_sends_of_one_id": max(seen.values(), default=0),
            "seen_but_not_in_read_model": len(set(seen) - known),
            "delivered_after_broker_restart_not_seen": len(unseen_after),
            "lost_with_the_broker_memory": len(unseen_before),
        }

    def hash_chains(self) -> dict[str, Any]:
        verdict = subprocess.run(
            [sys.executable, "-m", "cli.main", "case", "verify", "--all"],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        lines = verdict.stdout.strip().splitlines()
        return {
            "exit_code": verdict.returncode,
            "summary": lines[-1] if lines else verdict.stderr[-300:],
            "not_intact": lines[:-1][:5],
        }

    def process_figures(self) -> dict[str, Any]:
        tracebacks = {}
        for name in self.names():
            path = self.workdir / f"{name}.log"
            text = path.read_text(errors="replace") if path.exists() else ""
            tracebacks[name] = text.count("Traceback")
        kills = [e for e in self.ledger.events if e["kind"] == "kill"]
        by_kind = Counter(kind_of(e["process"]) for e in kills)
        by_kind.update(e["process"] for e in self.ledger.events if e["kind"] == "server kill")
        return {
            "kills": len(kills),
            "kills_by_kind": {kind: by_kind[kind] for kind in FAULT_KINDS},
            "kinds_never_killed": [kind for kind in FAULT_KINDS if not by_kind[kind]],
            "kills_by_process": dict(Counter(e["process"] for e in kills)),
            "server_kills": [e["process"] for e in self.ledger.events if e["kind"] == "server kill"],
            "unexpected_exits": len(self.ledger.unexpected_exits),
            "unexpected_exit_examples": [
                {k: v for k, v in e.items() if k != "log"} | {"log_tail": e["log"][-600:]}
                for e in self.ledger.unexpected_exits[:3]
            ],
            "tracebacks_in_logs": tracebacks,
            "hostile_api": dict(self.ledger.hostile_api),
        }

    def availability(self) -> dict[str, Any]:
        start, stop = self.ledger.load_started, self.ledger.load_stopped
        doors = {}
        for door, times in self.ledger.ack_times.items():
            inside = sorted(t for t in times if start <= t <= stop)
            marks = [start, *inside, stop]
            gaps = [b - a for a, b in itertools.pairwise(marks)]
            waits = sorted(a["waited"] for a in self.ledger.acks.values() if a["door"] == door)
            doors[door] = {
                "acknowledged": len(times),
                "longest_gap_between_acks_s": round(max(gaps), 2) if gaps else None,
                "longest_wait_for_an_ack_s": round(waits[-1], 2) if waits else None,
                "p50_wait_s": round(waits[len(waits) // 2], 3) if waits else None,
                "p99_wait_s": round(waits[int(len(waits) * 0.99)], 3) if waits else None,
            }
        recoveries: dict[str, list[float]] = defaultdict(list)
        restarts = []
        for event in self.ledger.events:
            if event["kind"] == "kill" and event["process"] == "intake":
                after = [t for t in self.ledger.ack_times.get("intake", []) if t > event["restarted_at"]]
                if after:
                    recoveries["intake"].append(round(min(after) - event["restarted_at"], 3))
            elif event["kind"] == "kill" and event.get("recovered_in") is not None:
                recoveries[kind_of(event["process"])].append(event["recovered_in"])
            elif event["kind"] == "server kill":
                restarted = event.get("restarted_at")
                next_acks = {}
                for door, times in self.ledger.ack_times.items():
                    after = [t for t in times if restarted is not None and t > restarted]
                    next_acks[door] = round(min(after) - restarted, 3) if after else None
                restarts.append(
                    {
                        "server": event["process"],
                        "down_for_s": round((restarted or 0) - event["at"], 2),
                        "every_process_ready_in_s": event.get("all_ready_in"),
                        "next_ack_after_restart_s": next_acks,
                    }
                )
        return {
            "doors": doors,
            "recovery_after_kill_s": {
                name: {"kills_timed": len(v), "median": sorted(v)[len(v) // 2], "max": max(v)}
                for name, v in recoveries.items()
                if v
            },
            "server_restarts": restarts,
        }


def broken_guarantees(checks: dict[str, Any]) -> list[str]:
    """The guarantees the figures show broken (empty: all held)."""
    broken = []
    if checks["acknowledged"]["missing_from_store"]:
        broken.append("acknowledged commands missing from the store")
    if checks["acknowledged"]["refused_or_rejected"]:
        broken.append("valid commands of a sample walk refused or rejected")
    if checks["case_events_topic"]["missing"] or checks["case_events_topic"]["not_in_store"]:
        broken.append("stored events missing from yekuo.case-events.v1 (current incarnation), or extra ones")
    if checks["read_models"]["differing"]:
        broken.append("read models differ from a rebuild")
    intake = checks["intake"]
    if intake["without_result"] or intake["with_disagreeing_results"] or intake["hostile_without_outcome"]:
        broken.append("intake messages without exactly one outcome")
    notifications = checks["notifications"]
    if (
        notifications["seen_but_not_in_read_model"]
        or notifications["delivered_after_broker_restart_not_seen"]
        or notifications["repeats_on_topic"] > notifications["repeat_bound"]
    ):
        broken.append(
            "notifications delivered that do not exist, recorded as delivered and never published, "
            "or repeated beyond the documented bound"
        )
    if checks["processes"]["kinds_never_killed"]:
        never = ", ".join(checks["processes"]["kinds_never_killed"])
        broken.append(f"a kind of fault never happened: {never}")
    if checks["hash_chains"]["exit_code"] != 0:
        broken.append("hash chains not intact")
    if checks["processes"]["unexpected_exits"]:
        broken.append("a process exited by itself")
    if checks["processes"]["hostile_api"].get("5xx"):
        broken.append("a malformed API request got a 5xx")
    return broken


# ---- helpers ----------------------------------------------------------------------------------------------


def payload_of(command: Command) -> dict[str, Any]:
    """A command's HTTP body: its fields, reason and occurred_at (kept, so a retry is the same command)."""
    fields = {
        f.name: getattr(command, f.name) for f in dataclasses.fields(command) if f.name not in ENVELOPE_FIELDS
    }
    return jsonable_encoder({**fields, "reason": command.reason, "occurred_at": command.occurred_at})


def in_real_time(command: Command) -> Command:
    """The command as it happens now: its first send fixes its time, and every retry keeps it.

    A sample walk's own times lie in the past, and the SLA clock records its facts at the present, so a
    walk on its own clock would meet ``OCCURRED_BEFORE_LAST_EVENT`` as soon as a crossing was recorded."""
    now = datetime.now(SHANGHAI)
    shift = now - command.occurred_at
    moved: dict[str, Any] = {"occurred_at": now}
    for item in dataclasses.fields(command):
        value = getattr(command, item.name)
        if isinstance(value, date) and not isinstance(value, datetime):
            moved[item.name] = value + timedelta(days=shift.days + 1)  # e.g. a connection's booked day
    return dataclasses.replace(command, **moved)


def wait_for(condition: Callable[[], bool], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(psycopg.OperationalError):
            if condition():
                return
        time.sleep(0.2)
    raise AssertionError(f"gave up waiting for {what} after {timeout:.0f}s")


def read_models(database_url: str) -> dict[str, list[tuple[Any, ...]]]:
    models = {}
    with psycopg.connect(database_url, autocommit=True) as conn:
        for projection in registry.select():
            for table in all_tables(projection):
                rows = conn.execute(f"SELECT * FROM {table.name}").fetchall()  # noqa: S608 -- our table names
                models[table.name] = sorted(rows, key=repr)
    return models


def read_topic(bootstrap: str, topic: str) -> Iterator[Any]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, consumer_timeout_ms=3000)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        yield from consumer
    finally:
        consumer.close()


def kill_postgres(stack: LocalStack) -> None:
    """kill -9 of the postmaster and every backend."""
    pid = stack._postmaster_pid()
    if pid is None:
        raise RuntimeError("PostgreSQL is not running")
    postmaster = psutil.Process(pid)
    victims = [postmaster, *postmaster.children(recursive=True)]
    for process in victims:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.send_signal(signal.SIGKILL)
    psutil.wait_procs(victims, timeout=10)


def kill_broker(stack: LocalStack) -> None:
    process = stack._tansu_process()
    if process is None:
        raise RuntimeError("the broker is not running")
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)


def run_campaign(config: CampaignConfig) -> dict[str, Any]:
    """The campaign's entry point: one run, its report (``report["ok"]``: every guarantee held)."""
    started = time.monotonic()
    report = Campaign(config).run()
    report["wall_seconds"] = round(time.monotonic() - started, 1)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=240.0, help="how long the load and faults last")
    parser.add_argument("--rate", type=float, default=20.0, help="commands offered per second")
    parser.add_argument("--kill-every", type=float, default=3.5, help="mean seconds between process kills")
    parser.add_argument("--workers", type=int, default=2, help="projection workers in one group")
    parser.add_argument(
        "--outage-seconds", type=float, default=3.0, help="how long PostgreSQL and the broker stay down"
    )
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument(
        "--workdir", type=Path, default=None, help="keep logs here (default: a temporary dir)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    config = CampaignConfig(
        seconds=args.seconds,
        rate=args.rate,
        kill_every=args.kill_every,
        workers=args.workers,
        outage_seconds=args.outage_seconds,
        seed=args.seed,
        workdir=args.workdir,
    )
    report = run_campaign(config)
    print(json.dumps(report, indent=2, ensure_ascii=False, default=str))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
