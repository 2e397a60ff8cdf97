"""The feed trusts nothing a client sends: every frame gets an answer or a proper close, never a dead socket.

Through a real uvicorn server and plain `websockets` clients.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
from sqlmodel import Session
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from chumphae.alert.escalate import ClockOptions
from chumphae.feed.socket import FeedOptions
from chumphae.models import Alert
from tests.conftest import World
from tests.feed.conftest import raise_alert
from tests.feed.liveserver import LiveServer, live_server, recv_json

BIG = 2**63


@pytest.fixture
def server(world: World) -> Iterator[LiveServer]:
    with live_server(feed_options=FeedOptions(ping_s=30, poll_s=5), clock_options=ClockOptions(tick_s=0)) as srv:
        yield srv


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def errors() -> Iterator[Collect]:
    """ERROR records from our code and from uvicorn (whose loggers do not propagate)."""
    handler = Collect()
    loggers = [logging.getLogger(n) for n in ("", "uvicorn", "uvicorn.error", "chumphae")]
    for lg in loggers:
        lg.addHandler(handler)
    yield handler
    for lg in loggers:
        lg.removeHandler(handler)


async def pong(ws, req: str = "p") -> None:  # type: ignore[no-untyped-def]
    await ws.send(json.dumps({"type": "ping", "req": req}))
    while True:
        frame = await recv_json(ws)
        if frame["type"] == "pong":
            assert frame["req"] == req
            return


async def next_error(ws) -> dict:  # type: ignore[no-untyped-def, type-arg]
    while True:
        frame = await recv_json(ws)
        if frame["type"] == "error":
            return frame  # type: ignore[no-any-return]


async def test_bad_frames_get_error_frames_and_the_socket_goes_on(server: LiveServer, world: World,
                                                                 errors: Collect) -> None:
    alert = raise_alert(world.engine, world.own_patient, "sos")
    async with connect(f"{server.ws}/ws/alerts", additional_headers=world.auth("caregiver")) as ws:
        await recv_json(ws), await recv_json(ws)  # welcome, snapshot
        bad: list[str | bytes] = [
            b"\x00\x01binary", "not json", "[1,2]", json.dumps({"type": "ack", "alert_id": BIG}),
            json.dumps({"type": "ack", "alert_id": 2**70, "req": "r"}), json.dumps({"type": "ack", "alert_id": "x1"}),
            json.dumps({"type": "resolve", "alert_id": alert.alert_id, "outcome": "nonsense"}),
            json.dumps({"type": "ack", "alert_id": alert.alert_id, "note": "x" * 1001}),
            json.dumps({"type": "ack", "alert_id": 1e999}), '{"type": "ack", "alert_id": Infinity}',
            "[" * 10_000, json.dumps({"type": "ping", "req": {"a": 1}}), json.dumps({"type": 7}),
        ]
        for frame in bad:
            await ws.send(frame)
            got = await next_error(ws)
            assert got["code"] == "feed_bad_message", (frame[:40], got)
        await ws.send(json.dumps({"type": "resolve", "req": "big", "alert_id": alert.alert_id,
                                  "outcome": "other", "note": "x" * 3_000_000}))
        assert (await next_error(ws))["code"] == "feed_too_large"
        await pong(ws)
    with Session(world.engine) as s:
        row = s.get(Alert, alert.alert_id)
        assert row is not None and row.status == "open" and row.resolution_note is None
    assert [r.getMessage() for r in errors.records if r.levelno >= logging.ERROR] == []


@pytest.mark.parametrize(("first", "code"), [
    (json.dumps({"type": "auth", "token": 12345}), 4001), (json.dumps({"type": "auth", "token": None}), 4001),
    (json.dumps({"type": "auth", "token": ["chu_x"]}), 4001),
    ('{"type": "auth", "token": "chu_x", "cursor": 1e999}', 4001),
    (json.dumps({"type": "auth", "token": "chu_x", "cursor": BIG}), 4001),
    (json.dumps({"type": "auth", "cursor": -1}), 4001), (json.dumps({"type": "auth", "token": "x" * 500}), 4001),
    ("[" * 50_000, 1008), ("x" * 100_000, 1008), (json.dumps({"type": "ping"}), 1008),
])
async def test_bad_first_messages_close_with_a_code(server: LiveServer, world: World, first: str, code: int,
                                                     errors: Collect) -> None:
    async with connect(f"{server.ws}/ws/alerts", max_size=None) as ws:
        await ws.send(first)
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                frame = await recv_json(ws)
                assert frame["type"] == "error"
        assert closed.value.rcvd is not None and closed.value.rcvd.code == code
    assert [r.getMessage() for r in errors.records if r.levelno >= logging.ERROR] == []


async def test_a_binary_first_message_and_a_valid_token_with_a_huge_query_cursor(server: LiveServer,
                                                                                 world: World) -> None:
    async with connect(f"{server.ws}/ws/alerts") as ws:
        await ws.send(b"\x89PNG")
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await recv_json(ws)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    token = world.tokens["caregiver"]
    for cursor in (str(2**70), "1e999", "-5", "abc"):
        async with connect(f"{server.ws}/ws/alerts?token={token}&cursor={cursor}") as ws:
            assert (await recv_json(ws))["type"] == "welcome"
            assert (await recv_json(ws))["type"] == "snapshot"  # an unknown cursor: a fresh snapshot
    async with connect(f"{server.ws}/ws/alerts") as ws:  # and the auth message with a real token still works
        await ws.send(json.dumps({"type": "auth", "token": token, "cursor": 0}))
        assert (await recv_json(ws))["type"] == "welcome"


async def test_an_ordinary_close_logs_no_error(server: LiveServer, world: World, errors: Collect) -> None:
    for _ in range(3):
        async with connect(f"{server.ws}/ws/alerts", additional_headers=world.auth("caregiver")) as ws:
            await recv_json(ws), await recv_json(ws)
            await pong(ws)
        async with connect(f"{server.ws}/ws/alerts", additional_headers=world.auth("caregiver")) as ws:
            await recv_json(ws)  # leave before the snapshot is read
    ws = await connect(f"{server.ws}/ws/alerts", additional_headers=world.auth("caregiver"))
    await recv_json(ws)
    ws.transport.abort()  # a phone that loses its network: no close frame at all
    async with connect(f"{server.ws}/ws/alerts", additional_headers=world.auth("caregiver")) as ws2:
        await recv_json(ws2), await recv_json(ws2)
        await pong(ws2)  # the server is fine and has had time to notice both ends
    assert [r.getMessage() for r in errors.records if r.levelno >= logging.ERROR] == []
