"""``yekuo demo``: the main job on embedded defaults — start the stack and walk a sample case of each
category through every stage, printing each history and its hash-chain verification."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import typer
from rich.console import Console

from infra.bootstrap import build_case_application
from infra.case_cli import history_table
from infra.sample_cases import CATEGORIES_FOR_DEMO, sample_walk
from infra.settings import Settings
from infra.stack import LocalStack

DEMO_START = datetime(2025, 9, 1, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai"))


def demo(
    keep_running: bool = typer.Option(False, help="Leave the servers running afterwards."),
) -> None:
    """Start the stack and walk a sample case of every category through every stage."""
    console = Console(width=max(Console().width, 160))
    settings = Settings()
    stack = LocalStack(settings)
    endpoints = stack.up()
    console.print(
        f"stack: PostgreSQL {endpoints.database_url} · Kafka {endpoints.kafka_bootstrap_servers} "
        f"(started: {', '.join(endpoints.started) or 'none'})"
    )
    try:
        app = build_case_application(settings, endpoints.database_url)
        broken, events = [], 0
        for category, fast_track in CATEGORIES_FOR_DEMO:
            case_number = f"YK-DEMO-{category}{'-FAST' if fast_track else ''}"
            for command in sample_walk(category, case_number, DEMO_START, fast_track=fast_track):
                outcome = app.execute(command)
                if not outcome.accepted:
                    raise typer.Exit(f"sample command rejected: {outcome.rule}: {outcome.message}")
            console.print(history_table(app, case_number))
            verdict = app.verify(case_number)
            events += verdict.events_checked
            console.print(
                f"{case_number}: {app.get_case(case_number).status.label}; hash chain "
                f"{'intact' if verdict.intact else 'BROKEN: ' + str(verdict.problem)}\n"
            )
            if not verdict.intact:
                broken.append(case_number)
        app.close()
        console.print(
            f"summary: {len(CATEGORIES_FOR_DEMO)} cases, {events} events, "
            f"{'all hash chains intact' if not broken else 'broken chains: ' + ', '.join(broken)}"
        )
    finally:
        if endpoints.started and not keep_running:
            stack.down()
    if broken:
        raise typer.Exit(1)
