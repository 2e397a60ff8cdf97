"""The audit log: who read or changed what. Never put names, CIDs or home points in it."""

from __future__ import annotations

from sqlmodel import Session

from chumphae.models import AuditLog, User


def record(
    session: Session,
    *,
    user: User | None,
    action: str,
    entity: str,
    entity_id: object = None,
    patient_id: int | None = None,
    route: str | None = None,
    detail: dict[str, object] | None = None,
) -> None:
    session.add(
        AuditLog(
            user_id=user.id if user else None,
            action=action,
            entity=entity,
            entity_id=None if entity_id is None else str(entity_id),
            patient_id=patient_id,
            route=route,
            detail=detail or {},
        )
    )
