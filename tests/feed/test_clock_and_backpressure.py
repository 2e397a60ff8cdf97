"""The server's clock escalates with no new data; a slow client is resynced, the others are not held back."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlmodel import Session
from websockets.asyncio.client import connect

from chumphae.alert.escalate import ClockOptions
from chumphae.auth.service import create_gateway
from chumphae.deliver import notify
from chumphae.feed import log as feed_log
from chumphae.feed.socket import FeedOptions
from chumphae.timeutil import utcnow
from tests.conftest import World
from tests.feed.conftest import raise_alert
from tests.feed.liveserver import live_server, recv_json, recv_until


class Collect:
    name = "collect"

    def __init__(self) -> None:
        self.notices: list[notify.Notice] = []

    def send(self, notice: notify.Notice) -> None:
        self.notices.append(notice)


@pytest.fixture
def channel() -> Iterator[Collect]:
    c = Collect()
    notify.register(c)
    yield c
    notify.unregister(c)


async def test_escalation_and_gateway_offline_come_from_the_server_clock(world: World, channel: Collect) -> None:
    now = utcnow()
    with Session(world.engine) as s:
        gw, _ = create_gateway(s, slug="gw-silent", name="เงียบ", site="ban-nong-phai")
        gw.last_heartbeat_at = now - timedelta(seconds=89)  # silent for 90 s about a second from now
        s.add(gw)
        s.commit()
    # an SOS nobody acknowledged, whose two minutes at the caregivers end about a second from now
    sos = raise_alert(world.engine, world.own_patient, "sos", t=now, now=now - timedelta(seconds=119))
    with live_server(clock_options=ClockOptions(tick_s=0.2, offline_after_s=90)) as server:
        async with connect(f"{server.ws}/ws/alerts", additional_headers=world.auth("volunteer")) as vol, \
                connect(f"{server.ws}/ws/alerts", additional_headers=world.auth("care_manager")) as cm:
            snaps = {}
            for name, ws in (("vol", vol), ("cm", cm)):
                await recv_json(ws)
                snaps[name] = await recv_json(ws)
            # On a busy machine the clock may tick before a socket's snapshot is read: then the snapshot
            # already shows what the delta would have (the feed sends each change once, either way).
            up = next(({"alert": a, "attention": a.get("attention")} for a in snaps["vol"]["alerts"]
                       if a["id"] == sos.alert_id and a["escalation_level"] == 1), None)
            if up is None:
                up, _ = await recv_until(vol, lambda f: f["type"] == "alert" and f["event"] == "escalated")
            assert up["alert"]["id"] == sos.alert_id and up["alert"]["escalation_level"] == 1
            assert up["attention"] is True and up["alert"]["escalated_to"] == "volunteer"
            off = next(({"alert": a, "attention": a.get("attention")} for a in snaps["cm"]["alerts"]
                        if a["type"] == "gateway_offline"), None)
            if off is None:
                off, _ = await recv_until(cm, lambda f: f["type"] == "alert" and f["alert"]["type"] == "gateway_offline")
            assert off["alert"]["patient_id"] is None and off["alert"]["details"]["gateway"] == "gw-silent"
            assert off["attention"] is True  # care managers look after the hardware
    told = {(n.alert_id, n.event): n for n in channel.notices}
    assert told[(sos.alert_id, "escalated")].user_ids == (world.users["volunteer"],)
    assert told[(off["alert"]["id"], "opened")].user_ids == (world.users["care_manager"],)


def raw_feed(port: int, token: str) -> socket.socket:
    """A client that completes the WebSocket handshake and then reads nothing (a phone in a dead spot)."""
    sock = socket.create_connection(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET /ws/alerts HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                  f"Authorization: Bearer {token}\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def read_frame(sock: socket.socket) -> dict[str, object]:
    """One unmasked server text frame (RFC 6455 §5.2)."""
    def exactly(n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = sock.recv(n - len(buf))
            assert chunk, "closed"
            buf += chunk
        return buf

    while True:
        b0, b1 = exactly(2)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", exactly(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", exactly(8))[0]
        data = exactly(n)
        if b0 & 0x0F == 0x1:
            return json.loads(data)  # type: ignore[no-any-return]
        assert b0 & 0x0F in (0x9, 0xA), f"opcode {b0 & 0x0F}"  # protocol pings: not ours to count


async def test_a_slow_client_is_resynced_while_a_fast_one_gets_everything(world: World) -> None:
    options = FeedOptions(buffer=8, batch=8, stall_s=2.0, poll_s=0.5, ping_s=30, position_linger_s=0)  # 2 s: a loaded machine
    with live_server(feed_options=options, clock_options=ClockOptions(tick_s=0)) as server:
        slow = raw_feed(server.port, world.tokens["caregiver"])
        fast = await connect(f"{server.ws}/ws/alerts", additional_headers=world.auth("caregiver"), max_size=2**24)
        try:
            await recv_json(fast)
            start = (await recv_json(fast))["cursor"]
            pad = "x" * 40_000  # 300 frames x 40 kB: far more than the socket buffers hold
            with Session(world.engine) as s:
                for i in range(300):
                    feed_log.append(s, kind="position", patient_id=world.own_patient,
                                    payload={"position": {"patient_id": world.own_patient, "i": i, "pad": pad}})
                s.commit()
            got = []
            while len(got) < 300:
                frame = await recv_json(fast, timeout=10)
                assert frame["type"] == "position", frame["type"]
                got.append(frame["position"]["i"])  # type: ignore[index]
            assert got == list(range(300))  # all of them, in order, while the slow one lags
            await asyncio.sleep(3.0)  # the slow one has now been stuck for longer than stall_s
            slow.settimeout(10)
            seen = [read_frame(slow)["type"] for _ in range(2)]
            assert seen == ["welcome", "snapshot"]
            while True:
                frame = await asyncio.to_thread(read_frame, slow)
                seen.append(frame["type"])
                if frame["type"] == "resync":
                    assert frame["reason"] == "behind"
                    snap = await asyncio.to_thread(read_frame, slow)
                    assert snap["type"] == "snapshot" and snap["cursor"] >= start + 300  # type: ignore[operator]
                    break
            assert seen.count("position") < 300  # the backlog was dropped, not delivered
        finally:
            slow.close()
            await fast.close()
