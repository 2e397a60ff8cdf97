"""Liveness and who-am-I."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel
from sqlalchemy import text

from chumphae import __version__
from chumphae.api.deps import CurrentUser, SessionDep

router = APIRouter()


class Health(BaseModel):
    status: str
    version: str
    database: str


@router.get("/healthz", response_model=Health, tags=["system"])
def healthz(session: SessionDep) -> Health:
    session.exec(text("SELECT 1"))  # type: ignore[call-overload]
    return Health(status="ok", version=__version__, database=session.get_bind().dialect.name)


class Me(BaseModel):
    id: int
    name: str
    role: str
    lang: str


@router.get("/api/v1/me", response_model=Me, tags=["system"])
def me(user: CurrentUser) -> Me:
    assert user.id is not None
    return Me(id=user.id, name=user.name, role=user.role, lang=user.lang)
