"""Gateways in: the site configuration (REST, ETag) and the gateway WebSocket (docs/gateway-protocol.md).

Both take the gateway's own bearer token, never a user's; a gateway learns
and speaks only for the bands of its own site.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import Counter
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response, WebSocket
from fastapi.responses import JSONResponse
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from chumphae.api.deps import (
    SessionDep,
    answers,
    authentication_failed,
    bearer_token,
    check_not_locked_out,
    client_address,
    limiter,
    refuse_socket_if_locked_out,
)
from chumphae.api.schemas import TOKEN_MAX
from chumphae.auth.service import gateway_by_token
from chumphae.auth.tokens import hash_token
from chumphae.db import get_engine
from chumphae.ingest import connection, siteconfig
from chumphae.ingest.service import is_unavailable
from chumphae.models import Gateway

router = APIRouter(prefix="/api/v1/gateway", tags=["gateway"])
log = logging.getLogger(__name__)


@answers(401, 429, bearer=True)
def current_gateway(request: Request, session: SessionDep) -> Gateway:
    check_not_locked_out(request)
    token = bearer_token(request)
    gateway = gateway_by_token(session, token) if token else None
    if gateway is None:
        raise authentication_failed(request)
    return gateway


CurrentGateway = Annotated[Gateway, Depends(current_gateway)]


@router.get("/config", responses={304: {"description": "Not modified (If-None-Match matched)"}})
def site_config(request: Request, session: SessionDep, gateway: CurrentGateway) -> Any:
    """This gateway's site: bands with their keys, receivers, patients (codes only), zones, routes."""
    doc = siteconfig.build(session, gateway)
    tag = siteconfig.etag(doc)
    headers = {"ETag": tag, "Cache-Control": "no-store"}  # holds band keys: never cached on the way
    wanted = [t.strip() for t in request.headers.get("if-none-match", "").split(",")]
    if tag in wanted or f"W/{tag}" in wanted:
        return Response(status_code=304, headers=headers)
    return JSONResponse(doc, headers=headers)


ACCESS_CHECK_S = 2.0  # a revoked or rotated gateway's socket closes within this


def _active_tokens(engine: Engine, ids: list[int]) -> dict[int, str]:
    """Gateway id → token hash, for the active gateways among `ids`."""
    with Session(engine) as session:
        rows = session.exec(select(Gateway.id, Gateway.token_hash)
                            .where(col(Gateway.id).in_(ids), Gateway.active)).all()
    return {i: h for i, h in rows if i is not None and h}


class GatewayAccess:
    """The token check of every gateway socket of this process: one query for all of them at most
    every `every_s / 2` (it was one query per socket every `every_s`: 100 gateways, 50 queries a second).

    A socket's guard asks every `every_s / 2`; the answer is at most `every_s / 2` old, so a revoked or
    rotated token closes its sockets within `every_s` (plus one query), as before."""

    def __init__(self, engine: Engine, every_s: float) -> None:
        self.engine, self.every_s = engine, every_s
        self._open: Counter[int] = Counter()  # gateway id → its sockets open in this process
        self._tokens: dict[int, str] = {}  # the last answer: active gateway id → token hash
        self._asked: set[int] = set()  # the ids that answer was for
        self._asked_at = -math.inf

    @contextlib.contextmanager
    def watching(self, gateway_id: int) -> Iterator[None]:
        self._open[gateway_id] += 1
        try:
            yield
        finally:
            self._open[gateway_id] -= 1
            if self._open[gateway_id] <= 0:
                del self._open[gateway_id]

    async def allowed(self, gateway_id: int, token_hash: str) -> bool:
        now = time.monotonic()
        if now - self._asked_at >= self.every_s / 2 or gateway_id not in self._asked:
            ids = sorted(self._open.keys() | {gateway_id})
            self._asked_at = now  # guards asking while this query runs take the last answer
            self._tokens = await asyncio.to_thread(_active_tokens, self.engine, ids)
            self._asked = set(ids)
        return self._tokens.get(gateway_id) == token_hash


async def _guard(ws: WebSocket, access: GatewayAccess, gateway_id: int, token_hash: str) -> None:
    """Close the socket with 4001 (docs/gateway-protocol.md) once the gateway's token is revoked or rotated."""
    while True:
        await asyncio.sleep(access.every_s / 2)
        try:
            allowed = await access.allowed(gateway_id, token_hash)
        except Exception as exc:  # noqa: BLE001  (the database away: ask again next time; a dead guard would
            # leave this socket open after a later revocation: faults18 saw 15 tracebacks in a 30 s cut)
            if not is_unavailable(exc):
                raise
            log.warning("gateway %d: token check failed (%s), trying again", gateway_id, type(exc).__name__)
            continue
        if not allowed:
            log.info("gateway %d: token revoked or rotated, closing its socket", gateway_id)
            with contextlib.suppress(RuntimeError, OSError):
                await ws.close(code=4001, reason="token revoked")
            return


def _access(state: Any, engine: Engine) -> GatewayAccess:
    """This app's checker (made again when a test changes the engine or the interval)."""
    every_s = getattr(state, "access_check_s", ACCESS_CHECK_S)
    access: GatewayAccess | None = getattr(state, "gateway_access", None)
    if access is None or access.engine is not engine or access.every_s != every_s:
        access = state.gateway_access = GatewayAccess(engine, every_s)
    return access


ALERT_PATH = "/api/v1/gateway/alerts"


@router.websocket("/ws")
async def gateway_socket(ws: WebSocket) -> None:
    """The gateway's main socket (docs/gateway-protocol.md §3)."""
    await _gateway_socket(ws, connection.BULK_LANE)


@router.websocket("/alerts")
async def gateway_alert_socket(ws: WebSocket) -> None:
    """The gateway's alert socket beside its main one (§3.3): the same frames and acks, for its alerts; it does not
    replace the main socket (4008 only for a newer alert socket) and sends no `config_changed`."""
    await _gateway_socket(ws, connection.ALERT_LANE)


def alert_socket(state: Any) -> dict[str, object] | None:
    """Where this backend takes gateways' alert sockets (`chumphae serve --alert-port`), for the `welcome`."""
    port = getattr(state, "alert_port", None)
    return {"port": port, "path": ALERT_PATH} if port else None


async def _gateway_socket(ws: WebSocket, lane: str) -> None:
    token = bearer_token(ws)
    engine = get_engine()
    address, limits = client_address(ws), limiter(ws)
    if await refuse_socket_if_locked_out(ws):
        return
    try:
        with Session(engine) as session:
            gateway = gateway_by_token(session, token) if token and len(token) <= TOKEN_MAX else None
    except Exception as exc:  # noqa: BLE001  (the database away: 503 with Retry-After, not a 500)
        if not is_unavailable(exc):
            raise
        log.warning("gateway socket refused: database unavailable (%s)", type(exc).__name__)
        await ws.send_denial_response(JSONResponse({"code": "unavailable", "status": 503}, status_code=503,
                                                   headers={"Retry-After": "5"}))
        return
    if gateway is None or gateway.id is None or token is None:
        limits.failed(address)
        await ws.send_denial_response(JSONResponse({"code": "unauthorized", "status": 401}, status_code=401,
                                                   headers={"WWW-Authenticate": "Bearer"}))
        return
    state = ws.app.state
    if not hasattr(state, "gateway_sockets"):
        state.gateway_sockets = connection.GatewaySockets()
    access = _access(state, engine)
    with access.watching(gateway.id):
        guard = asyncio.create_task(_guard(ws, access, gateway.id, hash_token(token)))
        try:
            await connection.serve(ws, engine=engine, gateway_id=gateway.id, slug=gateway.slug, site=gateway.site,
                                   sockets=state.gateway_sockets,
                                   options=getattr(state, "ingest_options", connection.IngestOptions()),
                                   lane=lane, alert_socket=alert_socket(state))
        finally:
            guard.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await guard
