"""The alert state machine: raise (or re-trigger), acknowledge, resolve, escalate.

Every change writes its `alert_event` history row and its `feed_event` row in
the caller's transaction, so what the feed shows is exactly what was
committed. Functions are keyword-only and take a session; the caller commits
and then hands the returned `AlertChange`s to delivery (`chumphae.deliver`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from chumphae import audit
from chumphae.alert import late
from chumphae.alert.render import alert_dict
from chumphae.alert.severity import MAX_LEVEL, next_escalation_at, severity_for
from chumphae.auth.access import can_see_patient, sees_all
from chumphae.deliver import outbox
from chumphae.errors import Forbidden, NotFound
from chumphae.feed import log as feed_log
from chumphae.models import Alert, AlertEvent, AlertStatus, ChannelName, Outcome, User
from chumphae.timeutil import utcnow
from chumphae.values import Detection, Severity


class AlertConflict(Exception):
    """The alert is not in a state that allows this (e.g. resolving a resolved alert)."""


@dataclass(frozen=True, slots=True)
class AlertInput:
    """A detection on its way to becoming alarm state (from a gateway or a server detector)."""

    type: str
    t: datetime  # when it happened
    patient_id: int | None
    gateway_id: int | None = None
    band_id: int | None = None
    lat: float | None = None
    lon: float | None = None
    uncertainty_m: float | None = None
    parcel_code: str | None = None
    building_code: str | None = None
    description_th: str | None = None
    description_en: str | None = None
    zone_version: int | None = None
    confidence: float = 1.0
    details: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AlertChange:
    """What happened, for delivery after commit."""

    alert_id: int
    patient_id: int | None
    type: str
    severity: str
    event: str  # opened | retriggered | acknowledged | escalated | resolved | late_history
    ring: bool
    level: int
    cursor: int | None


def from_detection(d: Detection, *, gateway_id: int | None = None, band_id: int | None = None) -> AlertInput:
    """A server-side detector's finding as an alert input."""
    m = d.match
    place = m.place if m else None
    return AlertInput(
        type=d.type.value, t=d.t, patient_id=d.patient_id, gateway_id=gateway_id, band_id=band_id,
        lat=m.position.lat if m else None, lon=m.position.lon if m else None,
        uncertainty_m=m.position.uncertainty_m if m else None,
        parcel_code=place.parcel_code if place else None,
        building_code=place.building_code if place else None,
        description_th=place.description_th if place else None,
        description_en=place.description_en if place else None,
        zone_version=m.zone_version if m else None, confidence=d.confidence, details=dict(d.details),
    )


def _key(query: Any, a: AlertInput) -> Any:
    if a.patient_id is not None:
        return query.where(Alert.patient_id == a.patient_id, Alert.type == a.type)
    return query.where(col(Alert.patient_id).is_(None), Alert.gateway_id == a.gateway_id, Alert.type == a.type)


def _unresolved(session: Session, a: AlertInput) -> Alert | None:
    found: Alert | None = session.exec(_key(select(Alert), a).where(Alert.status != AlertStatus.RESOLVED)).first()
    return found


def _names(session: Session, alert: Alert) -> dict[int, str]:
    ids = {i for i in (alert.acknowledged_by, alert.resolved_by) if i is not None}
    if not ids:
        return {}
    return {u.id: u.name for u in session.exec(select(User).where(col(User.id).in_(ids))).all()}  # type: ignore[misc]


def _record(session: Session, alert: Alert, *, event: str, ring: bool, user_id: int | None = None,
            details: dict[str, object] | None = None, now: datetime | None = None) -> AlertChange:
    """History row + feed row for one change, in the caller's transaction.

    The feed row is written last: on PostgreSQL it takes the feed writers' lock, held until the
    caller commits, so every read this change needs (who is told, on which channels) comes before
    it. Only the feed notices, whose provider id is the row's cursor, are added after it (one
    insert, flushed with the commit).
    """
    assert alert.id is not None
    history: feed_log.Statement | None = None
    if session.get_bind().dialect.name == "postgresql":  # sent with the feed row: one round trip for both
        history = (_HISTORY_PG_SQL, (alert.id, utcnow(), event, user_id, orjson.dumps(details or {}).decode()))
    else:
        session.add(AlertEvent(alert_id=alert.id, kind=event, user_id=user_id, details=details or {}))
    payload = {"event": event, "ring": ring, "alert": alert_dict(alert, names=_names(session, alert))}
    change = AlertChange(alert_id=alert.id, patient_id=alert.patient_id, type=alert.type,
                         severity=alert.severity, event=event, ring=ring, level=alert.escalation_level,
                         cursor=None)
    # durable notices in this same transaction (chumphae/deliver/outbox.py)
    notices = outbox.prepare(session, change, now=now) if ring else []
    session.add_all([n for n in notices if n.channel != ChannelName.FEED])
    row = feed_log.append(session, kind="alert", patient_id=alert.patient_id, payload=payload,  # flushes first
                          with_insert=history)
    for n in notices:
        if n.channel == ChannelName.FEED:
            n.provider_message_id = f"feed:{row.id}"
            session.add(n)
    return replace(change, cursor=row.id)


_HISTORY_PG_SQL = "INSERT INTO alert_event (alert_id, t, kind, user_id, details) VALUES (%s, %s, %s, %s, %s::json)"


def raise_alert(session: Session, *, alert: AlertInput, now: datetime | None = None) -> AlertChange:
    """Open a new alert, or re-trigger the unresolved one of the same patient and type."""
    now = now or utcnow()
    existing = _unresolved(session, alert)
    severity = severity_for(alert.type)
    last_resolved = None
    if existing is None:
        last_resolved = session.exec(_key(select(func.max(Alert.resolved_at)), alert)
                                     .where(Alert.status == AlertStatus.RESOLVED)).one()
    verdict = late.judge(t=alert.t, received_at=now, existing_status=existing.status if existing else None,
                         last_resolved_at=last_resolved, critical=severity == Severity.CRITICAL)
    if verdict.belongs_to_resolved:
        return _late_history(session, alert)
    if existing is None:
        row = _new(alert, severity=severity, late_=verdict.late, now=now)
        try:
            with session.begin_nested():
                session.add(row)
                session.flush()
        except IntegrityError:  # another process opened it a moment ago: re-trigger that one
            existing = _unresolved(session, alert)
            if existing is None:
                raise
        else:
            return _record(session, row, event="opened", ring=verdict.ring,
                           details={"late": verdict.late, "confidence": alert.confidence}, now=now)
    return _retrigger(session, existing, alert, ring=verdict.ring, late_=verdict.late, now=now)


def _new(a: AlertInput, *, severity: str, late_: bool, now: datetime) -> Alert:
    return Alert(
        patient_id=a.patient_id, gateway_id=a.gateway_id, band_id=a.band_id, type=a.type,
        severity=severity, status=AlertStatus.OPEN, opened_at=a.t, received_at=now,
        last_triggered_at=a.t, count=1, late=late_, escalation_level=0,
        next_escalation_at=next_escalation_at(severity, 0, now), lat=a.lat, lon=a.lon,
        uncertainty_m=a.uncertainty_m, parcel_code=a.parcel_code, building_code=a.building_code,
        description_th=a.description_th, description_en=a.description_en, zone_version=a.zone_version,
        details={**a.details, "confidence": a.confidence},
    )


def _retrigger(session: Session, row: Alert, a: AlertInput, *, ring: bool, late_: bool,
               now: datetime | None = None) -> AlertChange:
    row.count += 1
    if a.t < row.opened_at:
        row.opened_at = a.t  # a late message shows it began earlier than we knew
    if a.t >= row.last_triggered_at:
        row.last_triggered_at = a.t
        if a.lat is not None and a.lon is not None:  # newest news of where the patient is
            row.lat, row.lon, row.uncertainty_m = a.lat, a.lon, a.uncertainty_m
            row.parcel_code, row.building_code = a.parcel_code, a.building_code
            row.description_th, row.description_en = a.description_th, a.description_en
            row.zone_version = a.zone_version
        row.details = {**(row.details or {}), **a.details}
    session.add(row)
    session.flush()
    return _record(session, row, event="retriggered", ring=ring,
                   details={"late": late_, "t": a.t.isoformat(), "count": row.count}, now=now)


def _late_history(session: Session, a: AlertInput) -> AlertChange:
    """A late event from before the condition was resolved: kept as that alert's history."""
    row = session.exec(_key(select(Alert), a).where(Alert.status == AlertStatus.RESOLVED)
                       .order_by(col(Alert.resolved_at).desc())).first()
    assert row is not None and row.id is not None
    session.add(AlertEvent(alert_id=row.id, kind="late_event", details={"t": a.t.isoformat(), "late": True}))
    session.flush()
    return AlertChange(alert_id=row.id, patient_id=row.patient_id, type=row.type, severity=row.severity,
                       event="late_history", ring=False, level=row.escalation_level, cursor=None)


def alert_for_user(session: Session, *, user: User, alert_id: int, lock: bool = False) -> Alert:
    """The alert if `user` may see it: NotFound, or Forbidden (the caller audits the denial)."""
    query = select(Alert).where(Alert.id == alert_id)
    if lock:
        query = query.with_for_update()
    row = session.exec(query).first()
    if row is None:
        raise NotFound(f"alert {alert_id}")
    if row.patient_id is None:
        if not sees_all(user):
            raise Forbidden(f"alert {alert_id}")
    elif not can_see_patient(session, user, row.patient_id):
        raise Forbidden(f"alert {alert_id}")
    return row


def acknowledge(session: Session, *, user: User, alert_id: int, note: str | None = None,
                route: str | None = None, now: datetime | None = None) -> tuple[Alert, AlertChange | None]:
    """Someone is on it: stops escalation. Acknowledging twice changes nothing (no new frame)."""
    row = alert_for_user(session, user=user, alert_id=alert_id, lock=True)
    if row.status == AlertStatus.RESOLVED:
        raise AlertConflict("already resolved")
    if row.status == AlertStatus.ACKNOWLEDGED:
        return row, None
    row.status = AlertStatus.ACKNOWLEDGED
    row.acknowledged_by, row.acknowledged_at = user.id, now or utcnow()
    row.next_escalation_at = None  # cancels whatever was still pending
    session.add(row)
    session.flush()
    audit.record(session, user=user, action="update", entity="alert", entity_id=row.id,
                 patient_id=row.patient_id, route=route, detail={"event": "acknowledged"})
    return row, _record(session, row, event="acknowledged", ring=False, user_id=user.id,
                        details={"note": note} if note else {})


def resolve(session: Session, *, user: User | None, alert_id: int, outcome: Outcome | str,
            note: str | None = None, route: str | None = None, now: datetime | None = None,
            ) -> tuple[Alert, AlertChange]:
    """Close the alert with an outcome; an open alert is acknowledged by the same act."""
    now = now or utcnow()
    if user is not None:
        row = alert_for_user(session, user=user, alert_id=alert_id, lock=True)
    else:  # the system itself (a gateway came back)
        found = session.get(Alert, alert_id)
        if found is None:
            raise NotFound(f"alert {alert_id}")
        row = found
    if row.status == AlertStatus.RESOLVED:
        raise AlertConflict("already resolved")
    uid = user.id if user else None
    if row.acknowledged_at is None:
        row.acknowledged_by, row.acknowledged_at = uid, now
    row.status = AlertStatus.RESOLVED
    row.resolved_by, row.resolved_at = uid, now
    row.outcome, row.resolution_note = Outcome(outcome).value, note
    row.next_escalation_at = None
    session.add(row)
    session.flush()
    if user is not None:
        audit.record(session, user=user, action="update", entity="alert", entity_id=row.id,
                     patient_id=row.patient_id, route=route, detail={"event": "resolved"})
    return row, _record(session, row, event="resolved", ring=False, user_id=uid,
                        details={"outcome": row.outcome, "auto": user is None})


def escalate_due(session: Session, *, now: datetime | None = None, limit: int = 100) -> list[AlertChange]:
    """Climb every open alert whose deadline passed (several processes: rows are locked, skipped)."""
    now = now or utcnow()
    rows = session.exec(
        select(Alert).where(Alert.status == AlertStatus.OPEN, col(Alert.next_escalation_at).is_not(None),
                            col(Alert.next_escalation_at) <= now)
        .order_by(col(Alert.next_escalation_at)).limit(limit).with_for_update(skip_locked=True)
    ).all()
    changes = []
    for row in rows:
        before = row.escalation_level
        due = row.next_escalation_at
        while due is not None and due <= now:  # a server that was down catches up in one step
            row.escalation_level += 1
            due = next_escalation_at(row.severity, row.escalation_level, due)
        row.next_escalation_at = due
        session.add(row)
        session.flush()
        changes.append(_record(session, row, event="escalated", ring=True,
                               details={"from": before, "to": row.escalation_level}, now=now))
    return changes


def escalate_undelivered(session: Session, *, alert_id: int, level: int, now: datetime | None = None,
                         ) -> AlertChange | None:
    """A notice at `level` gave up (or was refused): tell the next rung now, if nobody has acted yet.

    Only an open (unacknowledged) alert still at that level climbs; one already
    higher, acknowledged or resolved is left alone. The climb is recorded and
    delivered like a timed escalation, and the next deadline restarts from now.
    """
    now = now or utcnow()
    row = session.exec(select(Alert).where(Alert.id == alert_id).with_for_update()).first()
    if row is None or row.status != AlertStatus.OPEN or row.escalation_level != level or level >= MAX_LEVEL:
        return None
    row.escalation_level = level + 1
    row.next_escalation_at = next_escalation_at(row.severity, row.escalation_level, now)
    session.add(row)
    session.flush()
    return _record(session, row, event="escalated", ring=True,
                   details={"from": level, "to": row.escalation_level, "reason": "undelivered"}, now=now)
