"""What a user may see: district roles see every patient, others only their own."""

from __future__ import annotations

from sqlalchemy.sql import ColumnElement
from sqlmodel import Session, col, select

from chumphae.models import DISTRICT_ROLES, CareAssignment, Patient, Role, User


def sees_all(user: User) -> bool:
    return Role(user.role) in DISTRICT_ROLES


def can_see_patient(session: Session, user: User, patient_id: int) -> bool:
    if sees_all(user):
        return True
    return session.get(CareAssignment, (user.id, patient_id)) is not None


def visible_patients_clause(user: User) -> ColumnElement[bool]:
    """A WHERE clause on Patient.id limiting a query to what `user` may see."""
    if sees_all(user):
        return col(Patient.id).is_not(None)
    mine = select(CareAssignment.patient_id).where(CareAssignment.user_id == user.id)
    return col(Patient.id).in_(mine)


def visible_patient_ids(session: Session, user: User) -> list[int]:
    return list(session.exec(select(Patient.id).where(visible_patients_clause(user))).all())  # type: ignore[arg-type]


def caregivers_of(session: Session, patient_id: int) -> list[int]:
    """User ids assigned to a patient (delivery of alerts)."""
    rows = session.exec(select(CareAssignment.user_id).where(CareAssignment.patient_id == patient_id))
    return list(rows.all())
