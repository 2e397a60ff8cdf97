"""debt20: a batch's heartbeats judge the radio by the last of them (docs/gateway-protocol.md §4 "The radio fails").

radio19 resolved a gateway's `gateway_radio` alert when any heartbeat of a batch said the radio hears
(`heard = heard or hears(beat)`), so a batch holding a heartbeat that hears followed by one that is deaf (the
radio back for a moment, then dead again) closed the alert of a radio that was dead when the batch ended.
Through the real gateway socket and database, as tests/ingest/test_radio19.py."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from sqlalchemy.engine import Engine
from websockets.asyncio.client import ClientConnection, connect

from chumphae.alert.escalate import ClockOptions
from chumphae.ingest.connection import IngestOptions
from chumphae.models import Alert
from tests.feed.liveserver import LiveServer, live_server, recv_json
from tests.ingest.conftest import Site
from tests.ingest.test_faults19 import held
from tests.ingest.test_gateway_socket import frame, url
from tests.ingest.test_radio19 import DEAD_AFTER_S, beat, radio_alerts

HEARS = {"scanner_state": "scanning", "adverts_per_s": 3.2}
DEAF = {"scanner_state": "failed", "adverts_per_s": 0.0}


@pytest.fixture
def radio_server(both_site: Site) -> Iterator[LiveServer]:
    """A migrated SQLite or PostgreSQL database; the radio rule 1 s instead of 180 s."""
    with live_server(ingest_options=IngestOptions(config_check_s=5),
                     clock_options=ClockOptions(tick_s=0.1, radio_dead_after_s=DEAD_AFTER_S)) as srv:
        yield srv


def heartbeat(body: dict[str, object]) -> tuple[str, str]:
    return frame("heartbeat", {"uptime_s": 60.0, "adverts_total": 10, "drops": 0, "queue_depth": 0, **body})


async def radio_dead(ws: ClientConnection, site: Site) -> Alert:
    """Deaf heartbeats until the server clock raises the gateway's `gateway_radio` alert."""
    await recv_json(ws)  # welcome
    for _ in range(200):
        await beat(ws, DEAF)
        if radio_alerts(site):
            break
        await asyncio.sleep(0.05)
    opened = radio_alerts(site)
    assert [a.status for a in opened] == ["open"]
    return opened[0]


async def one_batch(ws: ClientConnection, engine: Engine, bodies: list[dict[str, object]]) -> None:
    """The heartbeats `bodies` sent so that they are stored in one batch: the batch before them (one deaf
    heartbeat) is held by a lock while they arrive; both acks checked (the second naming them all)."""
    with held(engine, "gateway"):
        first, text = heartbeat(DEAF)
        await ws.send(text)
        await asyncio.sleep(0.2)
        ids = []
        for body in bodies:
            mid, text = heartbeat(body)
            ids.append(mid)
            await ws.send(text)
        await asyncio.sleep(0.3)
    assert await asyncio.wait_for(recv_json(ws), 30) == {"type": "ack", "ids": [first]}
    assert await asyncio.wait_for(recv_json(ws), 30) == {"type": "ack", "ids": ids}, "not one batch"


async def test_a_batch_that_hears_then_is_deaf_again_leaves_the_gateway_radio_alert_open(
        radio_server: LiveServer, both_site: Site) -> None:
    """One batch: a heartbeat that hears, then one that is deaf. Its verdict is the last heartbeat's: the radio
    is dead, the alert stays open (before: resolved as device_fixed, and a second alert raised a second later
    for the same dead radio)."""
    async with connect(url(radio_server), additional_headers=both_site.auth()) as ws:
        opened = await radio_dead(ws, both_site)
        await one_batch(ws, both_site.world.engine, [HEARS, DEAF])
        assert [(a.id, a.status) for a in radio_alerts(both_site)] == [(opened.id, "open")]  # was: resolved
        for _ in range(int((DEAD_AFTER_S + 0.5) / 0.1)):  # still deaf: still the one alert, open
            await beat(ws, DEAF)
            await asyncio.sleep(0.1)
    assert [(a.id, a.status) for a in radio_alerts(both_site)] == [(opened.id, "open")]


async def test_a_batch_that_is_deaf_then_hears_resolves_it(radio_server: LiveServer, both_site: Site) -> None:
    """The other order in one batch: the last heartbeat hears, so the alert is resolved (as before)."""
    async with connect(url(radio_server), additional_headers=both_site.auth()) as ws:
        await radio_dead(ws, both_site)
        await one_batch(ws, both_site.world.engine, [DEAF, HEARS])
    alerts = radio_alerts(both_site)
    assert [a.status for a in alerts] == ["resolved"] and alerts[0].outcome == "device_fixed"
