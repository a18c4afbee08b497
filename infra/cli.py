"""The ``yekuo`` command line: one Typer app; each area adds its own sub-commands."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="yekuo",
    help="Yekuo 业扩报装: event-sourced new-service-connection cases.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def main() -> None:
    """Console-script entry point."""
    app()
