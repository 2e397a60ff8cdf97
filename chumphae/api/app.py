"""The FastAPI application: routes, problem details, and start-up (migrate, then serve)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from chumphae import __version__
from chumphae.api import problems
from chumphae.api.routes import alerts, gateway, patients, system, users
from chumphae.api.routes import bands, maplayers, mobile, reports, search, visits, zones
from chumphae.api.routes import deliveries, line_webhook
from chumphae.config import Settings, get_settings
from chumphae.db import init_engine, session_scope, set_engine
from chumphae.map.store import load_default_map, map_info
from chumphae.feed import views as feed_views
from chumphae.feed.background import background
from chumphae.report.nightly import for_app as nightly
from chumphae.web import serve as web_page

log = logging.getLogger(__name__)

DESCRIPTION = """Smart Chumphae caregiver backend.

Authenticate with `Authorization: Bearer <token>` (tokens come from
`chumphae users create`). Errors are RFC 9457 problem details; send
`Accept-Language: en` for English, Thai is the default. Times are UTC in
ISO 8601 unless a field says otherwise; the page shows them in Asia/Bangkok.
"""


def create_app(settings: Settings | None = None, *, manage_engine: bool = True) -> FastAPI:
    """The app. With `manage_engine`, start-up connects to and migrates the configured database."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if manage_engine:
            engine = init_engine(settings.effective_database_url)
            with session_scope(engine) as session:
                if not map_info(session):  # an empty map: start with the shipped Chumphae layer set
                    summary = load_default_map(session)
                    log.info("loaded the default map: %s features", summary.kept)
        log.info("backend ready (version %s)", __version__)
        try:
            async with background(app, settings), nightly(settings, enabled=manage_engine):  # feed, alert clock,
                yield  # and the daily summary file at 00:15 (chumphae/report/nightly.py)
        finally:
            if manage_engine:
                set_engine(None)

    app = FastAPI(title="Smart Chumphae", version=__version__, description=DESCRIPTION,
                  lifespan=lifespan)
    app.state.settings = settings
    problems.install(app)
    for module in (system, patients, users, web_page, alerts, gateway, feed_views,
                   mobile, visits, bands, zones, maplayers, search, reports, deliveries, line_webhook):
        app.include_router(module.router)
    return app
