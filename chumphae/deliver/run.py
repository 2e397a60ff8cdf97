"""Start the delivery worker with every channel, on one shared HTTP client (the app's lifespan and the CLI)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from sqlalchemy.engine import Engine

from chumphae.config import Settings
from chumphae.deliver.line import LineChannel
from chumphae.deliver.notify import Channel, FeedChannel
from chumphae.deliver.sms import SmsChannel
from chumphae.deliver.webhook import WebhookChannel
from chumphae.deliver.worker import Worker, WorkerOptions


def channels(client: httpx.AsyncClient, settings: Settings) -> dict[str, Channel]:
    return {
        "line": LineChannel(client, api_url=settings.line_api_url, token=settings.line_channel_access_token),
        "sms": SmsChannel(client, settings),
        "webhook": WebhookChannel(client, secret=settings.webhook_secret),
        "feed": FeedChannel(),
    }


def http_client(settings: Settings) -> httpx.AsyncClient:
    return httpx.AsyncClient(timeout=httpx.Timeout(settings.delivery_timeout_s), follow_redirects=False,
                             headers={"User-Agent": "smart-chumphae-delivery"})


@asynccontextmanager
async def running_worker(engine: Engine, settings: Settings,
                         options: WorkerOptions | None = None) -> AsyncIterator[Worker]:
    """A worker running in this event loop until the block ends.

    The HTTP client (its TLS context takes a moment to build) is made in a
    thread from the worker's task, so starting the worker never delays the
    app's start-up or holds up the event loop.
    """
    worker = Worker(engine, {}, options or WorkerOptions.from_settings(settings), public_url=settings.public_url)

    async def serve() -> None:
        client = await asyncio.to_thread(http_client, settings)  # building the TLS context blocks: not on the loop
        async with client:
            worker.channels = channels(client, settings)
            await worker.run()

    task = asyncio.create_task(serve())
    try:
        yield worker
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
