"""Retention: rows older than their configured age are deleted, in small batches, by one process.

A province's day is millions of positions and gateway message ids; kept for
ever they grow without bound. `CHUMPHAE_RETENTION_*_DAYS` say how long each
kind is kept (0 keeps it for ever). The job runs hourly in the backend's
lifespan; of several processes on one PostgreSQL database (schema) only the
holder of an advisory lock runs it. Deletes go in batches of `BATCH` rows, each its own
transaction, so the hot path never waits long on a lock.

On PostgreSQL, positions, feed rows and audit rows are partitioned by
Asia/Bangkok day (chumphae/partitions.py): the same job first creates the
days ahead, then drops the partitions wholly older than the cutoff (a day's
rows go in one `DROP TABLE`, none is deleted row by row; a row is kept at
most one day longer than configured), then deletes in batches what is older
in the default partition. Gateway message ids, not partitioned, are deleted
in batches on both databases.

A feed cursor older than what is kept is "pruned": the feed answers it with a
snapshot (docs/feed-protocol.md). A gateway message id older than
`messages_days` is forgotten: the gateway keeps an unacknowledged message in
its outbox for far less than that, so a re-send is still recognised.
"""

from __future__ import annotations

import asyncio
import logging
import time
import zlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Column, Table, delete, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, OperationalError

from chumphae import partitions
from chumphae.config import Settings
from chumphae.db import one_process
from chumphae.models import AuditLog, FeedEvent, IngestedMessage, PositionRecord
from chumphae.timeutil import utcnow

log = logging.getLogger(__name__)

RETENTION_LOCK_KEY = 4005_0004
BATCH = 5_000
EVERY_S = 3_600.0
DROP_TRIES = 10
DROP_PAUSE_S = 2.0
LOCK_NOT_AVAILABLE = "55P03"  # SQLSTATE of a lock_timeout


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
    """Remove what is past its age; rows removed per kind ({} when another process holds the job).

    On PostgreSQL the partitioned tables also get their days ahead created first.
    """
    now = now or utcnow()
    limits = cutoffs(settings, now)
    deleted: dict[str, int] = {}
    with one_process(engine, lock_key(engine)) as mine:
        if not mine:
            return deleted
        for kind in kinds():
            partitioned = _partitioned(engine, kind.table.name)
            if partitioned:
                try:
                    with engine.begin() as conn:
                        partitions.ensure(conn, kind.table.name, today=partitions.bangkok_day(now))
                except DBAPIError as exc:  # a lock not had in time: the default partition takes the rows
                    log.warning("partitions: %s days ahead not created (%s); next run retries",
                                kind.table.name, type(exc.orig).__name__)
            cutoff = limits.get(kind.name)
            if cutoff is None:
                continue
            total = 0
            if partitioned:
                total += _drop_days(engine, kind.table.name, cutoff)
            while True:
                with engine.begin() as conn:
                    if partitioned:
                        n = partitions.delete_default_before(conn, kind.table.name, cutoff, batch=batch)
                    else:
                        old = select(kind.key).where(kind.time < cutoff).limit(batch).scalar_subquery()
                        n = conn.execute(delete(kind.table).where(kind.key.in_(old))).rowcount or 0
                total += n
                if n < batch:
                    break
            deleted[kind.name] = total
            if total:
                log.info("retention: %d %s rows older than %s removed", total, kind.name, cutoff.date())
    return deleted


def lock_key(engine: Engine) -> int:
    """The job's advisory lock: one per PostgreSQL schema (advisory locks are per database, and installations
    or test runs may share a database in schemas of their own); `RETENTION_LOCK_KEY` on SQLite."""
    if engine.dialect.name != "postgresql":
        return RETENTION_LOCK_KEY
    with engine.connect() as conn:
        schema = str(conn.execute(text("SELECT current_schema()")).scalar())
    return RETENTION_LOCK_KEY * 2**32 + zlib.crc32(schema.encode())


def _drop_days(engine: Engine, table: str, cutoff: datetime) -> int:
    """Drop the days of `table` wholly older than `cutoff`, each in its own transaction; rows they held.

    A drop that cannot have its lock within the short timeout is tried again `DROP_TRIES` times, `DROP_PAUSE_S`
    apart, then left to the next run."""
    with engine.connect() as conn:
        old = partitions.old_days(conn, table, cutoff)
    total = 0
    for day in old:
        for attempt in range(DROP_TRIES):
            try:
                with engine.begin() as conn:
                    rows = partitions.drop_day(conn, day)
            except OperationalError as exc:
                if getattr(exc.orig, "sqlstate", None) != LOCK_NOT_AVAILABLE:
                    raise
                if attempt == DROP_TRIES - 1:
                    log.warning("retention: partition %s not dropped (its table stayed busy); next run retries",
                                day.name)
                    return total
                time.sleep(DROP_PAUSE_S)
                continue
            log.info("retention: partition %s dropped (%d rows)", day.name, rows)
            total += rows
            break
    return total


def _partitioned(engine: Engine, table: str) -> bool:
    if engine.dialect.name != "postgresql":
        return False
    with engine.connect() as conn:
        return partitions.is_partitioned(conn, table)


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
