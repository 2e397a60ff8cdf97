"""Home visits by volunteers (อสม.): when, an ADL re-assessment, notes.

A visit with a Barthel score is the newest assessment of the patient, so it
updates `Patient.adl_score` (and with it the dependency group and detector
thresholds), unless a later visit already said otherwise: a visit logged late
from a phone that was offline must not overwrite a newer score.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.sql import ColumnElement
from sqlmodel import Session, col, func, select

from chumphae import audit
from chumphae.models import Patient, User, Visit
from chumphae.timeutil import as_utc, utcnow


def log_visit(session: Session, *, user: User, patient: Patient, t: datetime | None = None,
              adl_score: int | None = None, notes: str | None = None, route: str | None = None) -> Visit:
    """Store a visit; a scored visit newer than every other scored one updates the patient's ADL."""
    assert patient.id is not None and user.id is not None
    when = as_utc(t) if t else utcnow()
    if adl_score is not None:
        newer = session.exec(select(func.count()).select_from(Visit).where(
            Visit.patient_id == patient.id, col(Visit.adl_score).is_not(None), Visit.t > when)).one()
        if not newer:
            patient.adl_score = adl_score
            patient.updated_at = utcnow()
            session.add(patient)
    visit = Visit(patient_id=patient.id, user_id=user.id, t=when, adl_score=adl_score, notes=notes)
    session.add(visit)
    session.flush()
    audit.record(session, user=user, action="create", entity="visit", entity_id=visit.id,
                 patient_id=patient.id, route=route, detail={"adl_scored": adl_score is not None})
    return visit


def list_visits(session: Session, *, patient_id: int, since: datetime | None = None,
                until: datetime | None = None, limit: int = 50, offset: int = 0) -> tuple[list[Visit], int]:
    """Visits of one patient, newest first, and how many match in all (for pagination)."""
    where: list[ColumnElement[bool]] = [col(Visit.patient_id) == patient_id]
    if since is not None:
        where.append(col(Visit.t) >= since)
    if until is not None:
        where.append(col(Visit.t) < until)
    total = session.exec(select(func.count()).select_from(Visit).where(*where)).one()
    rows = session.exec(select(Visit).where(*where).order_by(col(Visit.t).desc(), col(Visit.id).desc())
                        .offset(offset).limit(limit)).all()
    return list(rows), int(total)
