"""What one user sees on the feed: their patients, and frames rendered for them.

A `feed_event` row is the same for everyone; the frame a user receives adds
the patient's display name (only their own patients reach them) and
`attention`: whether *this* user should act now, i.e. the alert rang, is
still open and has climbed to this user's rung of the ladder (caregiver 0,
volunteer 1, care manager 2, hospital 3).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from chumphae.alert.render import alert_dict
from chumphae.auth.access import sees_all
from chumphae.feed import log as feed_log
from chumphae.ingest.service import position_dict
from chumphae.models import Alert, AlertStatus, CareAssignment, Patient, PositionRecord, Role, User
from chumphae.timeutil import iso_bangkok, utcnow

PROTOCOL = 1
ROLE_LEVEL = {Role.CARE_MANAGER: 2, Role.HOSPITAL: 3, Role.ADMIN: 99}  # admins watch, are never paged


@dataclass(frozen=True)
class Viewer:
    user_id: int
    name: str
    role: str
    patient_ids: tuple[int, ...] | None  # None: the whole district
    unassigned: bool  # also sees alerts with no patient (gateways)
    patients: dict[int, dict[str, Any]]  # id → {"id", "name_th", "name_en"}
    levels: dict[int, int]  # patient id → this user's rung for that patient
    default_level: int


def load_viewer(session: Session, user: User) -> Viewer:
    assert user.id is not None
    district = sees_all(user)
    if district:
        rows = session.exec(select(Patient).where(Patient.active).order_by(col(Patient.id))).all()
        levels: dict[int, int] = {}
    else:
        pairs = session.exec(select(Patient, CareAssignment.relation)
                             .join(CareAssignment, col(CareAssignment.patient_id) == Patient.id)
                             .where(CareAssignment.user_id == user.id).order_by(col(Patient.id))).all()
        rows = [p for p, _ in pairs]
        levels = {p.id: (1 if rel == "volunteer" else 0) for p, rel in pairs}  # type: ignore[misc]
    patients: dict[int, dict[str, Any]] = {
        p.id: {"id": p.id, "name_th": f"{p.prename or ''}{p.name_th}", "name_en": p.name_en}
        for p in rows if p.id is not None}
    return Viewer(user_id=user.id, name=user.name, role=user.role,
                  patient_ids=None if district else tuple(patients), unassigned=district,
                  patients=patients, levels=levels, default_level=ROLE_LEVEL.get(Role(user.role), 99))


def _level(viewer: Viewer, patient_id: int | None) -> int:
    if patient_id is None:  # a gateway's alert: care managers are its first rung
        return 0 if viewer.role == Role.CARE_MANAGER else viewer.default_level
    return viewer.levels.get(patient_id, viewer.default_level)


def _patient(viewer: Viewer, patient_id: int | None) -> dict[str, Any] | None:
    if patient_id is None:
        return None
    return viewer.patients.get(patient_id, {"id": patient_id, "name_th": None, "name_en": None})


def attention(viewer: Viewer, alert: dict[str, Any], ring: bool) -> bool:
    return bool(ring and alert["status"] == AlertStatus.OPEN
                and _level(viewer, alert["patient_id"]) <= alert["escalation_level"])


def render(viewer: Viewer, row: feed_log.FeedRow) -> dict[str, Any]:
    """One feed row as the frame this viewer receives."""
    payload = dict(row.payload)
    if row.kind == "alert":
        alert = {**payload["alert"], "patient": _patient(viewer, row.patient_id)}  # type: ignore[dict-item]
        ring = bool(payload.get("ring"))
        return {"type": "alert", "cursor": row.id, "event": payload.get("event"), "ring": ring,
                "attention": attention(viewer, alert, ring), "alert": alert}
    if row.kind == "position":
        position = {**payload["position"], "patient": _patient(viewer, row.patient_id)}  # type: ignore[dict-item]
        return {"type": "position", "cursor": row.id, "position": position}
    return {"type": row.kind, "cursor": row.id, **payload}


def _visible(query: Any, column: Any, viewer: Viewer) -> Any:
    if viewer.patient_ids is None:
        return query if viewer.unassigned else query.where(column.is_not(None))
    return query.where(column.in_(viewer.patient_ids))


def snapshot(session: Session, viewer: Viewer) -> dict[str, Any]:
    """Open and acknowledged alerts, and each patient's latest position, with the cursor they follow.

    The cursor is read first: anything committed after it arrives again as a
    delta, which carries full state, so applying it twice is harmless.
    """
    cursor = feed_log.latest_cursor(session)
    alerts = session.exec(_visible(select(Alert), col(Alert.patient_id), viewer)
                          .where(Alert.status != AlertStatus.RESOLVED).order_by(col(Alert.id))).all()
    ack_ids = {a.acknowledged_by for a in alerts if a.acknowledged_by}
    names = {u.id: u.name for u in session.exec(select(User).where(col(User.id).in_(ack_ids))).all()} if ack_ids else {}
    newest = _visible(select(PositionRecord.patient_id, func.max(PositionRecord.t).label("t")),
                      col(PositionRecord.patient_id), viewer).where(col(PositionRecord.patient_id).is_not(None)) \
        .group_by(col(PositionRecord.patient_id)).subquery()
    rows = session.exec(select(PositionRecord).join(newest, (col(PositionRecord.patient_id) == newest.c.patient_id)
                                                    & (col(PositionRecord.t) == newest.c.t))
                        .order_by(col(PositionRecord.patient_id), col(PositionRecord.id).desc())).all()
    positions: dict[int, dict[str, Any]] = {}
    for p in rows:
        if p.patient_id is not None and p.patient_id not in positions:
            positions[p.patient_id] = {**position_dict(p), "patient": _patient(viewer, p.patient_id)}
    out_alerts = []
    for a in alerts:
        d = {**alert_dict(a, names=names), "patient": _patient(viewer, a.patient_id)}  # type: ignore[arg-type]
        d["attention"] = attention(viewer, d, ring=True)
        out_alerts.append(d)
    now = utcnow()
    return {"type": "snapshot", "cursor": cursor, "server_time": now.isoformat(),
            "server_time_local": iso_bangkok(now), "patients": list(viewer.patients.values()),
            "alerts": out_alerts, "positions": list(positions.values())}


def welcome(viewer: Viewer, *, resumed_from: int | None) -> dict[str, Any]:
    return {"type": "welcome", "protocol": PROTOCOL, "user": {"id": viewer.user_id, "name": viewer.name,
                                                              "role": viewer.role},
            "resumed_from": resumed_from, "server_time": utcnow().isoformat()}
