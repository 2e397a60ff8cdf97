"""The band replay guard across gateway restarts: counters stored in the outbox database, restored
conservatively (a margin above the stored counter covers what a crash lost), kept across config changes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from chumphae.values import Advert
from gateway import siteconfig
from gateway.config import GatewaySettings
from gateway.decode import ReplayError
from gateway.decode import chumphae_band as band
from gateway.service import Gateway
from gateway.siteconfig import SiteConfig
from tests.gateway.builders import T0, advert

ADDR = "C0:FF:EE:00:00:01"
KEY = bytes.fromhex("00112233445566778899aabbccddeeff")
SITE = {
    "site_id": "s1", "gateway_id": "gw1", "version": 1,
    "receivers": [{"id": "rx-a", "lat": 16.5442, "lon": 102.0997}],
    "bands": [{"address": ADDR, "key_hex": KEY.hex(), "patient_id": 1}],
    "patients": [{"id": 1}],
}


def frame(seq: int, t: float, **flags: bool) -> Advert:
    payload = band.encode(ADDR, KEY, band.BandState(seq=seq, **flags))
    return advert(address=ADDR, t=T0 + timedelta(seconds=t), monotonic=t, manufacturer_data={0xFFFF: payload})


class ListSource:
    """Adverts at their monotonic times, a None after each (time passed: the gateway ticks)."""

    def __init__(self, adverts: Iterable[Advert]) -> None:
        self.adverts = list(adverts)
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    def wall(self) -> datetime:
        return T0 + timedelta(seconds=self.now)

    async def __aiter__(self) -> AsyncIterator[Advert | None]:
        for a in self.adverts:
            self.now = a.monotonic
            yield a
            self.now = a.monotonic + 1.0
            yield None


def settings(tmp_path: Path) -> GatewaySettings:
    return GatewaySettings(queue_path=tmp_path / "outbox.sqlite3", config_cache=tmp_path / "c.json", token="")


def config() -> SiteConfig:
    return siteconfig.parse(SITE)


async def run(tmp_path: Path, adverts: Iterable[Advert]) -> Gateway:
    """One gateway life over `adverts`, ended the normal way (stop → shutdown)."""
    gw = Gateway(settings(tmp_path), config(), ListSource(adverts), uplink=False)
    stop = asyncio.Event()
    task = asyncio.create_task(gw.run(stop))
    await asyncio.wait_for(gw.source_done.wait(), 10)
    stop.set()
    await task
    return gw


def sos_alerts(gw: Gateway) -> int:
    return gw.pipeline.stats.by_alert.get("sos", 0)


async def test_old_frame_replayed_after_a_restart_is_refused_and_counted(tmp_path: Path) -> None:
    recorded_home = frame(100, 1.0)  # "worn, at home", recorded by an attacker
    recorded_sos = frame(101, 2.0, sos=True)
    gw1 = await run(tmp_path, [recorded_home, recorded_sos, frame(102, 3.0), frame(103, 4.0)])
    assert gw1.pipeline.decoders.stats.replays == 0 and sos_alerts(gw1) == 1

    # restart: new objects from the same files; the recordings come back, then the band goes on
    gw2 = await run(tmp_path, [frame(101, 5.0, sos=True), frame(100, 6.0), frame(103, 7.0), frame(120, 8.0)])
    stats = gw2.pipeline.decoders.stats
    assert stats.replays == 3  # the SOS, the "home" frame and the newest one: all replays
    assert sos_alerts(gw2) == 0
    assert stats.decoded.get("chumphae") == 1  # the band counting on (120) passes
    assert gw2.replay_guard.snapshot() == {ADDR: 120}


async def test_a_crash_loses_at_most_the_last_tick_and_the_margin_covers_it(tmp_path: Path) -> None:
    # saved each tick: 100..103 are on disk; 104 is accepted and the process dies before the next save
    adverts = [frame(100, 1.0), frame(101, 2.0), frame(102, 3.0), frame(103, 4.0)]
    gw1 = Gateway(settings(tmp_path), config(), ListSource(adverts), uplink=False)
    await gw1._consume(asyncio.Event())
    gw1.pipeline.handle(frame(104, 4.5, sos=True))  # accepted, never saved
    assert sos_alerts(gw1) == 1
    gw1.outbox._db.close()  # crash

    gw2 = Gateway(settings(tmp_path), config(), ListSource([]), uplink=False)
    assert gw2.outbox.load_counters() == {ADDR: 103}
    assert gw2.pipeline.handle(frame(104, 10.0, sos=True)) is None  # within the margin: refused
    assert gw2.pipeline.decoders.stats.replays == 1 and sos_alerts(gw2) == 0
    margin = gw2.settings.replay_margin
    assert gw2.pipeline.handle(frame(103 + margin + 1, 11.0)) is not None
    gw2.outbox.close()


async def test_the_guard_survives_a_config_change(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gw = Gateway(settings(tmp_path), config(), ListSource([]), uplink=False)
    assert gw.pipeline.handle(frame(50, 1.0)) is not None
    assert gw.pipeline.handle(frame(51, 2.0)) is not None

    async def changed(_s: GatewaySettings, _current: SiteConfig | None = None) -> SiteConfig:
        return siteconfig.parse({**SITE, "version": 2}, '"v2"')

    monkeypatch.setattr("gateway.service.load_config", changed)
    await gw.refresh_config()
    assert gw.config.version == 2
    assert gw.pipeline.handle(frame(50, 3.0)) is None
    assert gw.pipeline.decoders.stats.replays == 1
    gw.outbox.close()


def test_restored_floor_does_not_ratchet_and_never_lowers() -> None:
    g = band.ReplayGuard()
    g.restore({ADDR: 10}, now=0.0, margin=5)
    assert g.snapshot() == {ADDR: 10}  # what would be stored again: the real counter, not 15
    with pytest.raises(ReplayError):
        g.check(ADDR, 15, now=1.0)
    assert g.check(ADDR, 16, now=2.0)
    assert g.dirty() == {ADDR: 16} and g.dirty() == {}
    g.restore({ADDR: 3}, now=3.0, margin=5)  # an older stored copy does not lower it
    with pytest.raises(ReplayError):
        g.check(ADDR, 12, now=4.0)
