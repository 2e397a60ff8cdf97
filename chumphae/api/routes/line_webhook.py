"""`POST /api/v1/line/webhook`: our LINE account's webhook (signed by LINE, no bearer token).

401 for a missing or wrong `X-Line-Signature` (or no channel secret set),
400 for a body that is not JSON, otherwise 200 with what was done. The work is
`chumphae.deliver.linehook`; acknowledgements reach the feed like the page's.
The replies (one per event with a reply token) go to LINE after the response,
best effort: a reply token lives about a minute and is never retried.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import httpx
from fastapi import APIRouter, BackgroundTasks, Request
from sqlmodel import Session

from chumphae.api.http import problems
from chumphae.api.problems import Problem
from chumphae.config import Settings
from chumphae.db import get_engine
from chumphae.deliver import linehook
from chumphae.deliver.notify import dispatch

router = APIRouter(prefix="/api/v1/line", tags=["delivery"])
log = logging.getLogger(__name__)
REPLY_PATH = "/v2/bot/message/reply"


async def _send_replies(settings: Settings, replies: list[tuple[str, str]]) -> None:
    token = settings.line_channel_access_token
    if token is None or not token.get_secret_value():
        return
    headers = {"Authorization": f"Bearer {token.get_secret_value()}"}
    async with httpx.AsyncClient(timeout=5.0) as client:
        for reply_token, text in replies:
            try:
                r = await client.post(settings.line_api_url.rstrip("/") + REPLY_PATH,
                                      json=linehook.reply_body(reply_token, text), headers=headers)
                if r.status_code >= 300:
                    log.warning("LINE reply refused: HTTP %s", r.status_code)
            except httpx.HTTPError as exc:  # the type only: the request may quote the token
                log.warning("LINE reply failed: %s", type(exc).__name__)


def _apply(body: dict[str, Any]) -> linehook.HookResult:
    engine = get_engine()
    with Session(engine, expire_on_commit=False) as session:
        result = linehook.handle(session, body)
        session.commit()
    dispatch(engine, result.changes)
    return result


@router.post("/webhook", responses=problems(400, 401, 503, about={
    400: "The body is not a JSON object (`bad_request`).", 401: "X-Line-Signature missing or wrong (`unauthorized`)."}))
async def line_webhook(request: Request, tasks: BackgroundTasks) -> dict[str, int]:
    """Follow/unfollow, a text message with a link code, postbacks `ack=<alert id>` / `link=<code>`;
    each event with a reply token is answered in LINE (Thai and English) after the response."""
    settings: Settings = request.app.state.settings
    secret = settings.line_channel_secret
    raw = await request.body()
    if secret is None or not secret.get_secret_value() or \
            not linehook.verify(secret.get_secret_value(), raw, request.headers.get("x-line-signature")):
        raise Problem(401, "unauthorized", "X-Line-Signature missing or wrong")
    try:
        body = json.loads(raw)
    except ValueError:
        raise Problem(400, "bad_request", "body is not JSON") from None
    if not isinstance(body, dict):
        raise Problem(400, "bad_request", "body is not a JSON object")
    result = await asyncio.to_thread(_apply, body)
    if result.replies:
        tasks.add_task(_send_replies, settings, result.replies)
    return {"linked": result.linked, "acknowledged": result.acknowledged, "ignored": result.ignored}
