"""The delivery worker: claims due notices, sends each on its channel, records what the provider said.

Claim → send → record, each claim and record its own short transaction:
- claim: due rows (`queued` and `next_try_at` passed, or `sending` whose lease
  ran out because a backend died mid-send) are picked with
  `SELECT … FOR UPDATE SKIP LOCKED` on PostgreSQL and taken with a
  compare-and-set update (status, lease, attempts + 1), so across several
  processes (or several workers on SQLite's single writer) a notice is held by
  one worker at a time;
- send: one provider request with the notice's idempotency key and body, the
  same on every try (the message is rendered at the first try and kept on the
  row until the notice is done); a re-send after a crash repeats an accepted
  key and the provider answers 409, which counts as delivered;
- record: only if the row is still ours (status `sending`, same attempt
  number); `sent`, or `queued` again after backoff with jitter (never before
  the provider's `Retry-After`), or `failed` (refused for good) / `gave_up`
  (still failing after the give-up time). A notice that fails or gives up
  escalates its alert to the next rung at once, if nobody has taken it yet.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import partial
from typing import Any, TypeVar

from sqlalchemy import and_, func, or_, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from chumphae.alert.service import AlertChange, escalate_undelivered
from chumphae.config import Settings
from chumphae.deliver import message, notify, outbox
from chumphae.deliver.notify import Channel, Outbound, Result
from chumphae.models import (
    Alert,
    AlertStatus,
    ChannelName,
    ContactPoint,
    NoticeStatus,
    OutboxNotice,
    Patient,
    User,
)
from chumphae.models.delivery import DONE
from chumphae.timeutil import utcnow

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    poll_s: float = 1.0  # look for due notices at least this often (a dispatch wakes it sooner)
    batch: int = 32
    concurrency: int = 16  # provider requests in flight
    lease_s: float = 60.0  # a claimed notice not recorded by then is claimed again (must exceed a request)
    give_up_s: float = 600.0  # retry for this long after the notice was written
    backoff_s: float = 2.0  # first retry delay; doubles per attempt, with jitter
    backoff_max_s: float = 120.0

    @classmethod
    def from_settings(cls, s: Settings) -> WorkerOptions:
        return cls(poll_s=s.delivery_poll_s or 1.0, give_up_s=s.delivery_give_up_s, backoff_s=s.delivery_backoff_s,
                   backoff_max_s=s.delivery_backoff_max_s, lease_s=max(60.0, 3 * s.delivery_timeout_s))


def backoff_s(attempts: int, *, base: float, cap: float, rnd: Callable[[], float] = random.random) -> float:
    """Exponential backoff with 'equal jitter': half fixed, half random, capped."""
    d = min(cap, base * 2.0 ** max(0, attempts - 1))
    return float(d / 2 + rnd() * d / 2)


@dataclass(frozen=True, slots=True)
class Claimed:
    notice_id: int
    attempts: int  # fencing token: a record is applied only if the row still has this attempt number
    out: Outbound | None  # None: nothing can be sent (no contact point, alert gone): refused
    why_not: str = ""
    cancel: bool = False  # the alert was resolved before this went out


def _due(now: datetime):  # type: ignore[no-untyped-def]
    return or_(and_(col(OutboxNotice.status) == NoticeStatus.QUEUED, col(OutboxNotice.next_try_at) <= now),
               and_(col(OutboxNotice.status) == NoticeStatus.SENDING, col(OutboxNotice.lease_until) < now))


def claim(engine: Engine, *, now: datetime, options: WorkerOptions, public_url: str) -> list[Claimed]:
    """Take up to `options.batch` due notices for this worker and render their messages."""
    with Session(engine, expire_on_commit=False) as session:
        query = select(OutboxNotice.id).where(_due(now)).order_by(col(OutboxNotice.next_try_at)).limit(options.batch)
        if engine.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        ids = list(session.exec(query).all())
        taken = []
        for nid in ids:
            result = session.execute(
                update(OutboxNotice).where(col(OutboxNotice.id) == nid, _due(now))
                .values(status=NoticeStatus.SENDING, lease_until=now + timedelta(seconds=options.lease_s),
                        attempts=OutboxNotice.attempts + 1,
                        first_try_at=func.coalesce(OutboxNotice.first_try_at, now)))
            if result.rowcount == 1:  # type: ignore[attr-defined]
                taken.append(nid)
        rows = list(session.exec(select(OutboxNotice).where(col(OutboxNotice.id).in_(taken)))) if taken else []
        claimed = [_render(session, row, public_url) for row in rows]
        session.commit()
    return claimed


def _render(session: Session, row: OutboxNotice, public_url: str) -> Claimed:
    """The notice's message: rendered at its first try and stored on the row (`body`), read back on every
    try, the first included, so each retry sends the same bytes (same webhook body and signature, same text)."""
    assert row.id is not None
    user = session.get(User, row.user_id)
    contact = session.exec(select(ContactPoint).where(ContactPoint.user_id == row.user_id,
                                                      ContactPoint.channel == row.channel)).first()
    if user is None or contact is None or not contact.active:
        return Claimed(row.id, row.attempts, None, "no active contact point")
    alert = None
    if row.alert_id is not None:
        alert = session.get(Alert, row.alert_id)
        if alert is None:
            return Claimed(row.id, row.attempts, None, "alert gone")
        if alert.status == AlertStatus.RESOLVED:
            return Claimed(row.id, row.attempts, None, "alert resolved before delivery", cancel=True)
    if row.body is None:
        lang = user.lang if user.lang in ("th", "en") else "th"
        if alert is None:
            r = message.render_test(name=user.name, lang=lang, channel=row.channel, notice_key=row.key)
        else:
            if alert.patient_id is not None:
                p = session.get(Patient, alert.patient_id)
                who = message.patient_label(p.prename, p.name_th, p.name_en, lang) if p else None
            else:
                who = str((alert.details or {}).get("gateway") or f"gateway {alert.gateway_id}")
            r = message.render_alert(alert, who=who, lang=lang, event=row.event, level=row.level,
                                     public_url=public_url, notice_key=row.key)
        row.body = message.freeze(r, lang)  # committed with the claim, before anything is sent
        session.add(row)
    r, lang = message.thaw(row.body)
    out = Outbound(key=row.key, channel=row.channel, address=contact.address, lang=lang, text=r.text,
                   alert_id=row.alert_id, link=r.link, ack=row.alert_id is not None, payload=r.payload)
    return Claimed(row.id, row.attempts, out)


def record(engine: Engine, c: Claimed, result: Result, *, now: datetime, options: WorkerOptions,
           rnd: Callable[[], float] = random.random) -> tuple[str, AlertChange | None]:
    """Store the outcome of one try; returns the new status ('' if the row was no longer ours) and an escalation."""
    change = None
    with Session(engine, expire_on_commit=False) as session:
        query = select(OutboxNotice).where(OutboxNotice.id == c.notice_id)
        if engine.dialect.name == "postgresql":
            query = query.with_for_update()
        row = session.exec(query).first()
        if row is None or row.status != NoticeStatus.SENDING or row.attempts != c.attempts:
            return "", None  # another worker took it over after our lease ran out
        row.lease_until = None
        row.last_error = None if result.outcome == "accepted" and not result.detail.startswith("409") else \
            (result.detail or result.outcome)[:200]
        if result.outcome == "accepted":
            row.status, row.done_at = NoticeStatus.SENT, now
            row.provider_message_id = (result.provider_id or "")[:128] or None
        elif result.outcome == "refused":
            row.status, row.done_at = NoticeStatus.FAILED, now
        elif result.outcome == "cancelled":
            row.status, row.done_at = NoticeStatus.CANCELLED, now
        else:
            deadline = row.created_at + timedelta(seconds=options.give_up_s)
            delay = backoff_s(row.attempts, base=options.backoff_s, cap=options.backoff_max_s, rnd=rnd)
            wait = max(delay, result.retry_after_s or 0.0)
            if now >= deadline or (result.retry_after_s is not None and now + timedelta(seconds=wait) > deadline):
                row.status, row.done_at = NoticeStatus.GAVE_UP, now
            else:
                row.status = NoticeStatus.QUEUED
                row.next_try_at = min(now + timedelta(seconds=wait), deadline)
        if row.status in DONE:
            row.body = None  # no try follows: what was sent is not kept
        session.add(row)
        session.flush()
        if row.status in (NoticeStatus.FAILED, NoticeStatus.GAVE_UP) and row.alert_id is not None \
                and row.channel != ChannelName.FEED:
            change = escalate_undelivered(session, alert_id=row.alert_id, level=row.level, now=now)
        status = row.status
        session.commit()
    return status, change


class Worker:
    """Runs claim → send → record in a loop; `wake()` (thread-safe) cuts the wait short."""

    def __init__(self, engine: Engine, channels: Mapping[str, Channel], options: WorkerOptions = WorkerOptions(),
                 *, public_url: str = "http://127.0.0.1:8080", clock: Callable[[], datetime] = utcnow,
                 rnd: Callable[[], float] = random.random) -> None:
        self.engine, self.channels, self.options = engine, dict(channels), options
        self.public_url, self.clock, self.rnd = public_url, clock, rnd
        self.counts: Counter[str] = Counter()  # claimed, sent, retry, failed, gave_up, lost_lease, escalated
        self._loop: asyncio.AbstractEventLoop | None = None
        self._event: asyncio.Event | None = None
        # Its own threads for database work: delivery never takes the threads ingest stores with.
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="deliver")

    async def _db(self, fn: Callable[..., T], *args: Any, **kw: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, partial(fn, *args, **kw))

    def wake(self) -> None:
        loop, event = self._loop, self._event
        if loop is None or event is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(event.set)

    async def _one(self, c: Claimed, sem: asyncio.Semaphore) -> None:
        if c.out is None:
            result = Result("cancelled" if c.cancel else "refused", detail=c.why_not)
        else:
            channel = self.channels.get(c.out.channel)
            if channel is None or not channel.ready():
                result = Result("refused", detail=f"channel {c.out.channel} not configured")
            else:
                async with sem:
                    try:
                        result = await channel.send(c.out)
                    except Exception as exc:  # a bug in an adapter: retried, never lost
                        log.exception("channel %s raised for notice %d", c.out.channel, c.notice_id)
                        result = Result("retry", detail=type(exc).__name__)
        status, change = await self._db(record, self.engine, c, result, now=self.clock(),
                                        options=self.options, rnd=self.rnd)
        self.counts[status or "lost_lease"] += 1
        if result.outcome == "retry" and status == NoticeStatus.QUEUED:
            self.counts["retry"] += 1
        if status in (NoticeStatus.FAILED, NoticeStatus.GAVE_UP):
            log.warning("notice %d on %s %s: %s", c.notice_id, c.out.channel if c.out else "?", status,
                        result.detail)
        if change is not None:
            self.counts["escalated"] += 1
            await self._db(notify.dispatch, self.engine, [change])

    async def run_once(self) -> int:
        """Claim one batch and see every notice in it to a recorded outcome; returns how many were claimed."""
        claimed = await self._db(claim, self.engine, now=self.clock(), options=self.options,
                                 public_url=self.public_url)
        self.counts["claimed"] += len(claimed)
        if claimed:
            sem = asyncio.Semaphore(self.options.concurrency)
            await asyncio.gather(*(self._one(c, sem) for c in claimed))
        return len(claimed)

    async def run(self) -> None:
        """Forever (cancelled at shutdown): keeps up to `concurrency` sends in flight, claiming more as each
        finishes or a dispatch wakes it, so one slow provider never holds back the next SOS."""
        self._loop, self._event = asyncio.get_running_loop(), asyncio.Event()
        notify.on_dispatch(self.wake)
        outbox.on_pushes(self.wake)  # a commit that wrote notices to send (not every feed commit)
        sem = asyncio.Semaphore(self.options.concurrency)
        inflight: set[asyncio.Task[None]] = set()
        try:
            while True:
                self._event.clear()
                room = self.options.concurrency - len(inflight)
                claimed: list[Claimed] = []
                if room > 0:
                    try:
                        claimed = await self._db(
                            claim, self.engine, now=self.clock(), options=replace(self.options, batch=min(
                                room, self.options.batch)), public_url=self.public_url)
                    except Exception:
                        log.exception("delivery claim failed")
                    self.counts["claimed"] += len(claimed)
                    for c in claimed:
                        task = asyncio.create_task(self._guarded(c, sem))
                        inflight.add(task)
                        task.add_done_callback(inflight.discard)
                if claimed and len(claimed) == room:
                    continue  # more may be due: claim again once there is room
                waits: set[asyncio.Future[Any]] = {asyncio.ensure_future(self._event.wait()), *inflight}
                done, _ = await asyncio.wait(waits, timeout=self.options.poll_s, return_when=asyncio.FIRST_COMPLETED)
                for w in waits - set(inflight):
                    w.cancel()
        finally:
            notify.off_dispatch(self.wake)
            outbox.off_pushes(self.wake)
            for task in inflight:
                task.cancel()
            await asyncio.gather(*inflight, return_exceptions=True)
            self._pool.shutdown(wait=False)

    async def _guarded(self, c: Claimed, sem: asyncio.Semaphore) -> None:
        try:
            await self._one(c, sem)
        except asyncio.CancelledError:
            raise
        except Exception:  # the row stays 'sending' and is claimed again after its lease
            log.exception("delivery of notice %d failed", c.notice_id)
