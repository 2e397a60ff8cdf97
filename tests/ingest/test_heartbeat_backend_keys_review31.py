"""A gateway's heartbeat cannot overwrite the backend's own health keys `backend_rejected` and `hello` (review31).

The backend keeps, beside the gateway's latest heartbeat, its own count of the frames it refused
(`backend_rejected`) and the gateway's last `hello` (docs/gateway-protocol.md §3.4). A heartbeat is kept whole
(any extra field), and its fields were laid over those two: a heartbeat field `backend_rejected: "many"` replaced
the count, and the next refused frame then failed on `int("many")` instead of being answered `bad_body` (and the
text was kept by every later heartbeat). debt30 dropped the gateway's own `backend_heartbeat_at` and §8's radio
keys; these two were not. Real WebSocket, real uvicorn server, real database.
"""

from __future__ import annotations

import json

from sqlmodel import Session
from websockets.asyncio.client import connect

from chumphae.models import Gateway
from chumphae.timeutil import utcnow
from tests.feed.liveserver import LiveServer, recv_json
from tests.ingest.conftest import Site
from tests.ingest.test_gateway_socket import BAND, frame, position, url


async def test_a_heartbeat_field_named_like_the_backends_own_keys_is_dropped(server: LiveServer, site: Site) -> None:
    async with connect(url(server), additional_headers=site.auth()) as ws:
        await recv_json(ws)  # welcome
        mid, text = frame("heartbeat", {"uptime_s": 5.0, "queue_depth": 0, "backend_rejected": "many",
                                        "hello": "spoofed"})
        await ws.send(text)
        assert (await recv_json(ws)) == {"type": "ack", "ids": [mid]}
        await ws.send(json.dumps({"id": "m-bad", "type": "position", "body": {"address": BAND}}))
        f = await recv_json(ws)
        assert (f["type"], f.get("code"), f.get("id")) == ("error", "bad_body", "m-bad"), f
        mid, text = frame("position", position(utcnow()))
        await ws.send(text)  # the connection is still good
        assert (await recv_json(ws)) == {"type": "ack", "ids": [mid]}
    with Session(site.world.engine) as s:
        gw = s.get(Gateway, site.gateway_id)
        assert gw is not None
        assert gw.health["backend_rejected"] == 1  # the backend's count: one refused frame
        assert gw.health.get("hello") != "spoofed" and gw.health["uptime_s"] == 5.0
