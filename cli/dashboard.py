"""``yekuo dashboard``: the managers' dashboard is served by ``yekuo api``; here its screenshots."""

from __future__ import annotations

from pathlib import Path

import typer

dashboard_app = typer.Typer(
    help="The managers' dashboard (served by `yekuo api` at /dashboard).", no_args_is_help=True
)


@dashboard_app.command("screenshots")
def screenshots(
    out: Path = typer.Option(Path("docs/screenshots"), help="Directory for the PNGs."),
) -> None:
    """Refresh the PNG of each dashboard page from the demo's data (private PostgreSQL, headless chromium)."""
    from demo.run import DEMO_START
    from demo.screenshots import take

    for path in take(out, DEMO_START):
        typer.echo(f"wrote {path}")
