"""``yekuo simulate``: publish a realistic mixed workload through intake at a chosen rate and report the
outcomes read back from ``yekuo.intake-results.v1``."""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import typer
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from pydantic import ValidationError
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from app.intake_envelopes import envelope_for
from consumers.backoff import kafka_timeouts
from demo.workload import Message, workload
from infra.intake_messages import IntakeResult
from infra.kafka_admin import ensure_yekuo_topics
from infra.settings import INTAKE_RESULTS_TOPIC, INTAKE_TOPIC, Settings
from infra.source_systems import load_source_systems
from infra.stack import endpoints

console = Console()
DEFAULT_CASES = 20
SIMULATED_START = datetime(2025, 9, 1, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
"""Business time of the first simulated application (messages may not lie in the future)."""


@dataclass
class ResultWatcher:
    """Reads ``yekuo.intake-results.v1`` in a thread and keeps the first outcome of each awaited id."""

    bootstrap: str
    wanted: set[str] = field(default_factory=set)
    results: dict[str, IntakeResult] = field(default_factory=dict)
    duplicates: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.consumer = KafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False)
        partitions = [
            TopicPartition(INTAKE_RESULTS_TOPIC, p)
            for p in self.consumer.partitions_for_topic(INTAKE_RESULTS_TOPIC) or ()
        ]
        self.consumer.assign(partitions)
        self.consumer.seek_to_end(*partitions)
        for partition in partitions:  # resolve the positions now, before anything is published
            self.consumer.position(partition)
        self.thread = threading.Thread(target=self._run, name="simulate-results", daemon=True)
        self.thread.start()

    def expect(self, message_id: str) -> None:
        with self.lock:
            self.wanted.add(message_id)

    def _run(self) -> None:
        while not self.stop.is_set():
            for records in self.consumer.poll(timeout_ms=200).values():
                for record in records:
                    try:
                        result = IntakeResult.model_validate_json(record.value)
                    except ValidationError:
                        continue  # not a result of ours (results topic carries only IntakeResult)
                    with self.lock:
                        if result.message_id not in self.wanted:
                            continue
                        if result.message_id in self.results:
                            self.duplicates += 1
                        else:
                            self.results[result.message_id] = result

    def counts(self) -> tuple[int, int]:
        """(results received, refused or invalid among them)."""
        with self.lock:
            refused = sum(1 for r in self.results.values() if r.outcome != "ACCEPTED")
            return len(self.results), refused

    def missing(self) -> set[str]:
        with self.lock:
            return self.wanted - set(self.results)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=10)
        self.consumer.close()


def simulate(
    rate: float = typer.Option(50.0, min=0.1, help="Messages published per second."),
    cases: int | None = typer.Option(
        None, min=1, help=f"Cases to run from application to follow-up (default {DEFAULT_CASES})."
    ),
    duration: float | None = typer.Option(
        None, min=0.1, help="Publish for this many seconds instead (cases still open stay mid-route)."
    ),
    in_flight: int = typer.Option(40, min=1, help="Cases open at once (their messages interleave)."),
    prefix: str | None = typer.Option(None, help="Case-number prefix (default: YK-SIM-<UTC time>)."),
    seed: int = typer.Option(1, help="Seed of the interleaving, for a reproducible mix."),
    wait: float = typer.Option(120.0, min=0, help="Seconds to wait for the last outcomes."),
) -> None:
    """模拟 Publish a mixed workload on yekuo.intake.v1 as integrating systems would; summarise outcomes."""
    if cases is None and duration is None:
        cases = DEFAULT_CASES
    settings = Settings()
    bootstrap = endpoints(settings, ("kafka",)).kafka_bootstrap_servers
    ensure_yekuo_topics(bootstrap, settings)
    systems = load_source_systems(settings.source_systems_file)
    prefix = prefix or f"YK-SIM-{datetime.now(UTC):%Y%m%d%H%M%S}"
    messages = workload(prefix, SIMULATED_START, systems, cases=cases, in_flight=in_flight, seed=seed)
    if cases is not None:
        planned = list(messages)
        messages, total = iter(planned), len(planned)
    else:
        total = int(rate * (duration or 0))
    watcher = ResultWatcher(bootstrap)
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, **kafka_timeouts(30_000))
    sent: list[Message] = []
    try:
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[note]}"),
            TimeElapsedColumn(),
            console=console,
        ) as progress:
            publishing = progress.add_task("published", total=total, note=f"{rate:g}/s")
            answering = progress.add_task("results", total=total, note="refused 0")
            began = time.monotonic()
            for message in messages:
                due = began + len(sent) / rate
                if duration is not None and due - began >= duration:
                    break
                while (now := time.monotonic()) < due:
                    _show(progress, answering, watcher, len(sent))
                    time.sleep(min(due - now, 0.05))
                watcher.expect(message.message_id)
                envelope = envelope_for(message.command, message.source_system)
                producer.send(INTAKE_TOPIC, key=message.case_number.encode(), value=envelope.to_bytes())
                sent.append(message)
                progress.update(publishing, completed=len(sent))
            producer.flush()
            progress.update(publishing, total=len(sent), completed=len(sent))
            deadline = time.monotonic() + wait
            while watcher.missing() and time.monotonic() < deadline:
                _show(progress, answering, watcher, len(sent))
                time.sleep(0.2)
            _show(progress, answering, watcher, len(sent))
    finally:
        producer.close()
        watcher.close()
    elapsed = time.monotonic() - began
    _summary(sent, watcher, elapsed)
    if watcher.missing():
        console.print(
            f"{len(watcher.missing())} messages got no outcome within {wait:g} s (is `yekuo intake` running?)"
        )
        raise typer.Exit(1)


def _show(progress: Progress, task: TaskID, watcher: ResultWatcher, total: int) -> None:
    received, refused = watcher.counts()
    progress.update(task, total=max(total, 1), completed=received, note=f"refused {refused}")


def _summary(sent: list[Message], watcher: ResultWatcher, elapsed: float) -> None:
    results = watcher.results
    outcomes = Counter(results[m.message_id].outcome for m in sent if m.message_id in results)
    table = Table(title=f"模拟接入 simulate: {len(sent)} messages in {elapsed:.1f} s")
    for column in ("outcome", "messages"):
        table.add_column(column)
    for outcome in ("ACCEPTED", "REFUSED", "INVALID"):
        table.add_row(outcome, str(outcomes.get(outcome, 0)))
    table.add_row("no outcome", str(len(watcher.missing())))
    console.print(table)

    by_source = Table(title="by source system")
    for column in ("source system", "sent", "accepted", "refused/invalid"):
        by_source.add_column(column)
    per_source: dict[str, Counter[str]] = {}
    for message in sent:
        tally = per_source.setdefault(message.source_system, Counter())
        tally["sent"] += 1
        result = results.get(message.message_id)
        if result is not None:
            tally["accepted" if result.outcome == "ACCEPTED" else "other"] += 1
    for source, tally in sorted(per_source.items()):
        by_source.add_row(source, str(tally["sent"]), str(tally["accepted"]), str(tally["other"]))
    console.print(by_source)

    rules = Counter(f"{r.rule} ({r.command_type})" for r in results.values() if r.outcome != "ACCEPTED")
    for rule, count in rules.most_common(10):
        console.print(f"refused: {count} × {rule}")
    case_numbers = {m.case_number for m in sent}
    finished = {
        m.case_number
        for m in sent
        if m.last and m.message_id in results and results[m.message_id].outcome == "ACCEPTED"
    }
    advanced = {
        m.case_number
        for m in sent
        if m.step > 0 and m.message_id in results and results[m.message_id].outcome == "ACCEPTED"
    }
    console.print(
        f"cases: {len(case_numbers)} started, {len(advanced)} advanced past application, "
        f"{len(finished)} completed to follow-up; repeated outcomes seen: {watcher.duplicates}"
    )
