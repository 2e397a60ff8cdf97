"""The backend's background work, started and stopped by the app's lifespan, supervised.

The feed hub (with its PostgreSQL LISTEN or Redis subscription), the alert
clock (escalation, silent gateways) and the delivery worker (LINE, SMS,
webhooks; off when `CHUMPHAE_DELIVERY_POLL_S=0`). The hub and the clock run
under one `chumphae.supervise.Supervisor` (`app.state.supervisor`): a task
that raises is logged with its traceback and restarted with backoff; one that
returns while the app runs is a fault too. Other backend tasks use the same
helper: `supervised(app, name, factory)`. Options can be set on `app.state`
before start (`feed_options`, `clock_options`, `supervisor_options`,
`delivery_options`, `delivery_settings`); tests use short times.

Before serving, `warm` builds what the first requests would otherwise build
while a hundred gateways connect at once (each route's state, which FastAPI
makes on the first request that walks its router; the pool's connections),
so the first SOSes of a start do not wait behind it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from sqlalchemy.engine import Engine

from chumphae.alert import escalate
from chumphae.config import Settings
from chumphae.db import get_engine
from chumphae.feed.fanout import running_hub
from chumphae.supervise import Supervisor

log = logging.getLogger(__name__)


def supervisor_of(app: FastAPI) -> Supervisor:
    """The app's supervisor (made on first use; `app.state.supervisor_options` = Supervisor kwargs)."""
    sup: Supervisor | None = getattr(app.state, "supervisor", None)
    if sup is None:
        sup = Supervisor(**getattr(app.state, "supervisor_options", {}))
        app.state.supervisor = sup
    return sup


def supervised(app: FastAPI, name: str, factory: Callable[[], Awaitable[None]]) -> asyncio.Task[None]:
    """Start a background loop that must run as long as the app: restarted if it raises or returns."""
    return supervisor_of(app).spawn(name, factory, restart_on_return=True)


def warm(app: FastAPI, engine: Engine) -> None:
    """Build the routes' state and open the pool's connections now, not in the first requests."""
    _warm_routes(app.router.routes)
    if engine.dialect.name == "postgresql":
        size = getattr(engine.pool, "size", None)
        held = []
        try:  # held together, so that each is a connection of its own, then all back in the pool
            for _ in range(size() if callable(size) else 0):
                held.append(engine.connect())
        except Exception as exc:  # the requests will connect themselves, and report a real failure
            log.warning("database connections not opened ahead of requests: %s", type(exc).__name__)
        finally:
            for conn in held:
                conn.close()


def _warm_routes(routes: Iterable[Any]) -> None:
    """FastAPI keeps an included router's routes as built on the first request that walks it
    (its dependants, paths, response fields): walk every router once. Nothing to do on a version without."""
    for route in routes:
        candidates = getattr(route, "effective_candidates", None)
        if not callable(candidates):
            continue
        low = getattr(route, "effective_low_priority_routes", None)
        if callable(low):
            low()
        _warm_routes(candidates())


@asynccontextmanager
async def background(app: FastAPI, settings: Settings) -> AsyncIterator[None]:
    engine = get_engine()
    await asyncio.to_thread(warm, app, engine)
    sup = supervisor_of(app)
    async with running_hub(engine, settings.redis_url, sup) as hub:
        app.state.feed_hub = hub
        options = getattr(app.state, "clock_options", escalate.ClockOptions())
        clock = supervised(app, "alert-clock", lambda: escalate.run(engine, options)) if options.tick_s > 0 else None
        delivery_settings = getattr(app.state, "delivery_settings", settings)
        try:
            async with contextlib.AsyncExitStack() as stack:
                if delivery_settings.delivery_poll_s > 0:
                    from chumphae.deliver.run import running_worker  # HTTP clients: loaded only when used

                    app.state.delivery_worker = await stack.enter_async_context(running_worker(
                        engine, delivery_settings, getattr(app.state, "delivery_options", None)))
                yield
        finally:
            app.state.feed_hub = None
            if clock is not None:
                clock.cancel()
                await asyncio.gather(clock, return_exceptions=True)
