"""End to end on a real backend: a gateway's SOS over the WebSocket reaches LINE once; LINE's signed
webhooks link a user and acknowledge the alert; forged ones are refused; the volunteers' API shows the receipts."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from websockets.asyncio.client import connect

from chumphae.alert.escalate import ClockOptions
from chumphae.deliver import linehook
from chumphae.deliver.linehook import new_link_code
from chumphae.ingest.connection import IngestOptions
from chumphae.models import Alert, ContactPoint
from tests.deliver.conftest import Fakes, options
from tests.deliver.fakes import LINE_SECRET, SMS_PASSWORD, line_signature
from tests.feed.liveserver import LiveServer, live_server, recv_json
from tests.ingest.conftest import BAND, Site, site  # noqa: F401  (the fixture)

LINE_USER = "U" + "a" * 32


@pytest.fixture
def backend(app_engine: Engine, site: Site, fakes: Fakes) -> Iterator[LiveServer]:  # noqa: F811
    with live_server(ingest_options=IngestOptions(config_check_s=5), clock_options=ClockOptions(tick_s=0),
                     delivery_settings=fakes.settings(delivery_poll_s=0.05), delivery_options=options(poll_s=0.2),
                     settings=fakes.settings()) as srv:
        yield srv


def signed(body: dict[str, Any], secret: str = LINE_SECRET) -> tuple[bytes, dict[str, str]]:
    raw = json.dumps(body, ensure_ascii=False).encode()
    return raw, {"Content-Type": "application/json", "X-Line-Signature": line_signature(raw, secret)}


def event(kind: str, **kw: Any) -> dict[str, Any]:
    return {"type": kind, "mode": "active", "timestamp": 1733030000000, "webhookEventId": uuid.uuid4().hex,
            "deliveryContext": {"isRedelivery": False}, "source": {"type": "user", "userId": LINE_USER}, **kw}


async def wait_for(pred: Any, what: str, timeout: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not pred():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"waited {timeout} s for {what}")
        await asyncio.sleep(0.05)


async def test_line_link_sos_once_then_ack_from_line(backend: LiveServer, site: Site, fakes: Fakes,  # noqa: F811
                                                     caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    world = site.world
    hook = f"{backend.http}/api/v1/line/webhook"
    with Session(world.engine) as s:
        code = new_link_code(s, user_id=world.users["caregiver"])
        s.commit()
    async with httpx.AsyncClient() as http:
        # forged: another secret, no signature, a signature of another body
        raw, headers = signed({"destination": "x", "events": [event("follow")]}, secret="forged")
        assert (await http.post(hook, content=raw, headers=headers)).status_code == 401
        assert (await http.post(hook, content=raw, headers={"Content-Type": "application/json"})).status_code == 401
        other, other_headers = signed({"events": []})
        assert (await http.post(hook, content=raw, headers=other_headers)).status_code == 401
        # the caregiver adds our LINE account and sends the code
        raw, headers = signed({"destination": "x", "events": [
            event("follow", replyToken="r1"),
            event("message", replyToken="r2", message={"type": "text", "id": "1", "text": code.lower()})]})
        r = await http.post(hook, content=raw, headers=headers)
        assert (r.status_code, r.json()) == (200, {"linked": 1, "acknowledged": 0, "ignored": 0})
        raw, headers = signed({"events": [event("message", message={"type": "text", "id": "2", "text": code})]})
        assert (await http.post(hook, content=raw, headers=headers)).json()["linked"] == 0  # one time only
    # each event with a reply token is answered in LINE, Thai then English; the code is never echoed
    await wait_for(lambda: len(fakes.line.replies) >= 2, "the replies to follow and link")
    assert [(r["replyToken"], r["messages"][0]["text"]) for r in fakes.line.replies[:2]] == [
        ("r1", linehook.REPLY_WELCOME), ("r2", linehook.REPLY_LINKED)]
    assert "เชื่อมบัญชีแล้ว" in fakes.line.replies[1]["messages"][0]["text"]
    with Session(world.engine) as s:
        cp = s.exec(select(ContactPoint).where(ContactPoint.channel == "line")).one()
        assert (cp.user_id, cp.address, cp.active) == (world.users["caregiver"], LINE_USER, True)

    # an SOS from the band, through the gateway's WebSocket
    now = datetime.now(UTC)
    body = {"type": "sos", "severity": "critical", "address": BAND, "t": now.isoformat(), "lat": 16.5461,
            "lon": 102.1030, "uncertainty_m": 25.0,
            "match": {"status": "outside", "zone_version": 3,
                      "place": {"parcel_code": "03I017", "description_th": "120 ม. ทางทิศเหนือของวัดศรีชมภู",
                                "description_en": "120 m north of Wat Si Chomphu"}}}
    mid = str(uuid.uuid4())
    frame = json.dumps({"id": mid, "type": "alert", "t": now.isoformat(), "seq": 1, "body": body})
    async with connect(f"{backend.ws}/api/v1/gateway/ws", additional_headers=site.auth()) as ws:
        await recv_json(ws)
        await ws.send(frame)
        assert mid in (await recv_json(ws))["ids"]
        await ws.send(frame)  # re-sent after a reconnect: stored once, told once
        assert mid in (await recv_json(ws))["ids"]
    await wait_for(lambda: len(fakes.line.accepted) >= 1, "the push to LINE")
    with Session(world.engine) as s:
        alert = s.exec(select(Alert)).one()

    async with httpx.AsyncClient() as http:
        receipts = f"{backend.http}/api/v1/alerts/{alert.id}/deliveries"

        async def line_delivered() -> bool:
            body = (await http.get(receipts, headers=world.auth("caregiver"))).json()
            return any(d["channel"] == "line" and d["delivered"] for d in body["deliveries"])

        deadline = asyncio.get_running_loop().time() + 15
        while not await line_delivered():
            assert asyncio.get_running_loop().time() < deadline, "LINE notice never recorded as delivered"
            await asyncio.sleep(0.05)
        got = (await http.get(receipts, headers=world.auth("volunteer"))).json()
        assert [(d["user_name"], d["channel"], d["status"]) for d in got["deliveries"]] == [
            ("caregiver", "line", "sent"), ("caregiver", "feed", "sent")]
        assert got["summary"]["by_channel"]["line"] == {"total": 1, "delivered": 1, "pending": 0, "failed": 0,
                                                          "cancelled": 0}
        assert (await http.get(receipts, headers=world.auth("volunteer2"))).status_code == 403
        assert "U" + "a" * 32 not in json.dumps(got)  # no LINE ids, phone numbers or URLs

        assert len(fakes.line.hits) == 1 and list(fakes.line.accepted.values()) == [1]  # exactly once
        push = fakes.line.hits[0].body
        assert push["to"] == LINE_USER
        text = push["messages"][0]["text"]
        assert text.startswith("🚨 ด่วน: กดขอความช่วยเหลือ") and "120 ม. ทางทิศเหนือของวัดศรีชมภู" in text
        assert "1409900000011" not in text and f"/#alert={alert.id}" in text
        postback = push["messages"][1]["template"]["actions"][0]["data"]

        # the caregiver taps "รับเรื่อง": LINE posts back, signed
        raw, headers = signed({"events": [event("postback", replyToken="r3", postback={"data": postback})]})
        r = await http.post(hook, content=raw, headers=headers)
        assert r.json() == {"linked": 0, "acknowledged": 1, "ignored": 0}
        await wait_for(lambda: any(x["replyToken"] == "r3" for x in fakes.line.replies), "the reply to the tap")
        assert fakes.line.replies[-1]["messages"][0]["text"] == linehook.REPLY_TAKEN.format(id=alert.id)
        raw, headers = signed({"events": [event("postback", postback={"data": postback},
                                                source={"type": "user", "userId": "U" + "z" * 32})]})
        assert (await http.post(hook, content=raw, headers=headers)).json()["ignored"] == 1  # nobody of ours
    with Session(world.engine) as s:
        alert = s.get(Alert, alert.id)  # type: ignore[assignment]
        assert (alert.status, alert.acknowledged_by) == ("acknowledged", world.users["caregiver"])
    assert len(fakes.line.hits) == 1
    logged = caplog.text
    for secret in (LINE_SECRET, "test-line-token-not-a-secret", SMS_PASSWORD, code, LINE_USER):
        assert secret not in logged
