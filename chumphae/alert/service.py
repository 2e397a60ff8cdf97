"""The alert state machine: raise (or re-trigger), acknowledge, resolve, escalate.

Every change writes its `alert_event` history row and its `feed_event` row in
the caller's transaction, so what the feed shows is exactly what was
committed. Functions are keyword-only and take a session; the caller commits
and then hands the returned `AlertChange`s to delivery (`chumphae.deliver`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import Enum
from typing import Any

import orjson
from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.util import identity_key
from sqlmodel import Session, col, select

from chumphae import audit
from chumphae.alert import late
from chumphae.alert.render import alert_dict
from chumphae.alert.severity import MAX_LEVEL, next_escalation_at, past_empty, severity_for
from chumphae.auth.access import can_see_patient, sees_all
from chumphae.deliver import notify, outbox
from chumphae.errors import Forbidden, NotFound
from chumphae.feed import log as feed_log
from chumphae.models import Alert, AlertEvent, AlertStatus, ChannelName, Outcome, User
from chumphae.timeutil import as_utc, utcnow
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


@dataclass(slots=True)
class AlertChange:
    """What happened, for delivery after commit.

    `cursor`: its feed row's id; on PostgreSQL a raise or re-trigger knows it once its statement has run
    (at the commit, `_raise_pg`), until then it is None.
    """

    alert_id: int
    patient_id: int | None
    type: str
    severity: str
    event: str  # opened | retriggered | acknowledged | escalated | resolved | late_history
    ring: bool
    level: int
    cursor: int | None
    told: tuple[int, ...] | None = None  # the people of the rungs told, as read in the change (None: not read)


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
    """Open a new alert, or re-trigger the unresolved one of the same patient and type.

    On PostgreSQL in two round trips (`_raise_pg`): the reads, then one statement sent with the commit.
    """
    now = now or utcnow()
    if session.get_bind().dialect.name == "postgresql":
        return _raise_pg(session, alert, now)
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
        level, skipped = _first_rung(session, alert.patient_id)
        row = _new(alert, severity=severity, late_=verdict.late, now=now, level=level)
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
                           details=_opened_details(verdict.late, alert.confidence, skipped), now=now)
    return _retrigger(session, existing, alert, ring=verdict.ring, late_=verdict.late, now=now)


def _first_rung(session: Session, patient_id: int | None) -> tuple[int, list[int]]:
    """A new alert's rung: a patient's, the lowest with someone (the rungs of nobody below it); a gateway's, 0."""
    if patient_id is None:
        return 0, []
    return past_empty(0, notify.rungs_with_people(session, patient_id))


def _with_skipped(details: dict[str, object], skipped: list[int]) -> dict[str, object]:
    """A history row's details with `skipped` (the rungs of nobody passed over) only when there were any."""
    return {**details, "skipped": skipped} if skipped else details


def _opened_details(late_: bool, confidence: float, skipped: list[int]) -> dict[str, object]:
    """The `opened` history row's details: `skipped` only when it opened above a rung of nobody."""
    return _with_skipped({"late": late_, "confidence": confidence}, skipped)


def _new(a: AlertInput, *, severity: str, late_: bool, now: datetime, level: int = 0) -> Alert:
    return Alert(
        patient_id=a.patient_id, gateway_id=a.gateway_id, band_id=a.band_id, type=a.type,
        severity=severity, status=AlertStatus.OPEN, opened_at=a.t, received_at=now,
        last_triggered_at=a.t, count=1, late=late_, escalation_level=level,
        next_escalation_at=next_escalation_at(severity, level, now), lat=a.lat, lon=a.lon,
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
        filled = _filled(session, row)
        skipped: list[int] = []
        while due is not None and due <= now:  # a server that was down catches up in one step
            # a rung of nobody is passed over at once: the next delay counts from the rung reached, at `due`
            row.escalation_level, passed = past_empty(row.escalation_level + 1, filled)
            skipped += passed
            due = next_escalation_at(row.severity, row.escalation_level, due)
        row.next_escalation_at = due
        session.add(row)
        session.flush()
        details = _with_skipped({"from": before, "to": row.escalation_level}, skipped)
        changes.append(_record(session, row, event="escalated", ring=True, details=details, now=now))
    return changes


def _filled(session: Session, row: Alert) -> set[int]:
    """The rungs with someone on a patient alert's ladder; a gateway's alert: every rung (none is passed over)."""
    if row.patient_id is None:
        return set(range(MAX_LEVEL + 1))
    return notify.rungs_with_people(session, row.patient_id)


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
    row.escalation_level, skipped = past_empty(level + 1, _filled(session, row))
    row.next_escalation_at = next_escalation_at(row.severity, row.escalation_level, now)
    session.add(row)
    session.flush()
    details = _with_skipped({"from": level, "to": row.escalation_level, "reason": "undelivered"}, skipped)
    return _record(session, row, event="escalated", ring=True, details=details, now=now)


# ---- PostgreSQL: raise or re-trigger in two round trips ----------------------------------------------------------
#
# 1. One pipeline of reads, after the transaction's claim of the message id: the alert key's advisory lock (two
#    raises of one patient and type, in any processes, take turns: one alert per open episode, no lost count),
#    the unresolved alert locked `FOR UPDATE` (an acknowledge or resolve waits for this change, and this change
#    for it), the last resolution, every rung's people with their contact points and preferences, the recent
#    pushes of a re-trigger, and a new alert's id. Each is its own statement: each sees what committed before
#    the lock was granted.
# 2. One statement (`_WRITE_PG_SQL`): the alert (insert or update), its history row, its push notices, then the
#    feed writers' lock, the feed row and the feed notices (provider id `feed:<cursor>`), kept on the session
#    (`feed.log.defer`) and sent in the commit's pipeline by the ingest path: the feed lock is held for the
#    server's time only. A plain `session.commit()` sends it before the COMMIT (one round trip more).

ALERT_LOCK_CLASS = 4005  # pg_advisory_xact_lock(4005, hashtext(key)): one alert key at a time (two-int key space)
_COLUMNS = tuple(c.name for c in Alert.__table__.columns)  # type: ignore[attr-defined]
_TIMES = frozenset({"opened_at", "received_at", "last_triggered_at", "acknowledged_at", "resolved_at",
                    "next_escalation_at"})


def _key_sql(a: AlertInput) -> tuple[str, tuple[object, ...], str]:
    """The alert key's WHERE clause, its parameters, and its lock name."""
    if a.patient_id is not None:
        return "patient_id = %s AND type = %s", (a.patient_id, a.type), f"p{a.patient_id}:{a.type}"
    return ("patient_id IS NULL AND gateway_id IS NOT DISTINCT FROM %s AND type = %s", (a.gateway_id, a.type),
            f"g{a.gateway_id}:{a.type}")


def _raise_pg(session: Session, a: AlertInput, now: datetime) -> AlertChange:
    session.flush()  # the session's own changes first (a pending alert row must be seen by the reads)
    feed_log.send_deferred(session)  # and an earlier change of this transaction (the same key twice in a batch)
    severity = severity_for(a.type)
    where, key, lock_name = _key_sql(a)
    since = now - outbox.push_window(severity)
    driver = session.connection().connection.driver_connection
    assert driver is not None
    with driver.cursor() as c_open, driver.cursor() as c_last, driver.cursor() as c_told, \
            driver.cursor() as c_recent, driver.cursor() as c_id:
        with driver.pipeline():
            driver.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (ALERT_LOCK_CLASS, lock_name))
            c_open.execute(f"SELECT {', '.join(_COLUMNS)}, (SELECT name FROM app_user WHERE id = acknowledged_by) "
                           f"FROM alert WHERE {where} AND status <> 'resolved' LIMIT 1 FOR UPDATE", key)
            c_last.execute(f"SELECT max(resolved_at) FROM alert WHERE {where} AND status = 'resolved'", key)
            c_told.execute(outbox.TOLD_ALL_PG_SQL, (a.patient_id, a.patient_id))
            c_recent.execute(f"SELECT n.user_id, n.channel FROM notice n WHERE n.alert_id = (SELECT id FROM alert "
                             f"WHERE {where} AND status <> 'resolved' LIMIT 1) AND n.channel <> 'feed' "
                             "AND n.created_at > %s", (*key, since))
            c_id.execute("SELECT nextval(pg_get_serial_sequence('alert', 'id'))")
        found = c_open.fetchone()
        last_resolved = c_last.fetchone()
        told_rows = c_told.fetchall()
        recent = {(uid, ch) for uid, ch in c_recent.fetchall()}
        id_row = c_id.fetchone()
    existing = _alert_from_row(found[:-1]) if found is not None else None
    names = {existing.acknowledged_by: found[-1]} if existing and existing.acknowledged_by is not None else {}
    verdict = late.judge(t=a.t, received_at=now, existing_status=existing.status if existing else None,
                         last_resolved_at=as_utc(last_resolved[0]) if last_resolved and last_resolved[0] else None,
                         critical=severity == Severity.CRITICAL)
    if verdict.belongs_to_resolved:
        return _late_history(session, a)
    details: dict[str, object]
    if existing is None:
        assert id_row is not None
        # the lowest rung with someone, from the rungs' people already read (no round trip more)
        level, skipped = past_empty(0, {r[1] for r in told_rows}) if a.patient_id is not None else (0, [])
        row = _new(a, severity=severity, late_=verdict.late, now=now, level=level)
        row.id = int(id_row[0])
        event, details = "opened", _opened_details(verdict.late, a.confidence, skipped)  # as `raise_alert`'s
        write = _INSERT_ALERT_PG_SQL, tuple(_param(c, getattr(row, c)) for c in _COLUMNS)
    else:
        row = existing
        _apply_retrigger(row, a)
        event, details = "retriggered", {"late": verdict.late, "t": a.t.isoformat(), "count": row.count}
        write = _UPDATE_ALERT_PG_SQL, (*(_param(c, getattr(row, c)) for c in _RETRIGGERED), row.id)
    assert row.id is not None
    change = AlertChange(alert_id=row.id, patient_id=row.patient_id, type=row.type, severity=row.severity,
                         event=event, ring=verdict.ring, level=row.escalation_level, cursor=None)
    notices: list[Any] = []
    if change.ring:  # the listeners' list after commit (`notify.notices`), without reading it again
        change.told = tuple(u for lv in notify.levels_told(change)
                            for u in sorted({r[0] for r in told_rows if r[1] == lv}))
    if outbox.rings(change):
        told = outbox.reach(told_rows, set(notify.levels_told(change)))
        notices = outbox.plan_notices(change, told, lambda: recent, now=now)
    pushes: list[dict[str, object]] = [{"key": n.key, "level": n.level, "user_id": n.user_id, "channel": n.channel}
              for n in notices if n.channel != ChannelName.FEED]
    feeds: list[dict[str, object]] = [{"key": n.key, "level": n.level, "user_id": n.user_id} for n in notices if n.channel == ChannelName.FEED]
    if pushes:
        outbox.mark_pushes(session)
    payload = {"event": event, "ring": verdict.ring, "alert": alert_dict(row, names=names)}  # unresolved: no resolver
    sql = _WRITE_PG_SQL.format(write=write[0])
    written_at = utcnow()  # the history and feed rows' time, as `_record` gives them
    params = (*write[1], written_at, event, _json(details),  # the history row
              event, now, now, _json(pushes),  # push notices
              feed_log.PG_LOCK_KEY, feed_log.PG_CHANNEL, written_at, row.patient_id, _json(payload),  # the feed row
              event, now, now, now, _json(feeds))  # feed notices

    def written(rows: list[tuple[Any, ...]]) -> None:
        change.cursor = int(rows[0][0])
        held = session.identity_map.get(identity_key(Alert, row.id))
        if held is not None:  # the session's copy (if it has one) is older than what was written
            session.expire(held)

    feed_log.defer(session, (sql, params), written)
    return change


def _alert_from_row(values: tuple[Any, ...]) -> Alert:
    fields: dict[str, Any] = {c: (as_utc(v) if c in _TIMES and v is not None else v)
                              for c, v in zip(_COLUMNS, values, strict=True)}
    return Alert(**fields)


def _apply_retrigger(row: Alert, a: AlertInput) -> None:
    """A re-trigger's changes to the unresolved alert (the same as `_retrigger`'s)."""
    row.count += 1
    if a.t < row.opened_at:
        row.opened_at = a.t
    if a.t >= row.last_triggered_at:
        row.last_triggered_at = a.t
        if a.lat is not None and a.lon is not None:
            row.lat, row.lon, row.uncertainty_m = a.lat, a.lon, a.uncertainty_m
            row.parcel_code, row.building_code = a.parcel_code, a.building_code
            row.description_th, row.description_en = a.description_th, a.description_en
            row.zone_version = a.zone_version
        row.details = {**(row.details or {}), **a.details}


def _param(column: str, value: Any) -> Any:
    if column == "details":
        return _json(value)
    return value.value if isinstance(value, Enum) else value  # the driver is handed plain values


def _json(value: object) -> str:
    return orjson.dumps(value, option=orjson.OPT_NAIVE_UTC).decode()


_RETRIGGERED = ("count", "opened_at", "last_triggered_at", "lat", "lon", "uncertainty_m", "parcel_code",
                "building_code", "description_th", "description_en", "zone_version", "details")
_INSERT_ALERT_PG_SQL = (f"INSERT INTO alert ({', '.join(_COLUMNS)}) VALUES ("
                        + ", ".join("%s::json" if c == "details" else "%s" for c in _COLUMNS) + ") RETURNING id")
_UPDATE_ALERT_PG_SQL = ("UPDATE alert SET " + ", ".join(f"{c} = %s::json" if c == "details" else f"{c} = %s"
                                                         for c in _RETRIGGERED) + " WHERE id = %s RETURNING id")
# {write}: the alert's insert or update. The feed lock is taken after it (`locked` reads `a`); the feed row's id
# is drawn under the lock (cursor order is commit order). Returns the feed row's id.
_NOTICE_COLUMNS = "key, alert_id, event, level, user_id, channel, status, attempts"
_WRITE_PG_SQL = (
    "WITH a AS ({write}), "
    "h AS (INSERT INTO alert_event (alert_id, t, kind, user_id, details) SELECT a.id, %s, %s, NULL, %s::json FROM a), "
    f"n AS (INSERT INTO notice ({_NOTICE_COLUMNS}, created_at, next_try_at) "
    "SELECT r.key, a.id, %s, r.level, r.user_id, r.channel, 'queued', 0, %s, %s "
    "FROM a, json_to_recordset(%s::json) AS r(key text, level int, user_id int, channel text)), "
    f"locked AS (SELECT pg_advisory_xact_lock(%s), pg_notify(%s, '{feed_log.ALERT_PAYLOAD}') "  # wakes the alert lane
    "FROM (SELECT count(*) FROM a) AS c), "
    "f AS (INSERT INTO feed_event (t, kind, patient_id, payload) SELECT %s, 'alert', %s, %s::json FROM locked "
    "RETURNING id), "
    f"fn AS (INSERT INTO notice ({_NOTICE_COLUMNS}, provider_message_id, created_at, next_try_at, done_at) "
    "SELECT r.key, a.id, %s, r.level, r.user_id, 'feed', 'sent', 0, 'feed:' || f.id, %s, %s, %s "
    "FROM a, f, json_to_recordset(%s::json) AS r(key text, level int, user_id int)) "
    "SELECT id FROM f")
