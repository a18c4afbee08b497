"""``yekuo intake``: run the intake consumer; ``yekuo intake publish FILE``: send envelopes to it."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console

from cli.common import application_once_database_up
from infra.kafka_admin import ensure_yekuo_topics
from infra.settings import INTAKE_TOPIC, Settings
from infra.source_systems import load_source_systems
from infra.stack import endpoints

console = Console()
intake_app = typer.Typer(
    help="接入 Intake: integrating systems' commands on yekuo.intake.v1, one result each.",
    invoke_without_command=True,
)


@intake_app.callback()
def intake(
    ctx: typer.Context,
    group: str = typer.Option(
        "yekuo-intake", help="Consumer group; consumers of one group share partitions."
    ),
) -> None:
    """接入 Run the intake consumer (faust) on yekuo.intake.v1 (stops cleanly on SIGTERM)."""
    if ctx.invoked_subcommand is not None:
        return
    from faust import Worker

    from consumers.intake import build_intake

    settings = Settings()
    ends = endpoints(settings)
    ensure_yekuo_topics(ends.kafka_bootstrap_servers, settings)
    case_app = application_once_database_up(  # started during an outage: waits (the campaign found it exit)
        "intake", settings, ends.database_url, pool_timeout=settings.intake_pool_timeout_seconds
    )
    built = build_intake(
        settings,
        ends.kafka_bootstrap_servers,
        case_app,
        load_source_systems(settings.source_systems_file),
        group=group,
    )
    try:
        Worker(built.app, loglevel=settings.log_level.lower(), quiet=True).execute_from_commandline()
    finally:
        built.close()


@intake_app.command()
def publish(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="JSON lines: one envelope a line."),
) -> None:
    """Publish the envelopes of a JSON-lines file to yekuo.intake.v1 (key: each one's case number)."""
    from kafka import KafkaProducer

    settings = Settings()
    ends = endpoints(settings, ("kafka",))
    ensure_yekuo_topics(ends.kafka_bootstrap_servers, settings)
    producer = KafkaProducer(
        bootstrap_servers=ends.kafka_bootstrap_servers, acks="all", linger_ms=5, retries=5
    )
    sent = 0
    for number, line in enumerate(file.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            key = str(json.loads(line).get("case_number", "")).encode()
        except (ValueError, AttributeError):
            console.print(f"line {number}: not a JSON object; sent without a key (it will be dead-lettered)")
            key = b""
        producer.send(INTAKE_TOPIC, key=key, value=line.encode())
        sent += 1
    producer.flush()
    producer.close()
    console.print(f"published {sent} messages to {INTAKE_TOPIC}")
