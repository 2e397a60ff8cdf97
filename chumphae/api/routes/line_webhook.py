"""`POST /api/v1/line/webhook`: our LINE account's webhook (signed by LINE, no bearer token).

401 for a missing or wrong `X-Line-Signature` (or no channel secret set),
400 for a body that is not JSON, otherwise 200 with what was done. The work is
`chumphae.deliver.linehook`; acknowledgements reach the feed like the page's.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from fastapi import APIRouter, Request
from sqlmodel import Session

from chumphae.api.problems import Problem
from chumphae.config import Settings
from chumphae.db import get_engine
from chumphae.deliver import linehook
from chumphae.deliver.notify import dispatch

router = APIRouter(prefix="/api/v1/line", tags=["delivery"])


def _apply(body: dict[str, Any]) -> linehook.HookResult:
    engine = get_engine()
    with Session(engine, expire_on_commit=False) as session:
        result = linehook.handle(session, body)
        session.commit()
    dispatch(engine, result.changes)
    return result


@router.post("/webhook")
async def line_webhook(request: Request) -> dict[str, int]:
    """Follow/unfollow, a text message with a link code, postbacks `ack=<alert id>` / `link=<code>`."""
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
    return {"linked": result.linked, "acknowledged": result.acknowledged, "ignored": result.ignored}
