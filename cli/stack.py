"""``yekuo stack up | down | status``: the local servers."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from infra.settings import Settings
from infra.stack import LocalStack, StackError

stack_app = typer.Typer(
    help="本地环境 Local stack: embedded PostgreSQL and Kafka-protocol broker.", no_args_is_help=True
)
LABELS = {"postgres": "数据库 PostgreSQL", "kafka": "消息总线 Kafka", "api": "接口 HTTP API"}


@stack_app.command()
def up(
    api: bool = typer.Option(False, "--api", help="Also start the HTTP API (`yekuo api`) in the background."),
    api_port: int = typer.Option(8000, help="The HTTP API's port (with --api)."),
) -> None:
    """Start what is not configured (DATABASE_URL / KAFKA_BOOTSTRAP_SERVERS) and create the topics."""
    stack = LocalStack(Settings())
    endpoints = stack.up()
    console = Console()
    console.print(f"DATABASE_URL={endpoints.database_url}")
    console.print(f"KAFKA_BOOTSTRAP_SERVERS={endpoints.kafka_bootstrap_servers}")
    console.print(f"started: {', '.join(endpoints.started) or 'nothing (already running or configured)'}")
    if api:
        try:
            url = stack.api_up(api_port)
        except StackError as error:
            typer.echo(f"error: {error}", err=True)
            raise typer.Exit(2) from None
        console.print(f"API={url} (OpenAPI at {url}/docs; log {stack.state_dir / 'api.log'})")


@stack_app.command()
def down(purge: bool = typer.Option(False, help="Also delete the PostgreSQL data directory.")) -> None:
    """Stop the servers this stack started (and the HTTP API, if `up --api` started it)."""
    LocalStack(Settings()).down(purge=purge)
    Console().print("stopped")


@stack_app.command()
def status() -> None:
    """Show each server: managed by us or external, running, where."""
    table = Table("组件 component", "管理 managed", "状态 running", "pid", "地址 url")
    for component, info in LocalStack(Settings()).status().items():
        running = "external" if not info["managed"] else ("running" if info["running"] else "stopped")
        table.add_row(
            LABELS[component],
            str(info["managed"]),
            running,
            str(info.get("pid") or ""),
            str(info.get("url") or ""),
        )
    Console().print(table)
