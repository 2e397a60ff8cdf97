"""Admins manage gateways' tokens: revoke one, or rotate it (the new token is shown once); and read one's last
heartbeat (`GET /api/v1/gateways/{id}`, debt30)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from chumphae import audit
from chumphae.api.deps import SessionDep, require_roles
from chumphae.api.http import problems
from chumphae.api.problems import Problem
from chumphae.api.schemas import GatewayId
from chumphae.auth.service import ReceiverClash, revoke_gateway, rotate_gateway_token
from chumphae.ingest.service import BACKEND_KEYS, HEARTBEAT_AT
from chumphae.models import Gateway, Role, User
from chumphae.timeutil import iso_bangkok

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


class HeartbeatOut(BaseModel):
    """The gateway's latest heartbeat as the backend stored it (docs/gateway-protocol.md §3.4, §9). A field is null
    when that heartbeat did not carry it (an older gateway) or not as its type."""

    at: str | None = Field(description="When the backend stored this heartbeat: ISO 8601, Asia/Bangkok (+07:00); "
                                       "null for one stored before this field existed.")
    queue_depth: int | None = Field(description="Messages waiting in the gateway's outbox.")
    outbox_replaced: int | None = Field(description="Times this gateway process found its outbox damaged and moved "
                                                    "it aside (§7).")
    last_error: str | None = Field(description="The gateway's last error line, as it sent it.")
    disk_full: bool | None = Field(description="The outbox's disk is full or failing (§4).")
    clock_offset_s: float | None = Field(description="The gateway's clock minus the backend's, seconds (§4).")
    scanner_state: str | None = Field(description="`scanning`, `retrying`, `failed`, `simulated`, `unknown`, … (§8).")


class GatewayRead(GatewayOut):
    last_heard_at: str | None = Field(description="When the backend last heard the gateway (any message; "
                                                  "`gateway_offline` counts from it): ISO 8601, Asia/Bangkok "
                                                  "(+07:00); null if never.")
    heartbeat: HeartbeatOut | None = Field(description="Its latest heartbeat; null if none was ever stored.")


READ_EXAMPLE: dict[str, Any] = {
    "id": 3, "slug": "gw-nong-phai-1", "name": "หนองไผ่ 1", "site": "ban-nong-phai", "token_prefix": "chg_Ab12Cd",
    "active": True, "last_heard_at": "2026-12-03T19:02:41+07:00",
    "heartbeat": {"at": "2026-12-03T19:02:39+07:00", "queue_depth": 0, "outbox_replaced": 1,
                  "last_error": "outbox: outbox file damaged (file is not a database); moved aside to …",
                  "disk_full": False, "clock_offset_s": -0.0, "scanner_state": "scanning"},
}


def _typed(value: object, kind: type) -> Any:
    """`value` if it is of `kind` (a bool is not an int; an int is a float), else None."""
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is int and isinstance(value, bool):
        return None
    return value if isinstance(value, kind) else None


def _heartbeat(g: Gateway) -> HeartbeatOut | None:
    health = g.health if isinstance(g.health, dict) else {}
    beat = {k: v for k, v in health.items() if k not in BACKEND_KEYS}
    if not beat:
        return None
    at = health.get(HEARTBEAT_AT)
    try:
        stored = datetime.fromisoformat(at) if isinstance(at, str) else None
    except ValueError:
        stored = None
    return HeartbeatOut(at=iso_bangkok(stored), queue_depth=_typed(health.get("queue_depth"), int),
                        outbox_replaced=_typed(health.get("outbox_replaced"), int),
                        last_error=_typed(health.get("last_error"), str),
                        disk_full=_typed(health.get("disk_full"), bool),
                        clock_offset_s=_typed(health.get("clock_offset_s"), float),
                        scanner_state=_typed(health.get("scanner_state"), str))


def _out(g: Gateway) -> GatewayOut:
    assert g.id is not None
    return GatewayOut(id=g.id, slug=g.slug, name=g.name, site=g.site, token_prefix=g.token_prefix, active=g.active)


def _target(session: SessionDep, gateway_id: int) -> Gateway:
    gateway = session.get(Gateway, gateway_id)
    if gateway is None:
        raise Problem(404, "not_found")
    return gateway


@router.get("/{gateway_id}", response_model=GatewayRead,
            responses={200: {"content": {"application/json": {"example": READ_EXAMPLE}}}})
def read(gateway_id: GatewayId, session: SessionDep, user: Admin) -> GatewayRead:
    """The gateway, when the backend last heard it, and its latest heartbeat (what a field engineer reads after a
    fault: docs/gateway-protocol.md §9)."""
    gateway = _target(session, gateway_id)
    return GatewayRead(**_out(gateway).model_dump(), last_heard_at=iso_bangkok(gateway.last_heartbeat_at),
                       heartbeat=_heartbeat(gateway))


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
