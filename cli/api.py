"""``yekuo api`` serves the HTTP API with uvicorn; ``yekuo token issue`` makes a bearer token for it."""

from __future__ import annotations

import secrets
from pathlib import Path

import typer

from api.security import Role, TokenError, TokenKeyMissingError, check_key, issue_token
from infra.settings import Settings
from infra.stack import StackError, endpoints

token_app = typer.Typer(help="Bearer tokens of the HTTP API.", no_args_is_help=True)


def local_key_file(settings: Settings) -> Path:
    return settings.state_dir / "api_token_key"


def token_key(settings: Settings) -> str:
    """The configured key; on the local stack (no DATABASE_URL) one generated once into the state dir."""
    if settings.api_token_key:
        return check_key(settings.api_token_key)
    if settings.database_url:
        return check_key(None)  # a configured deployment must configure its key: refuse
    path = local_key_file(settings)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(48))
    return check_key(path.read_text().strip())


def api(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8000, help="Port to listen on."),
) -> None:
    """Serve the HTTP API (OpenAPI at /docs) on the configured or local-stack PostgreSQL and broker."""
    import uvicorn

    from api.main import create_app

    settings = Settings()
    try:
        key = token_key(settings)
    except TokenKeyMissingError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    try:
        database = endpoints(settings, ("postgres",)).database_url
    except StackError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    try:
        broker: str | None = endpoints(settings, ("kafka",)).kafka_bootstrap_servers
    except StackError:
        broker = None  # readiness then checks the database only
    app = create_app(settings.model_copy(update={"api_token_key": key}), database, broker)
    uvicorn.run(app, host=host, port=port, http="httptools", loop="uvloop", log_config=None, access_log=False)


@token_app.command("issue")
def issue(
    role: Role = typer.Option(..., help="integrator, staff, manager, auditor or customer."),
    person_id: str = typer.Option(..., help="The actor's id (a customer's: their customer reference)."),
    name: str = typer.Option(..., help="The actor's name."),
    department: str | None = typer.Option(None, help="Staff: their department (e.g. OPERATIONS)."),
    source_system: str | None = typer.Option(None, help="Integrators: their system (e.g. COUNTER)."),
    hours: float = typer.Option(8.0, min=0.01, help="Validity."),
) -> None:
    """Print a signed bearer token for one person in one role."""
    settings = Settings()
    try:
        token = issue_token(
            token_key(settings),
            role=role,
            person_id=person_id,
            name=name,
            department=department,
            source_system=source_system,
            hours=hours,
        )
    except (TokenError, TokenKeyMissingError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    typer.echo(token)
