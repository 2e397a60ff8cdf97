"""radio19: a gateway whose radio is dead must not look alive (docs/gateway-protocol.md §4 "The radio fails").

Before: the backend never read `scanner_state` / `adverts_per_s`; a gateway whose adapter was gone kept its
socket and heartbeats and looked online, and caregivers learnt only from each band's `band_silent`, 30-60 min
later. Now heartbeats saying the scanner cannot scan for `radio_dead_after_s` raise one `gateway_radio` alert
for the gateway (care managers, feed, delivery), resolved when a heartbeat says the radio hears again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bleak.exc import BleakError
from sqlmodel import Session, col, select
from websockets.asyncio.client import ClientConnection, connect

from chumphae.alert.escalate import ClockOptions
from chumphae.ingest.connection import IngestOptions
from chumphae.models import Alert, AlertEvent, Gateway
from chumphae.timeutil import utcnow
from gateway import siteconfig
from gateway.config import GatewaySettings
from gateway.scan import RadioSource, Scanner
from gateway.service import Gateway as GatewayService
from tests.feed.liveserver import LiveServer, live_server, recv_json, recv_until
from tests.gateway.builders import advert
from tests.gateway.fake_backend import wait_for
from tests.gateway.sources import SITE
from tests.ingest.conftest import Site
from tests.ingest.test_gateway_socket import frame, url

DEAD_AFTER_S = 1.0  # CHUMPHAE_RADIO_DEAD_AFTER_S is 180 s; the same rule, shorter


@pytest.fixture
def radio_server(site: Site) -> Iterator[LiveServer]:
    with live_server(ingest_options=IngestOptions(config_check_s=5),
                     clock_options=ClockOptions(tick_s=0.1, radio_dead_after_s=DEAD_AFTER_S)) as srv:
        yield srv


@pytest.fixture
def both_radio_server(both_site: Site) -> Iterator[LiveServer]:
    """The same on a migrated SQLite or PostgreSQL database."""
    with live_server(ingest_options=IngestOptions(config_check_s=5),
                     clock_options=ClockOptions(tick_s=0.1, radio_dead_after_s=DEAD_AFTER_S)) as srv:
        yield srv


class Adapter:
    """The Bluetooth adapter under BlueZ: unplugged (every scan start refused, as BlueZ refuses it) or back."""

    def __init__(self) -> None:
        self.present = False
        self.starts = 0


class _Bleak:
    def __init__(self, adapter: Adapter) -> None:
        self.adapter = adapter

    async def start(self) -> None:
        self.adapter.starts += 1
        if not self.adapter.present:
            raise BleakError("org.bluez.Error.NotReady: Resource Not Ready")

    async def stop(self) -> None:
        return None


class AdapterScanner(Scanner):
    """The shipped scanner (its retries, states, watchdog), over `Adapter` instead of BlueZ."""

    def __init__(self, adapter: Adapter, **kw: Any) -> None:
        super().__init__(None, "rx-a", start_retries=1, retry_delay_s=0.01, **kw)
        self.bluez = adapter

    def _make(self) -> Any:
        return _Bleak(self.bluez)


def radio_alerts(site: Site) -> list[Alert]:
    with Session(site.world.engine) as s:
        return list(s.exec(select(Alert).where(Alert.type == "gateway_radio").order_by(col(Alert.id))).all())


async def snapshot(ws: ClientConnection) -> dict[str, Any]:
    await recv_json(ws)  # hello
    return await recv_json(ws)


async def test_a_gateway_whose_adapter_is_gone_raises_one_gateway_radio_alert_resolved_when_it_hears(
        radio_server: LiveServer, site: Site, tmp_path: Path) -> None:
    """The shipped gateway (its scanner, health and uplink) with its adapter unplugged: its heartbeats say
    `scanner_state` `failed` / `retrying`, connected all along. Exactly one `gateway_radio` alert is stored
    and reaches the care manager's feed, naming the gateway; the adapter plugged in and an advert heard, the
    alert is resolved (device_fixed). Before: nothing at all (the backend never read those fields)."""
    adapter = Adapter()
    scanner = AdapterScanner(adapter, watchdog_s=60)
    settings = GatewaySettings(backend_url=radio_server.http, token=site.token, queue_path=tmp_path / "o.db",
                               config_cache=tmp_path / "c.json", heartbeat_s=0.2, backoff_min_s=0.05,
                               backoff_max_s=0.2, config_poll_s=0)
    gw = GatewayService(settings, siteconfig.parse(SITE), RadioSource(scanner, idle_s=0.2),
                        scanner_health=scanner.health)
    stop = asyncio.Event()
    task = asyncio.create_task(gw.run(stop))
    try:
        async with connect(f"{radio_server.ws}/ws/alerts", additional_headers=site.world.auth("care_manager")) as cm:
            snap = await snapshot(cm)
            assert not [a for a in snap["alerts"] if a["type"] == "gateway_radio"]
            frame_, _ = await recv_until(cm, lambda f: f["type"] == "alert" and f["alert"]["type"] == "gateway_radio",
                                         timeout=20)
            opened = frame_["alert"]
            assert frame_["event"] == "opened" and opened["patient_id"] is None
            assert opened["type_en"] == "Gateway radio down" and opened["type_th"] == "วิทยุของเกตเวย์ไม่ทำงาน"
            assert opened["severity"] == "medium" and opened["escalated_to"] == "care_manager"
            details = opened["details"]
            assert details["gateway"] == "gw-nong-phai-1" and details["site"] == "ban-nong-phai"
            assert details["scanner_state"] in ("failed", "retrying")
            assert "gw-nong-phai-1" in details["summary_th"] and "Bluetooth radio" in details["summary_en"]
            assert "NotReady" in (details["last_error"] or "") or details["last_error"] is None
            await asyncio.sleep(DEAD_AFTER_S + 0.5)  # still dead, still heartbeating: no second alert
            assert [a.status for a in radio_alerts(site)] == ["open"]
            with Session(site.world.engine) as s:
                gw_row = s.get(Gateway, site.gateway_id)
                assert gw_row is not None and gw_row.last_heartbeat_at is not None
                assert (utcnow() - gw_row.last_heartbeat_at).total_seconds() < 2  # it looked online all along

            adapter.present = True  # plugged in again: the scanner's loop starts it within its 5 s check
            await wait_for(lambda: scanner.state == "scanning", timeout=15)
            for _ in range(30):  # something nearby advertises: the radio hears
                scanner.queue.put_nowait(advert(address="AA:BB:CC:00:00:42", receiver="rx-a",
                                                monotonic=time.monotonic(), t=utcnow()))
                await asyncio.sleep(0.02)
            done, _ = await recv_until(cm, lambda f: f["type"] == "alert" and f["alert"]["type"] == "gateway_radio"
                                       and f["event"] == "resolved", timeout=10)
            assert done["alert"]["outcome"] == "device_fixed" and done["alert"]["id"] == opened["id"]
    finally:
        stop.set()
        await task
    alerts = radio_alerts(site)
    assert len(alerts) == 1 and alerts[0].status == "resolved"
    with Session(site.world.engine) as s:
        assert not s.exec(select(Alert).where(Alert.type == "gateway_offline")).all()  # it was never offline


async def beat(ws: ClientConnection, body: dict[str, Any]) -> None:
    """One heartbeat frame (the fields the shipped gateway writes, gateway/service.py `health`), acked."""
    full = {"uptime_s": 3600.5, "adverts_total": 210334, "drops": 0, "queue_depth": 0, "queue_alerts": 0,
            "rejected": 0, "task_restarts_total": 0, "last_error": None, "bands_heard": 0, "simulated": False,
            **body}
    mid, text = frame("heartbeat", full)
    await ws.send(text)
    ack = await recv_json(ws)
    assert ack["type"] == "ack" and ack["ids"] == [mid]


QUIET = {"scanner_state": "scanning", "adverts_per_s": 0.0}  # a healthy radio with nothing in range
SIMULATED = {"scanner_state": "simulated", "adverts_per_s": 0.0, "simulated": True}


@pytest.mark.parametrize("kind", ["quiet radio", "simulated", "blip shorter than the rule", "older gateway"])
async def test_heartbeats_that_do_not_show_a_dead_radio_raise_nothing(radio_server: LiveServer, site: Site,
                                                                      kind: str) -> None:
    """A village at night whose bands are all away (or a site with no band): `scanning`, `adverts_per_s: 0`,
    the watchdog's restarts growing, exactly as a deaf radio that still starts would say: not called dead.
    A simulation (`simulated`), a scanner retrying for less than the rule's span, and a gateway that sends no
    scanner fields: nothing either."""
    async with connect(url(radio_server), additional_headers=site.auth()) as ws:
        await recv_json(ws)  # welcome
        t_end = time.monotonic() + DEAD_AFTER_S * 3
        n = 0
        while time.monotonic() < t_end:
            n += 1
            if kind == "quiet radio":
                body: dict[str, Any] = {**QUIET, "scanner_restarts": n}
            elif kind == "simulated":
                body = SIMULATED
            elif kind == "older gateway":
                body = {"adverts_per_s": 0.0}
            else:  # retrying for half the span, scanning again for a moment, retrying again
                body = {"scanner_state": "retrying" if n % 6 else "scanning", "adverts_per_s": 0.0}
            await beat(ws, body)
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.3)  # a few clock ticks more
    assert radio_alerts(site) == []



async def test_one_alert_per_outage_even_when_resolved_by_hand_while_the_radio_is_still_dead(
        both_radio_server: LiveServer, both_site: Site) -> None:
    """A care manager resolves the alert while the adapter is still gone: not raised again for the same
    outage (the same run of deaf heartbeats); the radio back and dead again is a new outage: a new alert."""
    async with connect(url(both_radio_server), additional_headers=both_site.auth()) as ws:
        await recv_json(ws)  # welcome

        async def deaf_until(count: int) -> None:
            for _ in range(200):
                await beat(ws, {"scanner_state": "failed", "adverts_per_s": 0.0, "scanner_restarts": 0})
                if len(radio_alerts(both_site)) >= count:
                    return
                await asyncio.sleep(0.05)
            raise AssertionError("no gateway_radio alert")

        await deaf_until(1)
        first = radio_alerts(both_site)[0]
        with Session(both_site.world.engine) as s:
            from chumphae.alert import service
            from chumphae.models import User

            cm = s.exec(select(User).where(User.id == both_site.world.users["care_manager"])).one()
            assert first.id is not None
            service.resolve(s, user=cm, alert_id=first.id, outcome="other", note="gone to look")
            s.commit()
        for _ in range(int(DEAD_AFTER_S * 3 / 0.1)):  # still deaf
            await beat(ws, {"scanner_state": "failed", "adverts_per_s": 0.0})
            await asyncio.sleep(0.1)
        assert len(radio_alerts(both_site)) == 1
        await beat(ws, {"scanner_state": "scanning", "adverts_per_s": 3.2})  # hears: the outage ends
        await deaf_until(2)  # dead again: a new outage, a new alert
    alerts = radio_alerts(both_site)
    assert [a.status for a in alerts] == ["resolved", "open"]
    with Session(both_site.world.engine) as s:
        kinds = [e.kind for e in s.exec(select(AlertEvent).where(AlertEvent.alert_id == alerts[1].id)).all()]
    assert kinds == ["opened"]
