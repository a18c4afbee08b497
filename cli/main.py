"""The ``yekuo`` command line: one Typer app; each area adds its own sub-commands."""

from __future__ import annotations

import typer

from cli.api import api, token_app
from cli.calendar import calendar_app
from cli.case import case_app
from cli.dashboard import dashboard_app
from cli.dispatch import auto_assign, escalated, queue
from cli.intake import intake_app
from cli.party import party_app
from cli.pipeline import deadletters_app, projections_app, relay, schemas, status, worker
from cli.simulate import simulate
from cli.sla import kpi, responsibility, sla_app, sla_clock, whatif
from cli.stack import stack_app
from demo.run import demo
from infra.database_errors import DATABASE_UNREACHABLE
from infra.log_setup import configure_logging
from infra.settings import Settings

app = typer.Typer(
    name="yekuo",
    help="Yekuo 业扩报装: event-sourced new-service-connection cases.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def _configure() -> None:
    settings = Settings()
    configure_logging(settings.log_level, settings.log_json)


app.add_typer(stack_app, name="stack")
app.add_typer(case_app, name="case")
app.add_typer(projections_app, name="projections")
app.add_typer(deadletters_app, name="deadletters")
app.command()(demo)
app.command()(relay)
app.command()(worker)
app.command()(status)
app.command()(schemas)
app.add_typer(sla_app, name="sla")
app.add_typer(calendar_app, name="calendar")
app.add_typer(intake_app, name="intake")
app.command("sla-clock")(sla_clock)
app.command()(kpi)
app.command()(whatif)
case_app.command()(responsibility)
app.add_typer(party_app, name="party")
app.command()(api)
app.add_typer(token_app, name="token")
app.add_typer(dashboard_app, name="dashboard")
app.command()(queue)
case_app.command()(escalated)
app.command("auto-assign")(auto_assign)
app.command()(simulate)


EXIT_DATABASE_UNREACHABLE = 3


def main() -> None:
    """Console-script entry point. PostgreSQL being unreachable is one line and exit code 3, not a traceback.
    Running the same command again is safe: commands are idempotent by their command id."""
    try:
        app()
    except DATABASE_UNREACHABLE as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        typer.echo(
            f"Error: PostgreSQL is unreachable 数据库不可用 ({reason}); run the same command again", err=True
        )
        raise SystemExit(EXIT_DATABASE_UNREACHABLE) from None


if __name__ == "__main__":
    main()
