"""The nightly daily-summary file: yesterday's summary written at 00:15 Asia/Bangkok, missed nights caught up.

At 00:15 the previous day is complete (positions a gateway sends late after
a short outage have mostly arrived). Files are `daily-YYYY-MM-DD.csv` and
`.xlsx` in `Settings.effective_export_dir`. On start, days after the newest
file up to yesterday that have no file are written (at most `MAX_CATCH_UP`
days; an empty folder gets yesterday only, not the whole history). Writing is
atomic and idempotent, and of several backend processes on one PostgreSQL
database only the one holding an advisory lock writes. Nightly files carry HOSPCODE, PID and HN, never
CID: a file at rest is copied around; `chumphae export daily --with-cid` is
the deliberate way to include it.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager, suppress
from datetime import date, datetime, time, timedelta
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import Session

from chumphae.config import Settings
from chumphae.db import one_process
from chumphae.report.daily import daily_summary
from chumphae.report.writers import render, write_atomically
from chumphae.timeutil import BANGKOK, utcnow

log = logging.getLogger(__name__)

RUN_AT = time(0, 15)  # Asia/Bangkok
MAX_CATCH_UP = 14
NIGHTLY_FORMATS = ("csv", "xlsx")
NIGHTLY_LOCK_KEY = 4005_0003  # advisory lock: one process writes the nightly files
NAME = re.compile(r"^daily-(\d{4}-\d{2}-\d{2})\.(csv|xlsx|json)$")


def file_name(day: date, fmt: str) -> str:
    return f"daily-{day.isoformat()}.{fmt}"


def next_run(now: datetime) -> datetime:
    """The first 00:15 Asia/Bangkok strictly after `now` (UTC-aware)."""
    local = now.astimezone(BANGKOK)
    candidate = datetime.combine(local.date(), RUN_AT, tzinfo=BANGKOK)
    if candidate <= local:
        candidate = datetime.combine(local.date() + timedelta(days=1), RUN_AT, tzinfo=BANGKOK)
    return candidate


def last_complete_day(now: datetime) -> date:
    """Yesterday in Bangkok once 00:15 has passed; before 00:15, the day before (not yet due)."""
    local = now.astimezone(BANGKOK)
    today = local.date()
    return today - timedelta(days=1) if local.time() >= RUN_AT else today - timedelta(days=2)


def day_end(day: date) -> datetime:
    """The end of a Bangkok calendar day (the next day's 00:00+07:00)."""
    return datetime.combine(day + timedelta(days=1), time(0), tzinfo=BANGKOK)


def written_days(folder: Path, formats: Sequence[str] = NIGHTLY_FORMATS) -> set[date]:
    """Days whose files exist in every nightly format, each written after the day was over: a file written
    while its day was running (`chumphae export daily --date TODAY` by hand) holds part of the day only, so
    that day is still due (docs18: the hand-made file had stood for the night's)."""
    if not folder.is_dir():
        return set()
    found: dict[date, set[str]] = {}
    for p in folder.iterdir():
        m = NAME.match(p.name)
        if m:
            day = date.fromisoformat(m.group(1))
            with suppress(OSError):  # a file gone meanwhile: not written
                if p.stat().st_mtime >= day_end(day).timestamp():
                    found.setdefault(day, set()).add(m.group(2))
    return {d for d, fmts in found.items() if set(formats) <= fmts}


def due_days(folder: Path, now: datetime, formats: Sequence[str] = NIGHTLY_FORMATS) -> list[date]:
    """Days to write now, oldest first: after the newest written day, up to the last complete day."""
    last = last_complete_day(now)
    done = written_days(folder, formats)
    newest = max((d for d in done if d <= last), default=None)
    first = last if newest is None else max(newest + timedelta(days=1), last - timedelta(days=MAX_CATCH_UP - 1))
    return [first + timedelta(days=k) for k in range((last - first).days + 1) if first + timedelta(days=k) not in done]


def write_day(engine: Engine, *, day: date, folder: Path, hospcode: str,
              formats: Sequence[str] = NIGHTLY_FORMATS, now: datetime | None = None) -> list[Path]:
    with Session(engine) as session:
        summary = daily_summary(session, day=day, hospcode=hospcode, with_cid=False, now=now)
    return [write_atomically(folder / file_name(day, fmt), render(summary, fmt)) for fmt in formats]


def catch_up(engine: Engine, *, folder: Path, hospcode: str, now: datetime | None = None) -> list[Path]:
    """Write every due day (the start-up catch-up and the nightly run are this same call).

    Of several backend processes on one PostgreSQL database, one writes (an advisory lock); the
    others skip, and find the files written when they look next."""
    now = now or utcnow()
    out: list[Path] = []
    with one_process(engine, NIGHTLY_LOCK_KEY) as mine:
        if not mine:
            log.info("daily summary: another backend process is writing it")
            return out
        for day in due_days(folder, now):
            out += write_day(engine, day=day, folder=folder, hospcode=hospcode, now=now)
            log.info("daily summary for %s written to %s", day, folder)
    return out


async def run_nightly(engine: Callable[[], Engine], *, folder: Path, hospcode: str,
                      clock: Callable[[], datetime] = utcnow,
                      sleep: Callable[[float], object] = asyncio.sleep) -> None:
    """Catch up now, then once a night; a failure is logged and retried at the next run, never fatal."""
    while True:
        try:
            await asyncio.to_thread(catch_up, engine(), folder=folder, hospcode=hospcode, now=clock())
        except Exception as exc:  # noqa: BLE001  (a full disk must not stop the backend)
            # The type only: an exception's text can quote a cell of the summary (an HN, a name).
            log.error("daily summary export failed (%s); retrying at the next run", type(exc).__name__)
        now = clock()
        await sleep(max(1.0, (next_run(now) - now).total_seconds()))  # type: ignore[misc]


@asynccontextmanager
async def nightly_exports(engine: Callable[[], Engine], *, folder: Path, hospcode: str) -> AsyncIterator[None]:
    """The background task for the app's lifespan."""
    task = asyncio.create_task(run_nightly(engine, folder=folder, hospcode=hospcode), name="daily-summary")
    try:
        yield
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task


@asynccontextmanager
async def for_app(settings: Settings, *, enabled: bool = True) -> AsyncIterator[None]:
    """The lifespan hook: the nightly job for a backend that owns its engine (tests' apps run without it)."""
    if not enabled:
        yield
        return
    from chumphae.db import get_engine

    async with nightly_exports(get_engine, folder=settings.effective_export_dir, hospcode=settings.hospcode):
        yield
