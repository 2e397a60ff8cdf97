"""Gateways in: the site configuration (REST, ETag) and the gateway WebSocket (docs/gateway-protocol.md).

Both take the gateway's own bearer token, never a user's; a gateway learns
and speaks only for the bands of its own site.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response, WebSocket
from fastapi.responses import JSONResponse
from sqlalchemy.engine import Engine
from sqlmodel import Session

from chumphae.api.deps import (
    SessionDep,
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
from chumphae.models import Gateway

router = APIRouter(prefix="/api/v1/gateway", tags=["gateway"])
log = logging.getLogger(__name__)


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


def _still_allowed(engine: Engine, gateway_id: int, token_hash: str) -> bool:
    with Session(engine) as session:
        gateway = session.get(Gateway, gateway_id)
        return gateway is not None and gateway.active and gateway.token_hash == token_hash


async def _guard(ws: WebSocket, engine: Engine, gateway_id: int, token_hash: str, every_s: float) -> None:
    """Close the socket with 4001 (docs/gateway-protocol.md) once the gateway's token is revoked or rotated."""
    while True:
        await asyncio.sleep(every_s)
        if not await asyncio.to_thread(_still_allowed, engine, gateway_id, token_hash):
            log.info("gateway %d: token revoked or rotated, closing its socket", gateway_id)
            with contextlib.suppress(RuntimeError, OSError):
                await ws.close(code=4001, reason="token revoked")
            return


@router.websocket("/ws")
async def gateway_socket(ws: WebSocket) -> None:
    token = bearer_token(ws)
    engine = get_engine()
    address, limits = client_address(ws), limiter(ws)
    if await refuse_socket_if_locked_out(ws):
        return
    with Session(engine) as session:
        gateway = gateway_by_token(session, token) if token and len(token) <= TOKEN_MAX else None
    if gateway is None or gateway.id is None or token is None:
        limits.failed(address)
        await ws.send_denial_response(JSONResponse({"code": "unauthorized", "status": 401}, status_code=401,
                                                   headers={"WWW-Authenticate": "Bearer"}))
        return
    state = ws.app.state
    if not hasattr(state, "gateway_sockets"):
        state.gateway_sockets = connection.GatewaySockets()
    guard = asyncio.create_task(_guard(ws, engine, gateway.id, hash_token(token),
                                       getattr(state, "access_check_s", ACCESS_CHECK_S)))
    try:
        await connection.serve(ws, engine=engine, gateway_id=gateway.id, slug=gateway.slug, site=gateway.site,
                               sockets=state.gateway_sockets,
                               options=getattr(state, "ingest_options", connection.IngestOptions()))
    finally:
        guard.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await guard
