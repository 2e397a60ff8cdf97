"""The feed's WebSocket route: `/ws/alerts` (protocol: docs/feed-protocol.md).

A token may come as `Authorization: Bearer`, as `?token=`, or (browsers)
in a first message `{"type": "auth", "token": ..., "cursor": ...}`. A bad
token in the header or query refuses the upgrade with HTTP 401; a bad first
message closes the socket with 4001.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from fastapi import APIRouter, WebSocket
from fastapi.responses import JSONResponse
from starlette.websockets import WebSocketDisconnect

from chumphae.api.deps import bearer_token
from chumphae.db import get_engine
from chumphae.feed.socket import FeedOptions, FeedSocket, authenticate, error_frame

router = APIRouter(tags=["feed"])


def _cursor(value: Any) -> int | None:
    try:
        return None if value is None or value == "" else max(0, int(value))
    except (TypeError, ValueError):
        return None


@router.websocket("/ws/alerts")
async def alert_feed(ws: WebSocket) -> None:
    engine = get_engine()
    hub = getattr(ws.app.state, "feed_hub", None)
    options = getattr(ws.app.state, "feed_options", FeedOptions())
    token = bearer_token(ws) or ws.query_params.get("token")  # type: ignore[arg-type]
    cursor = _cursor(ws.query_params.get("cursor"))
    if hub is None:  # the app started without its background tasks
        await ws.send_denial_response(JSONResponse({"code": "server_error", "status": 503}, status_code=503))
        return
    if token:
        user_id = await asyncio.to_thread(authenticate, engine, token)
        if user_id is None:
            await ws.send_denial_response(JSONResponse({"code": "unauthorized", "status": 401}, status_code=401,
                                                       headers={"WWW-Authenticate": "Bearer"}))
            return
        await ws.accept()
    else:
        await ws.accept()
        try:
            first = json.loads(await asyncio.wait_for(ws.receive_text(), options.auth_timeout_s))
        except (TimeoutError, ValueError, WebSocketDisconnect):
            first = None
        user_id = None
        if isinstance(first, dict) and first.get("type") == "auth":
            user_id = await asyncio.to_thread(authenticate, engine, first.get("token"))
            cursor = _cursor(first.get("cursor")) if first.get("cursor") is not None else cursor
        if user_id is None:
            try:
                await ws.send_text(json.dumps(error_frame("unauthorized"), ensure_ascii=False))
                await ws.close(code=4001, reason="authentication required")
            except (WebSocketDisconnect, RuntimeError):
                pass
            return
    try:
        await FeedSocket(ws, engine=engine, hub=hub, options=options, user_id=user_id).run(cursor)
    except WebSocketDisconnect:
        pass
