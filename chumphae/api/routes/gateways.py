"""Admins manage gateways' tokens: revoke one, or rotate it (the new token is shown once)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from chumphae import audit
from chumphae.api.deps import SessionDep, require_roles
from chumphae.api.http import problems
from chumphae.api.problems import Problem
from chumphae.api.schemas import GatewayId
from chumphae.auth.service import ReceiverClash, revoke_gateway, rotate_gateway_token
from chumphae.models import Gateway, Role, User

router = APIRouter(prefix="/api/v1/gateways", tags=["gateways"])

Admin = Annotated[User, Depends(require_roles(Role.ADMIN))]


class GatewayOut(BaseModel):
    id: int
    slug: str
    name: str
    site: str
    token_prefix: str
    active: bool


class GatewayRotated(GatewayOut):
    token: str = Field(description="Shown once; only its hash is kept. Configure it as GATEWAY_TOKEN.")


def _out(g: Gateway) -> GatewayOut:
    assert g.id is not None
    return GatewayOut(id=g.id, slug=g.slug, name=g.name, site=g.site, token_prefix=g.token_prefix, active=g.active)


def _target(session: SessionDep, gateway_id: int) -> Gateway:
    gateway = session.get(Gateway, gateway_id)
    if gateway is None:
        raise Problem(404, "not_found")
    return gateway


@router.post("/{gateway_id}/revoke", response_model=GatewayOut)
def revoke(gateway_id: GatewayId, request: Request, session: SessionDep, user: Admin) -> GatewayOut:
    """The gateway's token stops working now; its open socket is closed with 4001 within seconds."""
    gateway = _target(session, gateway_id)
    revoke_gateway(session, gateway=gateway)
    audit.record(session, user=user, action="revoke", entity="gateway", entity_id=gateway_id,
                 route=f"{request.method} {request.url.path}")
    return _out(gateway)


@router.post("/{gateway_id}/rotate", response_model=GatewayRotated, responses=problems(409, about={
    409: "A revoked gateway's receiver ids are now another active gateway's (`receiver_clash`, with `receivers`: "
         "that gateway's slug → the ids): nothing changed."}))
def rotate(gateway_id: GatewayId, request: Request, session: SessionDep, user: Admin) -> GatewayRotated:
    """A new token (shown once); the old one stops working and its socket is closed with 4001. A revoked gateway
    whose receiver ids are now another active gateway's (its replacement's) is refused: 409, nothing changed."""
    gateway = _target(session, gateway_id)
    try:
        token = rotate_gateway_token(session, gateway=gateway)
    except ReceiverClash as exc:
        raise Problem(409, "receiver_clash", str(exc), receivers=exc.clashes) from None
    audit.record(session, user=user, action="rotate", entity="gateway", entity_id=gateway_id,
                 route=f"{request.method} {request.url.path}")
    return GatewayRotated(**_out(gateway).model_dump(), token=token)
