"""Turning committed alert changes into notices for people, and handing them to channels.

Who is told follows the escalation ladder: level 0 the patient's caregivers,
1 their volunteer (อสม.), 2 every care manager, 3 the hospital. A new or
re-triggered alert that rings tells everyone up to its current level; an
escalation tells the level just reached. Notices carry ids and labels only:
no names, no national ID, no position (PDPA: channels may log them).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from chumphae.alert.render import TYPE_LABELS
from chumphae.alert.service import AlertChange
from chumphae.models import CareAssignment, Role, User

log = logging.getLogger(__name__)


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


class Channel(Protocol):
    name: str

    def send(self, notice: Notice) -> None: ...


class LogChannel:
    """Writes one line per notice: the outbox an SMS or LINE sender can follow later."""

    name = "log"

    def send(self, notice: Notice) -> None:
        log.info("notice alert=%d type=%s severity=%s event=%s level=%d users=%s", notice.alert_id,
                 notice.type, notice.severity, notice.event, notice.level, list(notice.user_ids))


_channels: list[Channel] = [LogChannel()]


def register(channel: Channel) -> None:
    _channels.append(channel)


def unregister(channel: Channel) -> None:
    if channel in _channels:
        _channels.remove(channel)


def users_at_level(session: Session, patient_id: int | None, level: int) -> list[int]:
    """The people told at one rung of the ladder."""
    if level in (0, 1) and patient_id is not None:
        relation = "caregiver" if level == 0 else "volunteer"
        rows = session.exec(select(CareAssignment.user_id).join(User, col(User.id) == CareAssignment.user_id)
                            .where(CareAssignment.patient_id == patient_id, CareAssignment.relation == relation,
                                   User.active)).all()
        return sorted(rows)
    role = {2: Role.CARE_MANAGER, 3: Role.HOSPITAL}.get(level)
    if role is None:
        return []
    return sorted(session.exec(select(User.id).where(User.role == role, User.active)).all())  # type: ignore[arg-type]


def notices(session: Session, changes: Iterable[AlertChange]) -> list[Notice]:
    out = []
    for c in changes:
        if not c.ring:
            continue
        levels = [c.level] if c.event == "escalated" else list(range(c.level + 1))
        if c.patient_id is None:  # a gateway's alert: the care managers look after the hardware
            levels = [2]
        users = tuple(u for lv in levels for u in users_at_level(session, c.patient_id, lv))
        th, en = TYPE_LABELS.get(c.type, (c.type, c.type))
        out.append(Notice(alert_id=c.alert_id, patient_id=c.patient_id, type=c.type, severity=c.severity,
                          event=c.event, level=c.level, user_ids=users, title_th=th, title_en=en))
    return out


def dispatch(engine: Engine, changes: Iterable[AlertChange]) -> list[Notice]:
    """After commit: work out who to tell and hand the notices to every channel."""
    changes = [c for c in changes if c.ring]
    if not changes:
        return []
    with Session(engine) as session:
        out = notices(session, changes)
    for notice in out:
        for channel in list(_channels):
            try:
                channel.send(notice)
            except Exception:  # one broken channel must not silence the others
                log.exception("channel %s failed for alert %d", channel.name, notice.alert_id)
    return out
