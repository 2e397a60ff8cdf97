"""PDPA: a whole scenario at DEBUG for every logger leaves no CID, name, home position or token in the logs.

Patients seeded (names, CIDs, HN, home points); a gateway sending positions
and alerts over its WebSocket; caregivers on the feed (header, query and
first-message sign-in) acknowledging; REST reads by every role; the daily
export; failed sign-ins. Everything any logger emitted is captured twice:
the formatted output of `chumphae.logs.setup` (what an operator sees) and
every raw record reaching the root logger (what any other handler would
get). Personal data may appear in neither; tokens not in the output (a raw
access-log record still carries `?token=` until the handler redacts it).
"""

from __future__ import annotations

import io
import json
import logging
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import Session
from websockets.asyncio.client import connect

from chumphae import logs
from chumphae.alert.escalate import ClockOptions
from chumphae.auth.service import create_gateway
from chumphae.feed.socket import FeedOptions
from chumphae.models import Patient
from tests.conftest import World
from tests.factories import make_band
from tests.feed.liveserver import live_server, recv_json, recv_until

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "security"
BAND = "C0:FF:EE:00:00:01"
HOME = (16.54421, 102.09973)  # the patient's home point, as stored
SEEN = (16.54617, 102.10302)  # where the gateway saw them wander


class Raw(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(f"{record.name}: {record.getMessage()}")
        except Exception:  # noqa: BLE001
            self.lines.append(f"{record.name}: {record.msg!r} {record.args!r}")


@pytest.fixture
def captured() -> Iterator[tuple[io.StringIO, Raw]]:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    out, raw = io.StringIO(), Raw()
    logs.setup("DEBUG", stream=out)
    root.handlers.insert(0, raw)  # before the redacting handler: sees records as libraries made them
    yield out, raw
    root.handlers[:], root.level = saved


def every_logger_at_debug() -> None:
    """uvicorn configures its own loggers (own handlers, no propagation): send them all to the root."""
    for name in list(logging.root.manager.loggerDict):
        lg = logging.getLogger(name)
        lg.setLevel(logging.DEBUG)
        if name.startswith("uvicorn"):
            lg.handlers[:] = []
            lg.propagate = True
    logs.guard_library_loggers()


def frame(type_: str, body: dict[str, Any]) -> str:
    return json.dumps({"id": str(uuid.uuid4()), "type": type_, "t": datetime.now(UTC).isoformat(), "seq": 1,
                       "body": body})


async def scenario(world: World, gateway_token: str, server: Any) -> None:
    http, ws_url = server.http, server.ws
    now = datetime.now(UTC).isoformat()
    place = {"parcel_code": "03I017", "description_th": "ใกล้วัด", "description_en": "near the temple"}
    async with connect(f"{ws_url}/ws/alerts", additional_headers=world.auth("caregiver")) as cg, \
            connect(f"{ws_url}/ws/alerts?token={world.tokens['volunteer']}") as vol, \
            connect(f"{ws_url}/ws/alerts") as cm:
        await cm.send(json.dumps({"type": "auth", "token": world.tokens["care_manager"]}))
        for ws in (cg, vol, cm):
            await recv_json(ws), await recv_json(ws)  # welcome + snapshot (names inside)
        async with connect(f"{ws_url}/api/v1/gateway/ws",
                           additional_headers={"Authorization": f"Bearer {gateway_token}"}) as gw:
            await recv_json(gw)
            await gw.send(frame("hello", {"gateway_version": "0.1.0", "queue_depth": 0}))
            for i in range(3):
                await gw.send(frame("position", {
                    "address": BAND, "patient_id": world.own_patient, "t": now, "lat": HOME[0] + i * 1e-5,
                    "lon": HOME[1], "uncertainty_m": 12.0, "source": "ble", "receivers": 3, "in_coverage": True,
                    "match": {"status": "inside", "zone_version": 1, "place": place}}))
            await gw.send(frame("alert", {
                "type": "wander", "severity": "high", "address": BAND, "patient_id": world.own_patient, "t": now,
                "confidence": 0.9, "lat": SEEN[0], "lon": SEEN[1], "uncertainty_m": 20.0,
                "match": {"status": "outside", "zone_version": 1, "place": place}, "details": {"outside_for_s": 80}}))
            acked = 0
            while acked < 5:
                f = await recv_json(gw)
                if f["type"] == "ack":
                    acked += len(f["ids"])
        alert, _ = await recv_until(cg, lambda f: f["type"] == "alert", timeout=10)
        alert_id = alert["alert"]["id"]
        await cg.send(json.dumps({"type": "ack", "req": "a1", "alert_id": alert_id, "note": "กำลังไปบ้านคุณยาย"}))
        await recv_until(cg, lambda f: f["type"] == "result", timeout=10)
        await cg.send(b"\x00binary")  # a misbehaving client, too
        await recv_until(cg, lambda f: f["type"] == "error")
    async with httpx.AsyncClient(base_url=http) as client:
        for who in ("caregiver", "volunteer", "care_manager", "hospital", "admin"):
            h = world.auth(who)
            for path in ("/api/v1/me", "/api/v1/patients", f"/api/v1/patients/{world.own_patient}",
                         f"/api/v1/patients/{world.own_patient}/status", "/api/v1/mobile/patients",
                         f"/api/v1/patients/{world.own_patient}/positions", "/api/v1/alerts",
                         f"/api/v1/alerts/{alert_id}"):
                await client.get(path, headers=h)
        r = await client.post(f"/api/v1/alerts/{alert_id}/resolve", headers=world.auth("caregiver"),
                              json={"outcome": "patient_safe", "note": "คุณยายปลอดภัยอยู่หน้าบ้าน"})
        assert r.status_code == 200, r.text
        await client.patch(f"/api/v1/patients/{world.own_patient}", headers=world.auth("caregiver"),
                           json={"name_th": "ชื่อที่ห้ามแก้"})  # refused, and the refusal is logged nowhere
        await client.post("/api/v1/patients", headers=world.auth("admin"),
                          json={"name_th": "สมหมาย\x00ทดลอง", "cid": "3409900000055"})
        for fmt in ("csv", "xlsx", "json"):
            r = await client.get(f"/api/v1/reports/daily?date={datetime.now(UTC).date()}&format={fmt}",
                                 headers=world.auth("hospital"))
            assert r.status_code == 200
        await client.get("/api/v1/me", headers={"Authorization": "Bearer chu_guessed_token_123456"})
        await client.get(f"/api/v1/me?token={world.tokens['admin']}")


def secrets_and_personal_data(world: World, gateway_token: str) -> tuple[list[str], list[str]]:
    with Session(world.engine) as s:
        patients = [s.get(Patient, world.own_patient), s.get(Patient, world.other_patient)]
    personal: list[str] = ["สมหมาย", "3409900000055", "กำลังไปบ้านคุณยาย", "คุณยายปลอดภัย"]
    for p in patients:
        assert p is not None
        personal += [v for v in (p.name_th, p.name_en, p.cid, p.hn, p.pid) if v]
    for lat, lon in (HOME, SEEN):
        personal += [f"{lat:.5f}", f"{lon:.5f}", f"{lat:.4f}", f"{lon:.4f}"]
    tokens = [*world.tokens.values(), gateway_token, "chu_guessed_token_123456"]
    return personal, tokens


async def test_a_full_scenario_at_debug_logs_nothing_personal_or_secret(world: World,
                                                                       captured: tuple[io.StringIO, Raw]) -> None:
    out, raw = captured
    with Session(world.engine, expire_on_commit=False) as s:
        for pid, hn in ((world.own_patient, "HN4471"), (world.other_patient, "HN4472")):
            p = s.get(Patient, pid)
            assert p is not None
            p.hn, p.home_lat, p.home_lon = hn, *HOME
            s.add(p)
        make_band(s, patient_id=world.own_patient, address=BAND, site="chumphae")
        _, gateway_token = create_gateway(s, slug="gw-scan", name="สแกน", site="chumphae")
        s.commit()
    with live_server(feed_options=FeedOptions(ping_s=30, poll_s=1), clock_options=ClockOptions(tick_s=0)) as server:
        every_logger_at_debug()
        await scenario(world, gateway_token, server)
    text = out.getvalue()
    personal, tokens = secrets_and_personal_data(world, gateway_token)
    raw_text = "\n".join(raw.lines)
    assert len(raw.lines) > 50, "the scenario logged next to nothing: is DEBUG really on?"
    hits = {needle: text.count(needle) + raw_text.count(needle) for needle in personal}
    hits.update({token: text.count(token) for token in tokens})
    hits["Bearer <token>"] = len(re.findall(r"Bearer (?!<redacted>)\S{8,}", text))
    hits["chu_/chg_ token"] = len(re.findall(r"\bch[ug]_[A-Za-z0-9_\-]{20,}", text))
    found = {k[:24]: v for k, v in hits.items() if v}
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "log-scan.json").write_text(json.dumps({"records": len(raw.lines), "output_lines": text.count("\n"),
                                                        "needles": len(hits), "hits": found}))
    assert found == {}, found
