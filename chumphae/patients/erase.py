"""Erase a patient's personal data (PDPA): who they are, where they live and went; counts stay.

What goes: name, prename, CID, PID, HN, birth date, sex, house, village, home
parcel/building/point, notes, thresholds; every stored position; safe zones
(they draw the home); visit notes; the feed frames that rendered them;
where each alert was seen, its details and resolution note; the message its
notices keep for their retries (`notice.body`); care assignments; the link
to their bands (the bands are retired).
What stays, anonymous: the patient row's id (so counts and foreign keys
hold), ADL score and NHSO group, HOSPCODE; alerts with their type,
severity, times, status and outcome; visits with their time and ADL score;
the audit log (which never held personal data).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from sqlalchemy import delete, update
from sqlmodel import Session, col, select

from chumphae import audit
from chumphae.models import (
    Alert,
    AlertEvent,
    AlertStatus,
    CareAssignment,
    FeedEvent,
    OutboxNotice,
    Patient,
    PositionRecord,
    SafeZone,
    User,
    Visit,
    Wristband,
)
from chumphae.timeutil import utcnow

ERASED_NAME = "-"  # name_th is NOT NULL; the row stays for the counts


@dataclass(frozen=True, slots=True)
class Erased:
    patient_id: int
    positions: int
    alerts: int
    feed_frames: int
    visits: int
    zones: int
    bands: int
    assignments: int


def _count(result: object) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


def erase_patient(session: Session, *, patient: Patient, user: User | None, route: str) -> Erased:
    """Erase in the caller's transaction (commit it); idempotent."""
    pid = patient.id
    assert pid is not None
    now = utcnow()
    positions = _count(session.exec(delete(PositionRecord).where(col(PositionRecord.patient_id) == pid)))
    alert_ids = select_alert_ids(session, pid)
    alerts = _count(session.exec(update(Alert).where(col(Alert.patient_id) == pid).values(
        lat=None, lon=None, uncertainty_m=None, parcel_code=None, building_code=None, description_th=None,
        description_en=None, details={}, resolution_note=None)))
    session.exec(update(Alert).where(col(Alert.patient_id) == pid, col(Alert.status) != AlertStatus.RESOLVED)
                 .values(status=AlertStatus.RESOLVED, outcome="other", resolved_at=now, next_escalation_at=None))
    if alert_ids:
        session.exec(update(AlertEvent).where(col(AlertEvent.alert_id).in_(alert_ids)).values(details={}))
        # every notice of them, not only those with a body: a worker's claim rendering one right now holds its
        # row and this waits for it, then blanks what it kept (with `body IS NOT NULL`, PostgreSQL would judge
        # that row by its committed, still NULL, body and skip it)
        session.exec(update(OutboxNotice).where(col(OutboxNotice.alert_id).in_(alert_ids)).values(body=None))
    feed = _count(session.exec(delete(FeedEvent).where(col(FeedEvent.patient_id) == pid)))
    visits = _count(session.exec(update(Visit).where(col(Visit.patient_id) == pid).values(notes=None)))
    zones = _count(session.exec(delete(SafeZone).where(col(SafeZone.patient_id) == pid)))
    bands = _count(session.exec(update(Wristband).where(col(Wristband.patient_id) == pid)
                                .values(patient_id=None, active=False)))
    assignments = _count(session.exec(delete(CareAssignment).where(col(CareAssignment.patient_id) == pid)))
    for field in ("prename", "name_en", "cid", "sex", "birth_date", "pid", "hn", "house_no", "village",
                  "home_parcel_code", "home_building_code", "home_lat", "home_lon", "notes"):
        setattr(patient, field, None)
    patient.name_th, patient.thresholds, patient.active, patient.updated_at = ERASED_NAME, {}, False, now
    session.add(patient)
    result = Erased(pid, positions, alerts, feed, visits, zones, bands, assignments)
    audit.record(session, user=user, action="erase", entity="patient", entity_id=pid, patient_id=pid,
                 route=route, detail={k: v for k, v in asdict(result).items() if k != "patient_id"})
    session.flush()
    return result


def select_alert_ids(session: Session, patient_id: int) -> list[int]:
    return [i for i in session.exec(select(Alert.id).where(col(Alert.patient_id) == patient_id)).all()
            if i is not None]
