"""The backend's background work, started and stopped by the app's lifespan.

The feed hub (with its PostgreSQL LISTEN or Redis subscription), the alert
clock (escalation, silent gateways) and the delivery worker (LINE, SMS,
webhooks; off when `CHUMPHAE_DELIVERY_POLL_S=0`). Options can be set on
`app.state` before start (`feed_options`, `clock_options`,
`delivery_options`, `delivery_settings`); tests use short times.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from chumphae.alert import escalate
from chumphae.config import Settings
from chumphae.db import get_engine
from chumphae.feed.fanout import running_hub


@asynccontextmanager
async def background(app: FastAPI, settings: Settings) -> AsyncIterator[None]:
    engine = get_engine()
    async with running_hub(engine, settings.redis_url) as hub:
        app.state.feed_hub = hub
        options = getattr(app.state, "clock_options", escalate.ClockOptions())
        clock = asyncio.create_task(escalate.run(engine, options)) if options.tick_s > 0 else None
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
                with contextlib.suppress(asyncio.CancelledError):
                    await clock
