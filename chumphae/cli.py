"""The `chumphae` command: serve, database, users, demo data, and the sub-apps of each domain."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer
from sqlalchemy.engine import Engine

from chumphae.config import get_settings
from chumphae.deliver import cli as channels_cli
from chumphae.detect import cli as falls_cli
from chumphae.errors import ConfigError
from chumphae.map import cli as map_cli
from chumphae.patients import cli as patients_cli
from chumphae.report import cli as report_cli

if TYPE_CHECKING:
    from chumphae.models import Gateway

# On SIGTERM, open sockets get this long to finish before they are closed: a stalled client cannot hold a
# stop (or a deploy) for ever, and nothing is lost (gateways resend what was not acked).
SHUTDOWN_GRACE_S = 10
# The largest WebSocket frame a client may send (one gateway message or feed command is a few KiB);
# a larger one is refused with close 1009 instead of being buffered (uvicorn's default is 16 MiB).
WS_MAX_BYTES = 1024 * 1024
# permessage-deflate on the WebSockets (gateways' frames in, the feed's frames out): off unless asked for. With it,
# deflate and inflate were ~17 % of the event loop's samples under the ingest bench (docs/performance.md,
# "Ingest (branch ingest10)"); a gateway's frame is ~0.6 KiB, so a band sends ~10 B/s either way.
WS_COMPRESSION = False


# How long uvicorn's parent waits for a worker to answer its health check before it kills and replaces it
# ("Child process [N] died"); uvicorn's default is 5 s, which a worker still starting on a loaded machine
# could miss (fix17, issue 13: `_lean_workers`).
WORKER_HEALTHCHECK_S = 20


def server_options(ws_compression: bool | None = None) -> dict[str, Any]:
    """uvicorn's options for the backend, the same for `chumphae serve` and `scripts/bench_ingest.py`."""
    return {"ws": "websockets-sansio", "ws_max_size": WS_MAX_BYTES, "timeout_graceful_shutdown": SHUTDOWN_GRACE_S,
            "ws_per_message_deflate": WS_COMPRESSION if ws_compression is None else ws_compression}

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
app.add_typer(channels_cli.app, name="channels")


def _engine() -> Engine:
    from chumphae.db import init_engine

    return init_engine(get_settings().effective_database_url)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (default from CHUMPHAE_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default from CHUMPHAE_PORT).")] = None,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Backend processes sharing the port "
                                         "(PostgreSQL only when > 1; see docs/postgresql.md).")] = 1,
    ws_compression: Annotated[bool, typer.Option(help="permessage-deflate on the WebSockets (gateways, feed), "
                                                 "for clients that offer it: less traffic, more server CPU.")]
    = WS_COMPRESSION,
    alert_port: Annotated[int | None, typer.Option(
        help="Also run --alert-workers processes on this port for gateways' alert sockets and caregivers' feeds "
             "(PostgreSQL; gateways learn it from `welcome`; docs/gateway-protocol.md §3.3).")] = None,
    alert_workers: Annotated[int, typer.Option(min=1, max=16, help="Processes on --alert-port.")] = 1,
    bulk_nice: Annotated[int, typer.Option(min=0, max=19, help="With --alert-port: the --port processes run this much "
                                           "nicer (lower CPU priority) than the alert processes.")] = 0,
) -> None:
    """Run the caregiver backend (migrates the database first)."""
    import os
    import subprocess

    import uvicorn

    from chumphae import logs
    from chumphae.api.app import ALERT_PORT_ENV, create_app, prepare_database
    from chumphae.supervise import die_with_parent

    settings = get_settings()
    logs.setup(settings.log_level)
    engine = _engine()  # fail now, with one line, if the database is wrong
    if (workers > 1 or alert_port) and engine.dialect.name != "postgresql":
        raise ConfigError("--workers > 1 and --alert-port need PostgreSQL (CHUMPHAE_DATABASE_URL=postgresql://...): "
                          "SQLite is one process's database")
    prepare_database(engine)  # migrate and load the map once, before any worker starts
    host, port = host or settings.host, port or settings.port
    alerts = None
    if alert_port:
        if alert_port == port:
            raise ConfigError("--alert-port must differ from --port")
        # Every process (both groups) announces the alert port; the alert group is the same app in processes
        # of its own, so its event loops and interpreter locks are not the ones positions keep busy.
        os.environ[ALERT_PORT_ENV] = str(alert_port)
        alerts = subprocess.Popen([sys.executable, "-m", "chumphae.cli", "serve", "--host", host,
                                   "--port", str(alert_port), "--workers", str(alert_workers),
                                   "--ws-compression" if ws_compression else "--no-ws-compression"],
                                  preexec_fn=die_with_parent)
        if bulk_nice:  # after the alert processes started: they keep this process's priority, its workers not
            os.nice(bulk_nice)
    try:
        if workers == 1:
            uvicorn.run(create_app(settings), host=host, port=port, log_config=None, **server_options(ws_compression))
        else:  # each worker imports the app factory; they share the database (and Redis) only
            with _lean_workers():
                uvicorn.run("chumphae.api.app:worker_app", factory=True, workers=workers, host=host, port=port,
                            log_config=None, timeout_worker_healthcheck=WORKER_HEALTHCHECK_S,
                            **server_options(ws_compression))
    finally:
        if alerts is not None:
            alerts.terminate()
            try:
                alerts.wait(SHUTDOWN_GRACE_S + 5)
            except subprocess.TimeoutExpired:
                alerts.kill()


@contextmanager
def _lean_workers() -> Iterator[None]:
    """uvicorn's workers are `spawn`ed: before a worker runs uvicorn's code, and so before the thread that
    answers the parent's health checks exists, multiprocessing imports the parent's main module in it (here
    the whole `chumphae` command: 1.2 s of CPU, 3 s on a loaded two-core machine). The parent pings each
    worker from 0.5 s after starting it and kills one that has not answered within the health-check time: a
    worker died at start-up under load (fix17, issue 13). A worker needs nothing from the main module (it
    loads `worker_app` by name), so while the workers run the main module is named as a package's
    `__main__`, which multiprocessing does not import in its children."""
    from importlib.machinery import ModuleSpec

    main = sys.modules.get("__main__")
    if main is None:
        yield
        return
    spec = getattr(main, "__spec__", None)
    main.__spec__ = ModuleSpec("chumphae.__main__", None)
    try:
        yield
    finally:
        main.__spec__ = spec


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


def _user_or_fail(session: Any, ref: str) -> Any:
    from chumphae.auth.service import find_user

    user = find_user(session, ref)
    if user is None:
        raise ConfigError(f"no user with id {ref}")
    return user


def _gateway_or_fail(session: Any, ref: str) -> Any:
    from chumphae.auth.service import find_gateway

    gateway = find_gateway(session, ref)
    if gateway is None:
        raise ConfigError(f"no gateway with id or slug {ref}")
    return gateway


def _audit_cli(session: Any, *, action: str, entity: str, entity_id: object) -> None:
    from chumphae import audit

    audit.record(session, user=None, action=action, entity=entity, entity_id=entity_id, route=f"CLI {entity}s")


@users_app.command("revoke")
def users_revoke(user_id: Annotated[str, typer.Argument(help="The user's id.")]) -> None:
    """Revoke a user's token now: REST answers 401, their feed sockets close (4001) within seconds."""
    from chumphae.auth.service import revoke_user
    from chumphae.db import session_scope

    with session_scope(_engine()) as session:
        user = _user_or_fail(session, user_id)
        revoke_user(session, user=user)
        _audit_cli(session, action="revoke", entity="user", entity_id=user.id)
        typer.echo(f"user {user.id} revoked (token {user.token_prefix}… no longer works)")


@users_app.command("rotate")
def users_rotate(user_id: Annotated[str, typer.Argument(help="The user's id.")]) -> None:
    """Give a user a new token (printed once); the old one stops working. A revoked user is restored."""
    from chumphae.auth.service import restore_user
    from chumphae.db import session_scope

    with session_scope(_engine()) as session:
        user = _user_or_fail(session, user_id)
        token = restore_user(session, user=user)
        _audit_cli(session, action="rotate", entity="user", entity_id=user.id)
        typer.echo(f"user {user.id}: new token issued, the old one no longer works")
    typer.echo(f"token: {token}")
    typer.echo("Keep it now: only its hash is stored.", err=True)


@gateways_app.command("revoke")
def gateways_revoke(gateway: Annotated[str, typer.Argument(help="The gateway's id or slug.")]) -> None:
    """Revoke a gateway's token now: its socket is closed with 4001 within seconds."""
    from chumphae.auth.service import revoke_gateway
    from chumphae.db import session_scope

    with session_scope(_engine()) as session:
        gw = _gateway_or_fail(session, gateway)
        revoke_gateway(session, gateway=gw)
        _audit_cli(session, action="revoke", entity="gateway", entity_id=gw.id)
        typer.echo(f"gateway {gw.id} ({gw.slug}) revoked")


@gateways_app.command("rotate")
def gateways_rotate(gateway: Annotated[str, typer.Argument(help="The gateway's id or slug.")]) -> None:
    """Give a gateway a new token (printed once); the old one stops working and its socket closes (4001)."""
    from chumphae.auth.service import ReceiverClash, rotate_gateway_token
    from chumphae.db import session_scope

    with session_scope(_engine()) as session:
        gw = _gateway_or_fail(session, gateway)
        try:
            token = rotate_gateway_token(session, gateway=gw)
        except ReceiverClash as exc:
            typer.echo(f"chumphae: error: {exc}", err=True)
            raise typer.Exit(2) from None
        _audit_cli(session, action="rotate", entity="gateway", entity_id=gw.id)
        typer.echo(f"gateway {gw.id} ({gw.slug}): new token issued, the old one no longer works")
    typer.echo(f"token: {token}")


@gateways_app.command("create")
def gateways_create(
    slug: Annotated[str, typer.Option(help="Short id, e.g. gw-town-01.")],
    name: Annotated[str, typer.Option(help="Where it is, e.g. the health station.")],
    site: Annotated[str, typer.Option(help="Site whose bands it may speak for.")] = "chumphae",
    lat: Annotated[float | None, typer.Option()] = None,
    lon: Annotated[float | None, typer.Option()] = None,
    receiver: Annotated[list[str] | None, typer.Option(
        help="A BLE receiver of the site: ID,LAT,LON[,P1M_DBM[,PATH_LOSS_N]] (repeat for several; "
             "the gateway's own adapter is one, ID = its GATEWAY_RECEIVER_ID). Without any, the site "
             "config lists only the receivers of the site's other active gateways (none: no band can be "
             "located). A revoked gateway's receiver ids are free.")] = None,
) -> None:
    """Register a gateway and print its token."""
    from sqlmodel import select

    from chumphae.auth.service import create_gateway
    from chumphae.db import session_scope
    from chumphae.models import Gateway

    receivers = [_receiver(text) for text in receiver or []]
    with session_scope(_engine()) as session:
        _refuse_taken(receivers, _live_receivers(session.exec(select(Gateway).where(Gateway.site == site)).all()),
                      site=site, param_hint="--receiver")
        gw, token = create_gateway(session, slug=slug, name=name, site=site, lat=lat, lon=lon,
                                   receivers=receivers)
        typer.echo(f"gateway {gw.id} ({slug}) created" + (f" with {len(receivers)} receivers" if receivers else ""))
    typer.echo(f"token: {token}")


def _receiver(text: str, param_hint: str = "--receiver") -> dict[str, object]:
    """`ID,LAT,LON[,P1M_DBM[,PATH_LOSS_N]]` → a site-config receiver (docs/gateway-protocol.md §2)."""
    import math

    parts = [p.strip() for p in text.split(",")]
    if not 3 <= len(parts) <= 5 or not 1 <= len(parts[0]) <= 64:
        raise typer.BadParameter(f"{text!r}: expected ID,LAT,LON[,P1M_DBM[,PATH_LOSS_N]] (ID 1-64 characters)",
                                 param_hint=param_hint)
    try:
        numbers = [float(p) for p in parts[1:]]
    except ValueError:
        raise typer.BadParameter(f"{text!r}: LAT, LON, P1M_DBM and PATH_LOSS_N are numbers",
                                 param_hint=param_hint) from None
    lat, lon = numbers[0], numbers[1]
    p1m = numbers[2] if len(numbers) > 2 else -59.0
    n = numbers[3] if len(numbers) > 3 else 2.7
    if (not all(math.isfinite(x) for x in numbers) or not -90 <= lat <= 90 or not -180 <= lon <= 180
            or not -127 <= p1m <= 20 or not 1.0 <= n <= 6.0):
        raise typer.BadParameter(f"{text!r}: LAT -90..90, LON -180..180, P1M_DBM -127..20, PATH_LOSS_N 1..6",
                                 param_hint=param_hint)
    return {"id": parts[0], "lat": lat, "lon": lon, "p1m_dbm": p1m, "path_loss_n": n}


def _live_receivers(gateways: Iterable[Gateway]) -> list[dict[str, object]]:
    """The receivers a site config lists from these gateways: the active ones' (a revoked gateway's are not in
    it, so its ids are free for the gateway that replaces it)."""
    return [r for g in gateways if g.active for r in g.receivers or []]


def _refuse_taken(receivers: list[dict[str, object]], others: list[dict[str, object]], *, site: str,
                  param_hint: str) -> None:
    """A receiver id names one receiver of its site: one of the site's receivers (`others`, as they will be) or
    one given twice is refused."""
    taken = {str(r.get("id")) for r in others}
    seen: set[str] = set()
    for r in receivers:
        if r["id"] in taken or r["id"] in seen:
            raise typer.BadParameter(f"receiver id {r['id']} is already one of site {site}'s receivers",
                                     param_hint=param_hint)
        seen.add(str(r["id"]))


@gateways_app.command("receivers")
def gateways_receivers(
    gateway: Annotated[str, typer.Argument(help="The gateway's id or slug.")],
    add: Annotated[list[str] | None, typer.Option(
        help="Give this gateway a receiver: ID,LAT,LON[,P1M_DBM[,PATH_LOSS_N]] (repeat; as `create --receiver`). "
             "To move one, --remove ID --add ID,LAT,LON in one command.")] = None,
    remove: Annotated[list[str] | None, typer.Option(
        help="Take one of this gateway's receivers away, by id (repeat). Done before --add.")] = None,
) -> None:
    """Add, move or remove a gateway's BLE receivers; print the site's receivers after the change.

    Every gateway of the site gets the new list in its site config (a new ETag; connected gateways are sent
    `config_changed` within about 10 s)."""
    from sqlmodel import col, select

    from chumphae.db import session_scope
    from chumphae.models import Gateway

    added = [_receiver(text, "--add") for text in add or []]
    with session_scope(_engine()) as session:
        gw = _gateway_or_fail(session, gateway)
        site_gateways = session.exec(select(Gateway).where(Gateway.site == gw.site).order_by(col(Gateway.id))).all()
        kept = [dict(r) for r in gw.receivers or []]
        removed = list(dict.fromkeys(r.strip() for r in remove or []))
        for rid in removed:
            if not any(str(r.get("id")) == rid for r in kept):
                owner = next((g.slug for g in site_gateways if g.id != gw.id
                              and any(str(r.get("id")) == rid for r in g.receivers or [])), None)
                raise typer.BadParameter(
                    f"receiver {rid} is not one of gateway {gw.slug}'s"
                    + (f": it is gateway {owner}'s" if owner else f" (site {gw.site} has none of that id)"),
                    param_hint="--remove")
            kept = [r for r in kept if str(r.get("id")) != rid]
        _refuse_taken(added, _live_receivers(g for g in site_gateways if g.id != gw.id) + kept,
                      site=gw.site, param_hint="--add")
        if add or remove:
            gw.receivers = kept + added  # a new list: the JSON column is written (and config_version bumped)
            session.add(gw)
            _audit_cli(session, action="receivers", entity="gateway", entity_id=gw.id)
            session.flush()
            typer.echo(f"gateway {gw.id} ({gw.slug}): {len(added)} receivers added, "
                       f"{len(removed)} removed")
        typer.echo(f"site {gw.site} receivers:")
        for g in site_gateways:
            for r in g.receivers or []:
                typer.echo(f"  {r.get('id')} {r.get('lat')} {r.get('lon')} p1m_dbm {r.get('p1m_dbm', -59.0)} "
                           f"path_loss_n {r.get('path_loss_n', 2.7)} gateway {g.slug}"
                           + ("" if g.active else " (revoked: not in the site config)"))


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
    """Run everything on the embedded default: backend, demo district, page. Ctrl+C stops.

    Every seeded gateway is simulated, all patients living their day, with an excursion every few
    minutes, announced beforehand."""
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


if __name__ == "__main__":
    main()
