"""The durable outbox: notice rows written in the transaction that raised or escalated an alert.

`enqueue` runs inside `chumphae.alert.service` for every ringing change, so a
notice exists exactly when its alert change was committed: a backend killed
after commit loses nothing, one killed before commit never rang. Feed notices
are stored already sent (the feed row of the same transaction is their
delivery); the others wait for the worker (`chumphae.deliver.worker`).

On PostgreSQL a raise or re-trigger reads who is told with its other reads (`TOLD_ALL_PG_SQL`, `reach`),
plans the notices here (`plan_notices`) and writes them in its one statement (`chumphae.alert.service`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection, Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, union_all
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from chumphae.aftercommit import AfterCommit
from chumphae.alert.render import iso
from chumphae.deliver import plan
from chumphae.deliver.notify import level_select, levels_told
from chumphae.models import ChannelName, ContactPoint, DeliveryPreference, NoticeStatus, OutboxNotice, User
from chumphae.models.delivery import DONE
from chumphae.timeutil import iso_bangkok, utcnow

if TYPE_CHECKING:
    from chumphae.alert.service import AlertChange

# After a commit that wrote notices the worker must send (LINE, SMS, webhook; feed notices are sent
# already): `on_pushes(hook)` registers, `off_pushes(hook)` unregisters (the delivery worker listens).
_pushes = AfterCommit("chumphae_pushes_pending")
on_pushes, off_pushes = _pushes.add, _pushes.remove


# A re-trigger of an alert still open rings the feed each time, but pushes (LINE, SMS, webhook) to a person
# at most once per window per channel: a wander re-confirmed every minute must not become a flood.
RETRIGGER_PUSH_WINDOW = {"critical": timedelta(seconds=60)}
RETRIGGER_PUSH_DEFAULT = timedelta(minutes=15)


def _recent_pushes(session: Session, alert_id: int, since: datetime) -> set[tuple[int, str]]:
    rows = session.exec(select(OutboxNotice.user_id, OutboxNotice.channel).where(
        OutboxNotice.alert_id == alert_id, OutboxNotice.channel != ChannelName.FEED,
        col(OutboxNotice.created_at) > since)).all()
    return {(uid, ch) for uid, ch in rows}


Reach = tuple[dict[str, list[str]], str | None, str | None]  # a preference: channels, quiet start, quiet end


def _told_and_reach(session: Session, change: AlertChange
                    ) -> tuple[list[tuple[int, int]], dict[int, list[str]], dict[int, Reach]]:
    """Who a ringing change tells ((user id, level), each user once at their lowest rung, by id), the
    channels each has an active contact point on, and their preferences: one query, not one per rung
    plus one for contact points and one for preferences (an SOS waits for each round trip)."""
    selects = [q for lv in levels_told(change) if (q := level_select(change.patient_id, lv)) is not None]
    if not selects:
        return [], {}, {}
    told = union_all(*selects).subquery("told")
    cp, dp = ContactPoint.__table__, DeliveryPreference.__table__  # type: ignore[attr-defined]
    query = (sa_select(told.c.user_id, told.c.level, cp.c.channel, dp.c.user_id, dp.c.channels, dp.c.quiet_start,
                       dp.c.quiet_end)
             .select_from(told.outerjoin(cp, and_(cp.c.user_id == told.c.user_id, cp.c.active))
                          .outerjoin(dp, dp.c.user_id == told.c.user_id))
             .order_by(told.c.level, told.c.user_id, cp.c.id))
    return reach(session.connection().execute(query), None)


Told = tuple[list[tuple[int, int]], dict[int, list[str]], dict[int, Reach]]


def reach(rows: Iterable[Any], levels: Collection[int] | None) -> Told:
    """`_told_and_reach`'s rows (user id, level, channel, preference's user id, channels, quiet start, quiet
    end; by level, user, contact point) as who is told, their channels and preferences; only the rungs in
    `levels` (None: every row's)."""
    rungs: dict[int, int] = {}
    contacts: dict[int, list[str]] = {}
    prefs: dict[int, Reach] = {}
    for uid, level, channel, has_pref, wanted, quiet_start, quiet_end in rows:
        if levels is not None and level not in levels:
            continue
        rungs.setdefault(uid, level)
        if level != rungs[uid]:
            continue  # the same person again at a higher rung
        if channel is not None:
            contacts.setdefault(uid, []).append(channel)
        if has_pref is not None:
            prefs[uid] = (wanted, quiet_start, quiet_end)
    return sorted(rungs.items()), contacts, prefs


# PostgreSQL, for the alert transaction's one read round trip (`chumphae.alert.service`): every rung's people
# of one patient (%s: the patient id, twice) as `_told_and_reach` reads them, `reach` keeps the rungs told.
# The same rungs as `chumphae.deliver.notify.level_select` (tests/deliver hold the two to the same people).
TOLD_ALL_PG_SQL = (
    "WITH told AS ("
    "SELECT ca.user_id, 0 AS level FROM care_assignment ca JOIN app_user u ON u.id = ca.user_id "
    "WHERE ca.patient_id = %s AND ca.relation = 'caregiver' AND u.active "
    "UNION ALL SELECT ca.user_id, 1 FROM care_assignment ca JOIN app_user u ON u.id = ca.user_id "
    "WHERE ca.patient_id = %s AND ca.relation = 'volunteer' AND u.active "
    "UNION ALL SELECT u.id, 2 FROM app_user u WHERE u.role = 'care_manager' AND u.active "
    "UNION ALL SELECT u.id, 3 FROM app_user u WHERE u.role = 'hospital' AND u.active) "
    "SELECT told.user_id, told.level, cp.channel, dp.user_id, dp.channels, dp.quiet_start, dp.quiet_end FROM told "
    "LEFT JOIN contact_point cp ON cp.user_id = told.user_id AND cp.active "
    "LEFT JOIN delivery_preference dp ON dp.user_id = told.user_id "
    "ORDER BY told.level, told.user_id, cp.id")


def push_window(severity: str) -> timedelta:
    """A re-trigger pushes to a person on a channel at most once in this window."""
    return RETRIGGER_PUSH_WINDOW.get(severity, RETRIGGER_PUSH_DEFAULT)


def enqueue(session: Session, change: AlertChange, *, now: datetime | None = None) -> list[OutboxNotice]:
    """One notice per (user told, channel they are reached on) for a ringing change; nothing otherwise."""
    rows = prepare(session, change, now=now)
    session.add_all(rows)
    session.flush()
    return rows


def rings(change: AlertChange) -> bool:
    """Whether the change tells anyone (a new, re-triggered or escalated alert that rings)."""
    return change.ring and change.event in ("opened", "retriggered", "escalated")


def prepare(session: Session, change: AlertChange, *, now: datetime | None = None) -> list[OutboxNotice]:
    """The notices `enqueue` would store, built but not added to the session (the caller adds them).

    The alert state machine reads who is told here, before it takes the feed writers' lock, and
    adds the feed notices only once the feed row's cursor is known (their provider id).
    """
    if not rings(change):
        return []
    now = now or utcnow()
    told = _told_and_reach(session, change)
    if not told[0]:
        return []

    def recent() -> set[tuple[int, str]]:
        return _recent_pushes(session, change.alert_id, now - push_window(change.severity))

    rows = plan_notices(change, told, recent, now=now)
    if any(r.channel != ChannelName.FEED for r in rows):
        _pushes.mark(session)
    return rows


def plan_notices(change: AlertChange, told: Told, recent: Callable[[], set[tuple[int, str]]], *, now: datetime
         ) -> list[OutboxNotice]:
    """The notices of a ringing change, from who is told and how (`reach`); `recent()`: the (user, channel)
    pairs pushed within the window, asked only for a re-trigger that would push."""
    people, contacts, prefs = told
    planned = []
    for uid, level in people:
        pref = prefs.get(uid)
        planned.append((uid, level, plan.channels_for(
            severity=change.severity, prefs=pref[0] if pref else None, contacts=contacts.get(uid, []),
            quiet_start=pref[1] if pref else None, quiet_end=pref[2] if pref else None, now=now)))
    pushed: set[tuple[int, str]] = set()
    if change.event == "retriggered" and any(c != ChannelName.FEED for _, _, cs in planned for c in cs):
        pushed = recent()
    rows = []
    for uid, level, channels in planned:
        for channel in channels:
            if (uid, channel) in pushed:
                continue
            row = OutboxNotice(key=str(uuid.uuid4()), alert_id=change.alert_id, event=change.event, level=level,
                               user_id=uid, channel=channel, created_at=now, next_try_at=now)
            if channel == ChannelName.FEED:
                row.status, row.done_at = NoticeStatus.SENT, now
                row.provider_message_id = f"feed:{change.cursor}" if change.cursor is not None else "feed"
            rows.append(row)
    return rows


def mark_pushes(session: Session) -> None:
    """The session wrote notices the worker must send: wake it after the commit."""
    _pushes.mark(session)


def queue_test_messages(session: Session, *, user_id: int, now: datetime | None = None) -> list[OutboxNotice]:
    """A test notice on each channel the user can be reached on (and the feed), queued for the worker."""
    now = now or utcnow()
    channels = [cp.channel for cp in session.exec(select(ContactPoint).where(ContactPoint.user_id == user_id,
                                                                             ContactPoint.active))]
    rows = [OutboxNotice(key=str(uuid.uuid4()), alert_id=None, event="test", level=0, user_id=user_id,
                         channel=c, created_at=now, next_try_at=now) for c in sorted(channels)]
    if rows:
        _pushes.mark(session)
    session.add_all(rows)
    session.flush()
    return rows


def delivery_dict(row: OutboxNotice, user_name: str | None) -> dict[str, Any]:
    """One notice as the API shows it: who, which channel, delivered or not (no address)."""
    return {
        "id": row.id,
        "user_id": row.user_id,
        "user_name": user_name,
        "level": row.level,
        "event": row.event,
        "channel": row.channel,
        "status": row.status,
        "delivered": row.status == NoticeStatus.SENT,
        "attempts": row.attempts,
        "last_error": row.last_error,
        "created_at": iso(row.created_at),
        "created_at_local": iso_bangkok(row.created_at),
        "done_at": iso(row.done_at),
        "done_at_local": iso_bangkok(row.done_at),
        "next_try_at": None if row.status in DONE else iso(row.next_try_at),
    }


def deliveries(session: Session, alert_id: int) -> list[dict[str, Any]]:
    """Every notice of one alert, oldest first."""
    rows = session.exec(select(OutboxNotice, User.name).join(User, col(User.id) == OutboxNotice.user_id)
                        .where(OutboxNotice.alert_id == alert_id).order_by(col(OutboxNotice.id))).all()
    return [delivery_dict(row, name) for row, name in rows]
