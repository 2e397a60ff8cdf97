"""The bleak path end to end against BlueZ as python-dbusmock plays it, on a private system bus.

No radio: a private dbus-daemon (never the machine's system bus) runs the
`bluez5` template; bleak's real BlueZ backend talks to it over D-Bus. We add
Device1 objects ourselves with correctly typed ManufacturerData (a{qv}) and
ServiceData (a{sv}) — the template's AddDevice types them wrongly — and
emit InterfacesAdded / PropertiesChanged, as bluetoothd does when it hears
an advert.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest

from chumphae.values import Motion
from gateway.decode import chumphae_band as band
from gateway.pipeline import Pipeline
from gateway.scan import RadioSource, Scanner
from gateway.service import default_steps
from gateway.siteconfig import parse
from tests.gateway.bluez import BlueZ

pytestmark = pytest.mark.dbus  # each test takes the `bluez` fixture (conftest), which skips when D-Bus is missing

ADDR = "C0:FF:EE:00:00:01"
KEY = bytes.fromhex("00112233445566778899aabbccddeeff")
FAIL_TWICE_THEN_START = (
    "n = getattr(self, '_fails', 0)\n"
    "if n < 2:\n"
    "    self._fails = n + 1\n"
    "    raise dbus.exceptions.DBusException('Operation already in progress', name='org.bluez.Error.InProgress')\n"
    "self.props['org.bluez.Adapter1']['Discovering'] = True\n"
)


def site() -> Any:
    return parse({"site_id": "t", "receivers": [{"id": "local", "lat": 16.5442, "lon": 102.0997}],
                  "bands": [{"address": ADDR, "key_hex": KEY.hex(), "patient_id": 1}]})


async def test_adverts_on_dbus_come_out_as_decoded_readings(bluez: BlueZ) -> None:
    cfg = site()
    matcher, detector = default_steps(cfg)
    pipe = Pipeline(cfg, None, matcher, detector)
    scanner = Scanner("hci0", "local", watchdog_s=60, retry_delay_s=0.05)
    source = RadioSource(scanner, idle_s=0.2)
    frames = [band.encode(ADDR, KEY, band.BandState(seq=500 + i, sos=(i == 2), motion=Motion(1.2, 0.8, 1.0, 10, 0))) for i in range(3)]
    readings = []

    async def inject() -> None:
        await asyncio.sleep(0.3)
        for i, f in enumerate(frames):
            await asyncio.to_thread(bluez.advertise, ADDR, -60 - i, {0xFFFF: f})
            await asyncio.sleep(0.1)
        # a stranger's Eddystone-TLM through ServiceData, and a forged band frame
        await asyncio.to_thread(bluez.advertise, "11:22:33:44:55:66", -80, None,
                                {"0000feaa-0000-1000-8000-00805f9b34fb": bytes.fromhex("20000bb817800000002a0000012c")})
        forged = band.encode(ADDR, bytes(16), band.BandState(seq=999, sos=True))
        await asyncio.sleep(0.1)
        await asyncio.to_thread(bluez.advertise, ADDR, -61, {0xFFFF: forged})

    injector = asyncio.create_task(inject())
    seen_tlm = False
    async with asyncio.timeout(15), contextlib.aclosing(aiter(source)) as adverts:
        async for adv in adverts:
            if adv is None:
                if len(readings) >= 3 and seen_tlm and pipe.decoders.stats.auth_failures:
                    break
                continue
            r = pipe.handle(adv)
            if r is not None and r.kind == "chumphae":
                readings.append(r)
            seen_tlm = seen_tlm or (r is not None and r.kind == "eddystone_tlm")
    await injector
    assert [r.seq for r in readings] == [500, 501, 502]
    assert [r.sos for r in readings] == [False, False, True]
    assert all(r.authenticated and r.receiver == "local" for r in readings)
    assert [r.rssi for r in readings] == [-60, -61, -62]
    assert pipe.decoders.stats.auth_failures == 1
    assert scanner.state == "stopped" and scanner.drops == 0


async def test_inprogress_at_start_is_retried(bluez: BlueZ) -> None:
    bluez.adapter_mock().AddMethod("org.bluez.Adapter1", "StartDiscovery", "", "", FAIL_TWICE_THEN_START)
    scanner = Scanner("hci0", "local", retry_delay_s=0.05, start_retries=5)
    await scanner.start()
    try:
        assert scanner.start_failures == 2 and scanner.state == "scanning"
        await asyncio.to_thread(bluez.advertise, ADDR, -70, {0xFFFF: bytes(22)})
        adv = await asyncio.wait_for(scanner.queue.get(), 5)
        assert adv.address == ADDR and adv.manufacturer_data == {0xFFFF: bytes(22)}
    finally:
        await scanner.stop()


async def test_silent_adapter_trips_the_watchdog_and_scanning_resumes(bluez: BlueZ, caplog: pytest.LogCaptureFixture) -> None:
    scanner = Scanner("hci0", "local", watchdog_s=0.5, retry_delay_s=0.05)
    stop = asyncio.Event()
    task = asyncio.create_task(scanner.run(stop, check_every_s=0.1))
    try:
        async with asyncio.timeout(10):
            while scanner.restarts == 0:
                await asyncio.sleep(0.05)
        assert "no advert for" in scanner.restart_reasons[0]
        assert any("restarting scanner: no advert" in m for m in caplog.messages)
        async with asyncio.timeout(5):
            while scanner.state != "scanning":
                await asyncio.sleep(0.05)
        await asyncio.to_thread(bluez.advertise, ADDR, -65, {0xFFFF: bytes(22)})
        adv = await asyncio.wait_for(scanner.queue.get(), 5)
        assert adv.rssi == -65
    finally:
        stop.set()
        await task


async def test_what_the_radio_hands_over_is_recorded_and_replays_the_same(bluez: BlueZ, tmp_path: Any) -> None:
    """`--record` on the real bleak path: every advert bleak delivered is in the file, and the
    file replayed through a fresh pipeline gives the same readings, strangers and forgeries."""
    from chumphae.supervise import Supervisor
    from gateway.record import RecordingSource
    from gateway.replay import ReplaySource

    path = tmp_path / "radio.jsonl"
    scanner = Scanner("hci0", "local", watchdog_s=60, retry_delay_s=0.05)
    sup = Supervisor()
    source = RecordingSource(RadioSource(scanner, idle_s=0.2, supervisor=sup), path, kind="radio")
    frames = [band.encode(ADDR, KEY, band.BandState(seq=700 + i, sos=(i == 1))) for i in range(3)]
    tlm = {"0000feaa-0000-1000-8000-00805f9b34fb": bytes.fromhex("20000bb817800000002a0000012c")}

    async def inject() -> None:
        await asyncio.sleep(0.3)
        for i, f in enumerate(frames):
            await asyncio.to_thread(bluez.advertise, ADDR, -60 - i, {0xFFFF: f})
            await asyncio.sleep(0.1)
        await asyncio.to_thread(bluez.advertise, "11:22:33:44:55:66", -80, None, tlm)
        await asyncio.sleep(0.1)
        await asyncio.to_thread(bluez.advertise, ADDR, -61, {0xFFFF: band.encode(ADDR, bytes(16), band.BandState(seq=999))})

    def run_pipeline() -> Pipeline:
        cfg = site()
        matcher, detector = default_steps(cfg)
        return Pipeline(cfg, None, matcher, detector)

    live = run_pipeline()
    live_readings: list[tuple[str, int | None, int, bool]] = []
    injector = asyncio.create_task(inject())
    async with asyncio.timeout(15), contextlib.aclosing(aiter(source)) as adverts:
        async for adv in adverts:
            if adv is None:
                if len(live_readings) >= 4 and live.decoders.stats.auth_failures:
                    break
                continue
            r = live.handle(adv)
            if r is not None:
                live_readings.append((r.kind, r.seq, r.rssi, r.sos))
    await injector
    source.close()
    assert sup.restarts == {"scanner": 0} and scanner.adverts == source.adverts >= 5

    replay = ReplaySource(path, speed=0)
    again = run_pipeline()
    replayed: list[tuple[str, int | None, int, bool]] = []
    async for adv in replay:
        if adv is not None and (r := again.handle(adv)) is not None:
            replayed.append((r.kind, r.seq, r.rssi, r.sos))
    assert replay.bad_lines == 0 and replay.adverts == source.adverts
    assert replayed == live_readings and [x[1] for x in replayed if x[0] == "chumphae"] == [700, 701, 702]
    assert ("eddystone_tlm", None, -80, False) in replayed
    assert again.decoders.stats.auth_failures == live.decoders.stats.auth_failures == 1
