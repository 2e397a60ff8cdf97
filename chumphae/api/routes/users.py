"""Users and their patients: admins create users (token shown once) and assign patients."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from sqlmodel import col, select

from chumphae import audit
from chumphae.api.deps import SessionDep, require_roles
from chumphae.api.http import problems
from chumphae.api.problems import Problem
from chumphae.api.schemas import Id, Name, UserId
from chumphae.auth.service import assign, create_user, restore_user, revoke_user
from chumphae.models import Patient, Role, User

router = APIRouter(prefix="/api/v1/users", tags=["users"])

Admin = Annotated[User, Depends(require_roles(Role.ADMIN))]
Manager = Annotated[User, Depends(require_roles(Role.CARE_MANAGER, Role.ADMIN))]


class UserIn(BaseModel):
    model_config = {"json_schema_extra": {"examples": [{"name": "อสม. วันดี", "role": "volunteer", "lang": "th"}]}}

    name: Name
    role: Role
    lang: str = Field(default="th", pattern="^(th|en)$")


class UserOut(BaseModel):
    id: int
    name: str
    role: str
    lang: str
    token_prefix: str
    active: bool


class UserCreated(UserOut):
    token: str = Field(description="Shown once; only its hash is kept.")


class AssignmentIn(BaseModel):
    patient_id: Id
    relation: str = Field(default="caregiver", pattern="^(caregiver|volunteer)$")


def _out(u: User) -> UserOut:
    assert u.id is not None
    return UserOut(id=u.id, name=u.name, role=u.role, lang=u.lang, token_prefix=u.token_prefix,
                   active=u.active)


@router.get("", response_model=list[UserOut])
def list_users(session: SessionDep, user: Manager) -> list[UserOut]:
    return [_out(u) for u in session.exec(select(User).order_by(col(User.id))).all()]


@router.post("", response_model=UserCreated, status_code=201)
def add_user(body: UserIn, request: Request, session: SessionDep, user: Admin) -> UserCreated:
    created, token = create_user(session, name=body.name, role=body.role, lang=body.lang)
    audit.record(session, user=user, action="create", entity="user", entity_id=created.id,
                 route=f"{request.method} {request.url.path}")
    return UserCreated(**_out(created).model_dump(), token=token)


def _target(session: SessionDep, user_id: int) -> User:
    target = session.get(User, user_id)
    if target is None:
        raise Problem(404, "not_found")
    return target


@router.post("/{user_id}/revoke", response_model=UserOut)
def revoke(user_id: UserId, request: Request, session: SessionDep, user: Admin) -> UserOut:
    """The user's token stops working now; their open feed sockets close with 4001 within seconds."""
    target = _target(session, user_id)
    revoke_user(session, user=target)
    audit.record(session, user=user, action="revoke", entity="user", entity_id=user_id,
                 route=f"{request.method} {request.url.path}")
    return _out(target)


@router.post("/{user_id}/rotate", response_model=UserCreated)
def rotate(user_id: UserId, request: Request, session: SessionDep, user: Admin) -> UserCreated:
    """A new token (shown once); the old one stops working now. A revoked user is restored by this."""
    target = _target(session, user_id)
    token = restore_user(session, user=target)
    audit.record(session, user=user, action="rotate", entity="user", entity_id=user_id,
                 route=f"{request.method} {request.url.path}")
    return UserCreated(**_out(target).model_dump(), token=token)


@router.post("/{user_id}/patients", status_code=204, responses=problems(409, about={
    409: "Another request assigned the same patient to the user at the same moment (`conflict`)."}))
def assign_patient(user_id: UserId, body: AssignmentIn, request: Request, session: SessionDep,
                   user: Manager) -> None:
    if session.get(User, user_id) is None or session.get(Patient, body.patient_id) is None:
        raise Problem(404, "not_found")
    assign(session, user_id=user_id, patient_id=body.patient_id, relation=body.relation)
    audit.record(session, user=user, action="create", entity="care_assignment",
                 entity_id=f"{user_id}:{body.patient_id}", patient_id=body.patient_id,
                 route=f"{request.method} {request.url.path}")
