"""FastAPI dependencies: the session, the calling user, role and patient checks."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlmodel import Session

from chumphae import audit
from chumphae.api.problems import Problem
from chumphae.auth.access import can_see_patient
from chumphae.auth.service import user_by_token
from chumphae.db import session_scope
from chumphae.models import Patient, Role, User


def get_session() -> Iterator[Session]:
    with session_scope() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def current_user(request: Request, session: SessionDep) -> User:
    token = bearer_token(request)
    user = user_by_token(session, token) if token else None
    if user is None:
        raise Problem(401, "unauthorized")
    request.state.user = user
    return user


CurrentUser = Annotated[User, Depends(current_user)]


def require_roles(*roles: Role) -> Callable[..., User]:
    """A dependency that lets only `roles` through (denials are audited)."""
    allowed = frozenset(roles)

    def check(request: Request, session: SessionDep, user: CurrentUser) -> User:
        if Role(user.role) not in allowed:
            deny(session, user, request, entity="route")
            raise Problem(403, "forbidden")
        return user

    return check


def deny(session: Session, user: User, request: Request, *, entity: str, entity_id: object = None,
         patient_id: int | None = None) -> None:
    """Write the denial to the audit log now, even though the request fails."""
    audit.record(session, user=user, action="denied", entity=entity, entity_id=entity_id,
                 patient_id=patient_id, route=f"{request.method} {request.url.path}")
    session.commit()


def patient_for(session: Session, user: User, request: Request, patient_id: int,
                *, action: str = "read") -> Patient:
    """The patient if `user` may see them, audited either way; else 403 (or 404 if absent)."""
    if not can_see_patient(session, user, patient_id):
        deny(session, user, request, entity="patient", entity_id=patient_id, patient_id=patient_id)
        raise Problem(403, "patient_forbidden")
    patient = session.get(Patient, patient_id)
    if patient is None:
        raise Problem(404, "not_found")
    audit.record(session, user=user, action=action, entity="patient", entity_id=patient_id,
                 patient_id=patient_id, route=f"{request.method} {request.url.path}")
    return patient
