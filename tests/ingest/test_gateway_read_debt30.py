"""An admin reads a gateway's last heartbeat over the API: `GET /api/v1/gateways/{id}` (debt30).

Before, docs/gateway-protocol.md §9 told field engineers to read the `gateway` table with sqlite3. The heartbeat
here goes through the real ingest path (a gateway token on the real WebSocket of a real uvicorn server), as in
tests/ingest; the read is a real HTTP request to the same server.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx
from websockets.asyncio.client import connect

from chumphae.timeutil import utcnow
from tests.feed.liveserver import LiveServer, recv_json
from tests.ingest.conftest import Site
from tests.ingest.test_gateway_socket import frame, position, url

# What the shipped gateway writes after a damaged outbox (§9's drill), and a field the gateway may add.
HEALTH = {"uptime_s": 12.5, "queue_depth": 0, "rejected": 0, "outbox_replaced": 1,
          "last_error": "outbox: outbox file damaged (file is not a database); moved aside to /x",
          "disk_full": False, "clock_offset_s": -0.25, "scanner_state": "unknown", "adverts_per_s": 0.0}


def _read(server: LiveServer, site: Site, gateway_id: int, role: str = "admin") -> httpx.Response:
    return httpx.get(f"{server.http}/api/v1/gateways/{gateway_id}", headers=site.world.auth(role), timeout=30)


def _bangkok(text: str) -> datetime:
    assert text.endswith("+07:00"), text
    return datetime.fromisoformat(text)


async def test_an_admin_reads_the_last_heartbeat_the_gateway_sent(server: LiveServer, site: Site) -> None:
    before = _read(server, site, site.gateway_id)
    assert before.status_code == 200, before.text
    assert before.json()["last_heard_at"] is None and before.json()["heartbeat"] is None  # never heard

    sent_at = utcnow()
    async with connect(url(server), additional_headers=site.auth()) as ws:
        await recv_json(ws)  # welcome
        for type_, body in (("heartbeat", {**HEALTH, "queue_depth": 7}), ("heartbeat", HEALTH),
                            ("position", position(utcnow()))):  # the newest heartbeat wins; a position after it
            mid, text = frame(type_, body)
            await ws.send(text)
            ack = await recv_json(ws)
            assert ack["type"] == "ack" and ack["ids"] == [mid], ack
    answer = _read(server, site, site.gateway_id)
    assert answer.status_code == 200, answer.text
    got: dict[str, Any] = answer.json()
    assert {k: got[k] for k in ("id", "slug", "site", "active")} == {
        "id": site.gateway_id, "slug": "gw-nong-phai-1", "site": "ban-nong-phai", "active": True}
    beat = got["heartbeat"]
    assert {k: v for k, v in beat.items() if k != "at"} == {
        "queue_depth": 0, "outbox_replaced": 1, "last_error": HEALTH["last_error"], "disk_full": False,
        "clock_offset_s": -0.25, "scanner_state": "unknown"}
    at, heard = _bangkok(beat["at"]), _bangkok(got["last_heard_at"])
    assert sent_at - timedelta(seconds=1) <= at <= heard <= utcnow() + timedelta(seconds=1)
    assert "token" not in got and "health" not in got


async def test_only_admins_read_a_gateway_and_an_unknown_one_is_404(server: LiveServer, site: Site) -> None:
    for role in ("care_manager", "caregiver"):
        refused = _read(server, site, site.gateway_id, role)
        assert refused.status_code == 403 and refused.json()["code"] == "forbidden", (role, refused.text)
    missing = _read(server, site, 999_999)
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"
    doc = httpx.get(f"{server.http}/openapi.json", timeout=30).json()
    op = doc["paths"]["/api/v1/gateways/{gateway_id}"]["get"]
    assert {"200", "401", "403", "404"} <= set(op["responses"]) and op["security"] == [{"bearer": []}]
    schema = doc["components"]["schemas"]["GatewayRead"]
    assert {"last_heard_at", "heartbeat"} <= set(schema["required"])
