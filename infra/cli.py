"""The ``yekuo`` command line: one Typer app; each area adds its own sub-commands."""

from __future__ import annotations

import typer

from infra.case_cli import case_app
from infra.demo import demo
from infra.logging import configure_logging
from infra.pipeline_cli import deadletters_app, projections_app, relay, schemas, status, worker
from infra.settings import Settings
from infra.sla_cli import kpi, responsibility, sla_app, sla_clock, whatif
from infra.stack_cli import stack_app

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
app.command("sla-clock")(sla_clock)
app.command()(kpi)
app.command()(whatif)
case_app.command()(responsibility)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
