"""The `chumphae` command: serve, database, users, demo data, and the sub-apps of each domain."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from chumphae.config import get_settings
from chumphae.detect import cli as falls_cli
from chumphae.errors import ConfigError
from chumphae.map import cli as map_cli
from chumphae.patients import cli as patients_cli
from chumphae.report import cli as report_cli

app = typer.Typer(help="Smart Chumphae: BLE wristbands, tax-map matching, alerts people can trust.", add_completion=False,
                  no_args_is_help=True, pretty_exceptions_enable=False)
db_app = typer.Typer(help="The database schema.", no_args_is_help=True)
users_app = typer.Typer(help="Users and their API tokens.", no_args_is_help=True)
gateways_app = typer.Typer(help="Gateways and their tokens.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(users_app, name="users")
app.add_typer(gateways_app, name="gateways")
app.add_typer(falls_cli.app, name="falls")
app.add_typer(map_cli.app, name="map")
app.add_typer(report_cli.app, name="export")
app.add_typer(patients_cli.app, name="patients")


def _engine():  # type: ignore[no-untyped-def]
    from chumphae.db import init_engine

    return init_engine(get_settings().effective_database_url)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (default from CHUMPHAE_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default from CHUMPHAE_PORT).")] = None,
) -> None:
    """Run the caregiver backend (migrates the database first)."""
    import uvicorn

    from chumphae import logs
    from chumphae.api.app import create_app

    settings = get_settings()
    logs.setup(settings.log_level)
    _engine()  # fail now, with one line, if the database is wrong
    uvicorn.run(create_app(settings), host=host or settings.host, port=port or settings.port,
                log_config=None)


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument()] = "head") -> None:
    """Upgrade the database schema (the backend also does this on start)."""
    from chumphae.db import make_engine, safe_url, upgrade

    url = get_settings().effective_database_url
    upgrade(make_engine(url), revision)
    typer.echo(f"database {safe_url(url)} is at {revision}")


@users_app.command("create")
def users_create(
    role: Annotated[str, typer.Option(help="caregiver | volunteer | care_manager | hospital | admin")],
    name: Annotated[str, typer.Option(help="Display name.")],
    patient: Annotated[list[int] | None, typer.Option(help="Patient id this user cares for (repeat).")] = None,
    lang: Annotated[str, typer.Option(help="th or en")] = "th",
) -> None:
    """Create a user and print their token (shown once, stored hashed)."""
    from chumphae.auth.service import assign, create_user
    from chumphae.db import session_scope
    from chumphae.models import Patient, Role

    try:
        role_value = Role(role)
    except ValueError:
        raise ConfigError(f"unknown role {role!r}: use one of {', '.join(r.value for r in Role)}") from None
    engine = _engine()
    with session_scope(engine) as session:
        user, token = create_user(session, name=name, role=role_value, lang=lang)
        for pid in patient or []:
            if session.get(Patient, pid) is None:
                raise ConfigError(f"no patient with id {pid}")
            assign(session, user_id=user.id, patient_id=pid, relation=role_value.value)  # type: ignore[arg-type]
        typer.echo(f"user {user.id} ({role_value.value}) created")
    typer.echo(f"token: {token}")
    typer.echo("Keep it now: only its hash is stored.", err=True)


@gateways_app.command("create")
def gateways_create(
    slug: Annotated[str, typer.Option(help="Short id, e.g. gw-town-01.")],
    name: Annotated[str, typer.Option(help="Where it is, e.g. the health station.")],
    site: Annotated[str, typer.Option(help="Site whose bands it may speak for.")] = "chumphae",
    lat: Annotated[float | None, typer.Option()] = None,
    lon: Annotated[float | None, typer.Option()] = None,
) -> None:
    """Register a gateway and print its token."""
    from chumphae.auth.service import create_gateway
    from chumphae.db import session_scope

    with session_scope(_engine()) as session:
        gw, token = create_gateway(session, slug=slug, name=name, site=site, lat=lat, lon=lon)
        typer.echo(f"gateway {gw.id} ({slug}) created")
    typer.echo(f"token: {token}")


@app.command("seed-demo")
def seed_demo_cmd() -> None:
    """Fill the database with demo patients, bands, gateways and users on the Chumphae map."""
    from chumphae.db import session_scope
    from chumphae.seed import print_tokens, seed_demo

    with session_scope(_engine()) as session:
        result = seed_demo(session)
    print_tokens(result)


@app.command("demo")
def demo_cmd(
    scenario: Annotated[str | None, typer.Option(
        help="Instead of the living district: one scenario (file or shipped name) on its site, then idle.")] = None,
    speed: Annotated[float, typer.Option(help="Simulation speed (1 = real time).")] = 1.0,
    every: Annotated[float, typer.Option(help="Simulated seconds between the district's excursions.")] = 180.0,
    open_browser: Annotated[bool, typer.Option("--open/--no-open", help="Open the page in a browser.")] = True,
) -> None:
    """Run everything on the embedded default: backend, demo district (every seeded gateway simulated,
    all patients living their day; an excursion every few minutes, announced), page. Ctrl+C stops."""
    from chumphae.demo import demo

    demo(get_settings(), scenario=scenario, speed=speed, every=every, open_browser=open_browser)


def main() -> None:
    """Entry point: configuration problems end with one line, not a traceback."""
    from pydantic import ValidationError

    try:
        app()
    except ConfigError as exc:
        print(f"chumphae: error: {exc}", file=sys.stderr)
        sys.exit(2)
    except ValidationError as exc:  # settings from the environment that do not parse
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first.get("loc", ()))
        print(f"chumphae: error: bad setting CHUMPHAE_{where.upper()}: {first.get('msg')}",
              file=sys.stderr)
        sys.exit(2)
