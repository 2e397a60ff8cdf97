"""Who is told at each rung, and the one interface every delivery channel implements.

Who is told follows the escalation ladder: level 0 the patient's caregivers,
1 their volunteer (อสม.), 2 every care manager, 3 the hospital. A new or
re-triggered alert that rings tells everyone up to its current level; an
escalation tells the level just reached. A patient's alert never waits at a
rung of nobody (`rungs_with_people`, `chumphae.alert.severity.past_empty`).

Two kinds of receivers:
- `Channel` (LINE push, SMS, webhook, live feed): sends one rendered
  `Outbound` message for one durable notice row and answers with a `Result`
  (accepted / retry / refused). The worker (`chumphae.deliver.worker`) owns
  retries; a channel makes exactly one provider request per call.
- `Listener` (the log channel, tests): told after commit about each ringing
  change, with ids and labels only: no names, no national ID, no position
  (PDPA: listeners may log them).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from sqlalchemy import Select, literal, union_all
from sqlalchemy import select as sa_select
from sqlalchemy.engine import Engine
from sqlmodel import Session

from chumphae.aftercommit import Hooks
from chumphae.alert.render import TYPE_LABELS
from chumphae.alert.severity import LEVELS
from chumphae.models import CareAssignment, Role, User

if TYPE_CHECKING:
    from chumphae.alert.service import AlertChange

log = logging.getLogger(__name__)


# ---- the channel interface -------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Outbound:
    """One message for one person on one channel, rendered when it is sent."""

    key: str  # the notice's idempotency key: the same on every try
    channel: str
    address: str  # LINE user id, phone number or webhook URL (never logged)
    lang: str
    text: str
    alert_id: int | None
    link: str | None
    ack: bool = False  # offer an "acknowledge" button (LINE postback)
    payload: dict[str, Any] = field(default_factory=dict)  # the webhook's JSON body


@dataclass(frozen=True, slots=True)
class Result:
    outcome: Literal["accepted", "retry", "refused", "cancelled"]
    provider_id: str | None = None
    retry_after_s: float | None = None  # the provider's Retry-After, when it gave one
    detail: str = ""  # status code and a short reason; never a secret or a message text


class Channel(Protocol):
    name: str

    def ready(self) -> bool:
        """Configured well enough to send (a channel without credentials is skipped)."""
        ...

    async def send(self, out: Outbound) -> Result: ...


class FeedChannel:
    """The live feed: the feed row written with the alert change *is* the delivery.

    Feed notices are stored already sent (provider id `feed:<cursor>`) in the
    transaction that wrote the feed row, so the worker never sees them; this
    adapter answers for `chumphae channels test`.
    """

    name = "feed"

    def ready(self) -> bool:
        return True

    async def send(self, out: Outbound) -> Result:
        return Result("accepted", provider_id="feed", detail="live feed")


# ---- after-commit listeners (the log channel) ---------------------------------------------

@dataclass(frozen=True, slots=True)
class Notice:
    alert_id: int
    patient_id: int | None
    type: str
    severity: str
    event: str
    level: int
    user_ids: tuple[int, ...]
    title_th: str
    title_en: str


class Listener(Protocol):
    name: str

    def send(self, notice: Notice) -> None: ...


class LogChannel:
    """Writes one line per notice (ids only)."""

    name = "log"

    def send(self, notice: Notice) -> None:
        log.info("notice alert=%d type=%s severity=%s event=%s level=%d users=%s", notice.alert_id,
                 notice.type, notice.severity, notice.event, notice.level, list(notice.user_ids))


_listeners: list[Listener] = [LogChannel()]
_wakers = Hooks()


def register(listener: Listener) -> None:
    _listeners.append(listener)


def unregister(listener: Listener) -> None:
    if listener in _listeners:
        _listeners.remove(listener)


# `on_dispatch(wake)`: call `wake()` after every dispatch (the delivery worker of this process listens).
on_dispatch, off_dispatch = _wakers.add, _wakers.remove


def level_select(patient_id: int | None, level: int) -> Select[int, int] | None:
    """The query for the people told at one rung, as (user id, level) rows; None for a rung of nobody."""
    if level in (0, 1) and patient_id is not None:
        relation = "caregiver" if level == 0 else "volunteer"
        ca, u = CareAssignment.__table__, User.__table__  # type: ignore[attr-defined]
        return (sa_select(ca.c.user_id.label("user_id"), literal(level).label("level"))
                .join(u, u.c.id == ca.c.user_id)
                .where(ca.c.patient_id == patient_id, ca.c.relation == relation, u.c.active))
    role = {2: Role.CARE_MANAGER, 3: Role.HOSPITAL}.get(level)
    if role is None:
        return None
    u = User.__table__  # type: ignore[attr-defined]
    return sa_select(u.c.id.label("user_id"), literal(level).label("level")).where(u.c.role == role, u.c.active)


def users_at_level(session: Session, patient_id: int | None, level: int) -> list[int]:
    """The people told at one rung of the ladder."""
    query = level_select(patient_id, level)
    if query is None:
        return []
    return sorted(uid for uid, _ in session.connection().execute(query))


def rungs_with_people(session: Session, patient_id: int) -> set[int]:
    """The rungs of a patient's ladder with at least one active person, in one query (rung27)."""
    selects = [q for lv in range(len(LEVELS)) if (q := level_select(patient_id, lv)) is not None]
    rungs = union_all(*selects).subquery("rungs")
    return {lv for (lv,) in session.connection().execute(sa_select(rungs.c.level).distinct())}


def levels_told(change: AlertChange) -> list[int]:
    """The rungs a ringing change tells: the one reached (escalation) or all up to it."""
    if change.patient_id is None:  # a gateway's alert: the care managers look after the hardware
        return [2]
    return [change.level] if change.event == "escalated" else list(range(change.level + 1))


def users_told(session: Session, change: AlertChange) -> list[tuple[int, int]]:
    """(user id, level) pairs a ringing change tells, each user once at their lowest rung."""
    seen: dict[int, int] = {}
    for level in levels_told(change):
        for uid in users_at_level(session, change.patient_id, level):
            seen.setdefault(uid, level)
    return sorted(seen.items())


def notices(session: Session | None, changes: Iterable[AlertChange]) -> list[Notice]:
    """The listeners' notices; the people told as the change read them, else read here (`session`)."""
    out = []
    for c in changes:
        if not c.ring:
            continue
        if c.told is not None:
            users = c.told
        else:
            assert session is not None
            users = tuple(u for lv in levels_told(c) for u in users_at_level(session, c.patient_id, lv))
        th, en = TYPE_LABELS.get(c.type, (c.type, c.type))
        out.append(Notice(alert_id=c.alert_id, patient_id=c.patient_id, type=c.type, severity=c.severity,
                          event=c.event, level=c.level, user_ids=users, title_th=th, title_en=en))
    return out


def dispatch(engine: Engine, changes: Iterable[AlertChange]) -> list[Notice]:
    """After commit: tell the listeners and wake this process's delivery worker.

    The durable notices were already written with the change (`chumphae.deliver.outbox`).
    """
    changes = [c for c in changes if c.ring]
    if not changes:
        return []
    _wakers.fire()
    if all(c.told is not None for c in changes):  # an SOS's urgent thread is free again without a query
        out = notices(None, changes)
    else:
        with Session(engine) as session:
            out = notices(session, changes)
    for notice in out:
        for listener in list(_listeners):
            try:
                listener.send(notice)
            except Exception:  # one broken listener must not silence the others
                log.exception("listener %s failed for alert %d", listener.name, notice.alert_id)
    return out
