"""Waking feed sockets when new feed rows are committed, in this process and in the others.

The message carries one thing, whether the commit wrote alert rows (the
NOTIFY payload or Redis message `alert`; empty otherwise): the database is the
truth, and a woken socket reads `feed_event` after its own cursor. So a lost
wake-up delays a frame by at most the poll interval, and never loses or
reorders one. A subscriber may ask to be woken only by commits that wrote
alert rows (a socket's alert lane, which reads alert rows ahead of positions):
the position batches that commit many times a second then cost it nothing.
Any other non-empty message wakes every subscriber. (A process older than this
rule sends an empty message for every commit: during a rolling upgrade its
alerts reach the other processes' sockets by their ordered read, as positions
do, not by the alert lane.)

- `LocalHub` (always): wakes this process's sockets after a local commit.
- PostgreSQL: `LISTEN chumphae_feed`; the writers' `pg_notify` (in
  `feed.log.append`) is delivered on commit to every backend process.
- Redis (`CHUMPHAE_REDIS_URL`): writers publish to `chumphae:feed` after
  commit; every process subscribes. Works with either database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Protocol

from sqlalchemy.engine import Engine

from chumphae.feed import log as feed_log
from chumphae.supervise import Supervisor

log = logging.getLogger(__name__)

REDIS_CHANNEL = "chumphae:feed"


class Hub:
    """This process's sockets, each with wake-up events: woken by every commit of feed rows, or
    (`alerts_only`) only by those that wrote alert rows. Thread-safe `wake()`."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._events: set[asyncio.Event] = set()
        self._alert_events: set[asyncio.Event] = set()
        self.wakes = 0
        self.alert_wakes = 0

    def subscribe(self, *, alerts_only: bool = False) -> asyncio.Event:
        ev = asyncio.Event()
        (self._alert_events if alerts_only else self._events).add(ev)
        return ev

    def unsubscribe(self, ev: asyncio.Event) -> None:
        self._events.discard(ev)
        self._alert_events.discard(ev)

    def _wake_here(self, alert: bool) -> None:
        self.wakes += 1
        for ev in self._events:
            ev.set()
        if alert:
            self.alert_wakes += 1
            for ev in self._alert_events:
                ev.set()

    def wake(self, alert: bool = True) -> None:
        """Callable from any thread (the DB work runs in worker threads). `alert=False`: the commit wrote
        no alert rows (the alert-only subscribers sleep on); when unsure, wake them all (the default)."""
        if self.loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            self._wake_here(alert)
        else:
            self.loop.call_soon_threadsafe(self._wake_here, alert)


def wrote_alerts(message: str | bytes | None) -> bool:
    """A NOTIFY payload or Redis message → whether to wake the alert-only subscribers too: not for the
    empty message (no alert rows), for `alert` and for anything unknown."""
    return bool(message)


class Source(Protocol):
    """Something that wakes the hub when another process committed feed rows."""

    name: str

    async def run(self, hub: Hub) -> None: ...


class PostgresSource:
    name = "postgresql"

    def __init__(self, engine: Engine, *, retry_s: float = 2.0) -> None:
        self.conninfo = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        self.retry_s = retry_s

    async def run(self, hub: Hub) -> None:
        import psycopg

        while True:
            try:
                async with await psycopg.AsyncConnection.connect(self.conninfo, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {feed_log.PG_CHANNEL}")
                    hub.wake()  # anything committed while we were not listening
                    async for note in conn.notifies():
                        hub.wake(wrote_alerts(note.payload))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database restarts: listen again, sockets poll meanwhile
                log.warning("feed LISTEN lost (%s); retrying in %.0f s", type(exc).__name__, self.retry_s)
                await asyncio.sleep(self.retry_s)


class RedisSource:
    name = "redis"

    def __init__(self, url: str, *, retry_s: float = 2.0) -> None:
        self.url = url
        self.retry_s = retry_s

    async def run(self, hub: Hub) -> None:
        import redis.asyncio as aioredis

        while True:
            client = aioredis.from_url(self.url)
            try:
                async with client.pubsub() as pubsub:
                    await pubsub.subscribe(REDIS_CHANNEL)
                    hub.wake()
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            hub.wake(wrote_alerts(message.get("data")))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("feed Redis subscription lost (%s); retrying in %.0f s",
                            type(exc).__name__, self.retry_s)
                await asyncio.sleep(self.retry_s)
            finally:
                with contextlib.suppress(Exception):
                    await client.aclose()


class RedisPublisher:
    """After-commit hook: tell the other processes whether the commit wrote alert rows, from a thread of its own.

    The hook runs in the committing thread, before the gateway's ack: a Redis that accepts connections but does
    not answer (hung, or a path that drops packets) held every commit for the client's 2 s timeout, so every
    SOS was acknowledged and fanned out 2 s late (docs18, measured 2,013-2,042 ms against tens of ms). Now the
    hook only records the wish; the thread publishes, several commits made meanwhile in one message (`alert`
    if any of them wrote alert rows: the message only wakes readers, who read every new row)."""

    def __init__(self, url: str) -> None:
        import redis

        self._client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._error: type[Exception] = redis.RedisError
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._pending: bool | None = None  # None: nothing to publish; else whether alerts were written
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="feed-redis-publish", daemon=True)
        self._thread.start()

    def __call__(self, alert: bool) -> None:
        with self._lock:
            self._pending = alert or bool(self._pending)
        self._wake.set()

    def _run(self) -> None:
        alert_message = feed_log.ALERT_PAYLOAD.encode()
        while True:
            self._wake.wait()
            with self._lock:
                self._wake.clear()
                pending, self._pending = self._pending, None
                if self._closed:
                    return
            if pending is None:
                continue
            try:
                self._client.publish(REDIS_CHANNEL, alert_message if pending else b"")
            except self._error as exc:  # the others will see the rows at their next poll
                log.warning("feed Redis publish failed: %s", type(exc).__name__)

    def close(self) -> None:
        with self._lock:
            self._closed = True
        self._wake.set()
        self._thread.join(5)
        self._client.close()


def redis_publisher(url: str) -> RedisPublisher:
    return RedisPublisher(url)


def source_for(engine: Engine, redis_url: str | None) -> Source | None:
    if redis_url:
        return RedisSource(redis_url)
    if engine.dialect.name == "postgresql":
        return PostgresSource(engine)
    return None  # embedded SQLite: one process, the local hub is enough


@asynccontextmanager
async def running_hub(engine: Engine, redis_url: str | None, supervisor: Supervisor | None = None) -> AsyncIterator[Hub]:
    """A hub for this process, woken by local commits and by the configured source (its listener runs
    supervised: a failure is logged with its traceback and the listener restarts with backoff)."""
    hub = Hub(asyncio.get_running_loop())
    hooks: list[Callable[[bool], None]] = [hub.wake]
    publisher = redis_publisher(redis_url) if redis_url else None
    if publisher is not None:
        hooks.append(publisher)
    for hook in hooks:
        feed_log.on_commit(hook)
    source = source_for(engine, redis_url)
    sup = supervisor or Supervisor(backoff_min_s=1.0)
    task = sup.spawn("feed-listen", lambda: source.run(hub), restart_on_return=True) if source else None
    log.info("feed fan-out: %s", source.name if source else "in-process")
    try:
        yield hub
    finally:
        for hook in hooks:
            feed_log.off_commit(hook)
        if publisher is not None:
            await asyncio.to_thread(publisher.close)
        if task:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
