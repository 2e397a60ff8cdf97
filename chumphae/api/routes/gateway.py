"""Gateways in: the site configuration (REST, ETag) and the gateway WebSocket (docs/gateway-protocol.md).

Both take the gateway's own bearer token, never a user's; a gateway learns
and speaks only for the bands of its own site.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response, WebSocket
from fastapi.responses import JSONResponse
from sqlmodel import Session

from chumphae.api.deps import SessionDep, authentication_failed, bearer_token, check_not_locked_out
from chumphae.api.problems import Problem
from chumphae.auth.service import gateway_by_token
from chumphae.db import get_engine
from chumphae.ingest import connection, siteconfig
from chumphae.models import Gateway

router = APIRouter(prefix="/api/v1/gateway", tags=["gateway"])


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


@router.websocket("/ws")
async def gateway_socket(ws: WebSocket) -> None:
    token = bearer_token(ws)  # type: ignore[arg-type]
    engine = get_engine()
    with Session(engine) as session:
        gateway = gateway_by_token(session, token) if token else None
    if gateway is None or gateway.id is None:
        await ws.send_denial_response(JSONResponse({"code": "unauthorized", "status": 401}, status_code=401,
                                                   headers={"WWW-Authenticate": "Bearer"}))
        return
    state = ws.app.state
    if not hasattr(state, "gateway_sockets"):
        state.gateway_sockets = connection.GatewaySockets()
    await connection.serve(ws, engine=engine, gateway_id=gateway.id, slug=gateway.slug, site=gateway.site,
                           sockets=state.gateway_sockets,
                           options=getattr(state, "ingest_options", connection.IngestOptions()))
