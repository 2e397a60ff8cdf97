"""The FastAPI application: routes, problem details, and start-up (migrate, then serve)."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy.engine import Engine

from chumphae import __version__
from chumphae.api import problems
from chumphae.api.http import FiniteJSONResponse, SecurityHeaders, install_openapi
from chumphae.api.routes import (
    alerts,
    bands,
    deliveries,
    district,
    gateway,
    gateways,
    line_webhook,
    maplayers,
    mobile,
    patients,
    reports,
    search,
    system,
    users,
    visits,
    zones,
)
from chumphae.auth.limits import FailedAuthLimiter
from chumphae.config import Settings, get_settings
from chumphae.db import get_engine, init_engine, session_scope, set_engine
from chumphae.feed import views as feed_views
from chumphae.feed.background import background
from chumphae.map.store import load_default_map, map_info
from chumphae.report.nightly import for_app as nightly
from chumphae.retention import retention_job
from chumphae.web import serve as web_page

log = logging.getLogger(__name__)

DESCRIPTION = """Smart Chumphae caregiver backend.

Authenticate with `Authorization: Bearer <token>` (tokens come from
`chumphae users create`; too many failed attempts from one address: 429 with
`Retry-After`). Errors are RFC 9457 problem details
(`application/problem+json`); send
`Accept-Language: en` for English, Thai is the default. Times are UTC in
ISO 8601 unless a field says otherwise; the page shows them in Asia/Bangkok.
Send times with an offset (`2025-01-15T10:30:00+07:00`); a time a person
gives without one (`since`, `until`, a visit's `t`) is read as Asia/Bangkok
time, a sighting's `t` without one is refused.
"""


ALERT_PORT_ENV = "CHUMPHAE_SERVE_ALERT_PORT"  # set by `chumphae serve --alert-port` for its processes (not a setting)


def prepare_database(engine: Engine) -> None:
    """An empty map gets the shipped Chumphae layer set (the engine is already migrated)."""
    with session_scope(engine) as session:
        if not map_info(session):
            summary = load_default_map(session)
            log.info("loaded the default map: %s features", summary.kept)


def worker_app() -> FastAPI:
    """The app factory for `chumphae serve --workers N`: each worker process sets up its own logging."""
    from chumphae import logs
    from chumphae.supervise import die_with_parent

    die_with_parent()  # a `serve` killed by SIGKILL takes its workers with it
    settings = get_settings()
    logs.setup(settings.log_level)
    return create_app(settings)


def create_app(settings: Settings | None = None, *, manage_engine: bool = True, jobs: bool | None = None) -> FastAPI:
    """The app. With `manage_engine`, start-up connects to and migrates the configured database. `jobs` (default:
    as `manage_engine`) runs the nightly daily-summary files and the hourly retention (`chumphae demo` sets it:
    it owns its engine itself; tests' apps run without them)."""
    settings = settings or get_settings()
    run_jobs = manage_engine if jobs is None else jobs

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if manage_engine:
            prepare_database(init_engine(settings.effective_database_url))
        log.info("backend ready (version %s)", __version__)
        try:
            async with (background(app, settings), nightly(settings, enabled=run_jobs),
                        retention_job(get_engine, settings, enabled=run_jobs)):
                yield  # feed, alert clock, the daily summary file at 00:15, hourly retention
        finally:
            if manage_engine:
                set_engine(None)

    app = FastAPI(title="Smart Chumphae", version=__version__, description=DESCRIPTION,
                  lifespan=lifespan, default_response_class=FiniteJSONResponse)
    app.state.settings = settings
    # `chumphae serve --alert-port P` runs processes for gateways' alert sockets on P and says so to every process
    # (gateways learn it from the main socket's `welcome`: docs/gateway-protocol.md §3.3).
    alert_port = os.environ.get(ALERT_PORT_ENV, "")
    app.state.alert_port = int(alert_port) if alert_port.isdigit() else None
    app.state.auth_limiter = FailedAuthLimiter(max_failures=settings.auth_max_failures,
                                               window_s=settings.auth_window_s)
    problems.install(app)
    install_openapi(app)
    app.add_middleware(SecurityHeaders)
    for module in (system, patients, users, web_page, alerts, gateway, feed_views,
                   mobile, visits, bands, zones, maplayers, search, reports, district, gateways, deliveries,
                   line_webhook):
        app.include_router(module.router)
    return app
