"""review20a: a batch's heartbeats judge the radio by the last one that says something (hears or deaf).

debt20 made the verdict the last heartbeat's (`heard = hears(beat)`), so a batch holding a heartbeat that hears
followed by one `scanning` with `adverts_per_s: 0` (a healthy radio in a quiet village at night: neither deaf nor
hearing, chumphae/alert/radio.py) left the `gateway_radio` alert open, although the radio was heard and the deaf
run had ended: open until some later batch ends on a heartbeat that hears (at night, hours). Before debt20 it was
resolved; a deaf heartbeat after the hearing one still leaves it open (tests/ingest/test_radio_batch_debt20.py)."""

from __future__ import annotations

from websockets.asyncio.client import connect

from tests.feed.liveserver import LiveServer
from tests.ingest.conftest import Site
from tests.ingest.test_gateway_socket import url
from tests.ingest.test_radio19 import radio_alerts
from tests.ingest.test_radio_batch_debt20 import HEARS, one_batch, radio_dead, radio_server  # noqa: F401

QUIET = {"scanner_state": "scanning", "adverts_per_s": 0.0}  # scanning, nothing in range: never called dead


async def test_a_batch_that_hears_then_is_quiet_resolves_the_gateway_radio_alert(
        radio_server: LiveServer, both_site: Site) -> None:  # noqa: F811
    async with connect(url(radio_server), additional_headers=both_site.auth()) as ws:
        opened = await radio_dead(ws, both_site)
        await one_batch(ws, both_site.world.engine, [HEARS, QUIET])
    alerts = radio_alerts(both_site)
    assert [(a.id, a.status) for a in alerts] == [(opened.id, "resolved")], alerts  # debt20: left open
    assert alerts[0].outcome == "device_fixed"
