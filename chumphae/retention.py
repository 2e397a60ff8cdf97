"""Retention: rows older than their configured age are deleted, in small batches, by one process.

A province's day is millions of positions and gateway message ids; kept for
ever they grow without bound. `CHUMPHAE_RETENTION_*_DAYS` say how long each
kind is kept (0 keeps it for ever). The job runs hourly in the backend's
lifespan; of several processes on one PostgreSQL database only the holder of
an advisory lock runs it. Deletes go in batches of `BATCH` rows, each its own
transaction, so the hot path never waits long on a lock.

A feed cursor older than what is kept is "pruned": the feed answers it with a
snapshot (docs/feed-protocol.md). A gateway message id older than
`messages_days` is forgotten: the gateway keeps an unacknowledged message in
its outbox for far less than that, so a re-send is still recognised.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Column, Table, delete, select
from sqlalchemy.engine import Engine

from chumphae.config import Settings
from chumphae.db import one_process
from chumphae.models import AuditLog, FeedEvent, IngestedMessage, PositionRecord
from chumphae.timeutil import utcnow

log = logging.getLogger(__name__)

RETENTION_LOCK_KEY = 4005_0004
BATCH = 5_000
EVERY_S = 3_600.0


@dataclass(frozen=True, slots=True)
class Kind:
    """One kept kind of row: its table, its key and the time its age is measured from."""

    name: str
    table: Table
    key: Column[object]
    time: Column[object]


def kinds() -> list[Kind]:
    out = []
    for name, model, key, when in [("positions", PositionRecord, "id", "t"),
                                   ("messages", IngestedMessage, "msg_id", "received_at"),
                                   ("feed", FeedEvent, "id", "t"),
                                   ("audit", AuditLog, "id", "t")]:
        table: Table = model.__table__  # type: ignore[attr-defined]
        out.append(Kind(name, table, table.c[key], table.c[when]))
    return out


def cutoffs(settings: Settings, now: datetime) -> dict[str, datetime]:
    """Per kind, the time before which rows go (kinds kept for ever are absent)."""
    days = {"positions": settings.retention_positions_days, "messages": settings.retention_messages_days,
            "feed": settings.retention_feed_days, "audit": settings.retention_audit_days}
    return {name: now - timedelta(days=d) for name, d in days.items() if d > 0}


def prune(engine: Engine, settings: Settings, *, now: datetime | None = None,
          batch: int = BATCH) -> dict[str, int]:
    """Delete what is past its age; rows deleted per kind ({} when another process holds the job)."""
    limits = cutoffs(settings, now or utcnow())
    deleted: dict[str, int] = {}
    with one_process(engine, RETENTION_LOCK_KEY) as mine:
        if not mine:
            return deleted
        for kind in kinds():
            cutoff = limits.get(kind.name)
            if cutoff is None:
                continue
            total = 0
            while True:
                old = select(kind.key).where(kind.time < cutoff).limit(batch).scalar_subquery()
                with engine.begin() as conn:
                    n = conn.execute(delete(kind.table).where(kind.key.in_(old))).rowcount or 0
                total += n
                if n < batch:
                    break
            deleted[kind.name] = total
            if total:
                log.info("retention: %d %s rows older than %s deleted", total, kind.name, cutoff.date())
    return deleted


async def run_retention(engine: Callable[[], Engine], settings: Settings, *, every_s: float = EVERY_S) -> None:
    """Prune now, then every `every_s`; a failure is logged and retried next time, never fatal."""
    while True:
        try:
            await asyncio.to_thread(prune, engine(), settings)
        except Exception:  # noqa: BLE001  (a database hiccup must not stop the backend)
            log.exception("retention job failed; retrying in %.0f s", every_s)
        await asyncio.sleep(every_s)


@asynccontextmanager
async def retention_job(engine: Callable[[], Engine], settings: Settings, *,
                        enabled: bool = True) -> AsyncIterator[None]:
    """The background task for the app's lifespan."""
    if not enabled:
        yield
        return
    task = asyncio.create_task(run_retention(engine, settings), name="retention")
    try:
        yield
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
