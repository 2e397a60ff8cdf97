"""The feed's WebSocket route: `/ws/alerts` (protocol: docs/feed-protocol.md).

A token may come as `Authorization: Bearer`, as `?token=`, or (browsers)
in a first message `{"type": "auth", "token": ..., "cursor": ...}`. A bad
token in the header or query refuses the upgrade with HTTP 401; a bad first
message (a wrong token, one that is not a string, a cursor that is not one)
closes the socket with 4001; 1008 if it is not an `auth` message at all. An address that failed to authenticate too often is refused with HTTP
429 and Retry-After before anything else.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, Literal

from fastapi import APIRouter, WebSocket
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from starlette.websockets import WebSocketDisconnect

from chumphae.api.deps import bearer_token, client_address, limiter, refuse_socket_if_locked_out
from chumphae.api.http import dumps
from chumphae.api.schemas import FEED_MESSAGE_MAX, MAX_CURSOR, TOKEN_MAX, FeedAuth, ascii_int
from chumphae.auth.tokens import hash_token
from chumphae.db import get_engine
from chumphae.feed.socket import (
    FeedOptions,
    FeedSocket,
    authenticate,
    error_frame,
    receive_text_frame,
)

router = APIRouter(tags=["feed"])


def _cursor(value: str | None) -> int | None:
    """A cursor from the query string; anything that is not one we could have issued counts as none.

    ASCII digits only, as every query integer (`schemas.ascii_int`): `isdigit()` had taken `٣` as 3 and `²`
    (a digit to `isdigit`, not to `int`) had ended the upgrade in a ValueError (fix18).
    """
    cursor = ascii_int(value)
    return cursor if cursor is not None and 0 <= cursor <= MAX_CURSOR else None


async def _close(ws: WebSocket, code: int, reason: str, frame: dict[str, Any] | None = None) -> None:
    with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
        if frame is not None:
            await ws.send_text(dumps(frame))
        await ws.close(code=code, reason=reason)


async def _first_message(ws: WebSocket, timeout_s: float) -> FeedAuth | None | str:
    """The `auth` message; None if absent or not one; 'bad' if it is not even an auth-shaped message."""
    try:
        async with asyncio.timeout(timeout_s):  # not wait_for: it can swallow a cancellation (3.11)
            text = await receive_text_frame(ws)
    except (TimeoutError, WebSocketDisconnect):
        return None
    if text is None or len(text) > FEED_MESSAGE_MAX:
        return "bad"
    try:
        return FeedAuth.model_validate_json(text)
    except ValidationError:
        pass
    try:  # an auth message with a token or cursor we cannot take: authentication failed (4001), not a retry
        _AuthShaped.model_validate_json(text)
        return None
    except ValidationError:
        return "bad"


class _AuthShaped(BaseModel):
    type: Literal["auth"]


@router.websocket("/ws/alerts")
async def alert_feed(ws: WebSocket) -> None:
    engine = get_engine()
    hub = getattr(ws.app.state, "feed_hub", None)
    options = getattr(ws.app.state, "feed_options", FeedOptions())
    token = bearer_token(ws) or ws.query_params.get("token")
    cursor = _cursor(ws.query_params.get("cursor"))
    if hub is None:  # the app started without its background tasks
        await ws.send_denial_response(JSONResponse({"code": "unavailable", "status": 503}, status_code=503))
        return
    address, limits = client_address(ws), limiter(ws)
    if await refuse_socket_if_locked_out(ws):
        return
    if token:
        user_id = await asyncio.to_thread(authenticate, engine, token) if len(token) <= TOKEN_MAX else None
        if user_id is None:
            limits.failed(address)
            await ws.send_denial_response(JSONResponse({"code": "unauthorized", "status": 401}, status_code=401,
                                                       headers={"WWW-Authenticate": "Bearer"}))
            return
        await ws.accept()
    else:
        await ws.accept()
        first = await _first_message(ws, options.auth_timeout_s)
        if first == "bad":
            limits.failed(address)
            await _close(ws, 1008, "expected an auth message", error_frame("feed_bad_message"))
            return
        user_id = None
        if isinstance(first, FeedAuth):
            token = first.token
            user_id = await asyncio.to_thread(authenticate, engine, token)
            if first.cursor is not None:
                cursor = first.cursor
        if user_id is None:
            limits.failed(address)
            await _close(ws, 4001, "authentication required", error_frame("unauthorized"))
            return
    assert token is not None
    try:
        await FeedSocket(ws, engine=engine, hub=hub, options=options, user_id=user_id,
                         token_hash=hash_token(token)).run(cursor)
    except (WebSocketDisconnect, OSError):
        pass  # the client went away: an ordinary end, nothing to log
