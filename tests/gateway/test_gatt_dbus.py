"""The raw-stream session over real bleak against BlueZ as python-dbusmock plays it (private bus).

The `bluez5` template has no GATT, so the band's GATT objects are added by hand, as bluetoothd
would export them after service discovery: Device1 (Connect/Disconnect that flip Connected and
ServicesResolved), GattService1 and GattCharacteristic1 (StartNotify/StopNotify). Each
notification is a PropertiesChanged of the characteristic's Value, as BlueZ sends it. bleak's
own BlueZ backend finds the band (discovery), connects, resolves services, subscribes, and hands
the bytes to `gateway.gatt.RawStreams`.
"""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from chumphae.timeutil import utcnow
from gateway.decode import rawstream
from gateway.gatt import RawStreams, Verdict, bleak_factory
from tests.gateway.bluez import ADAPTER, DEV_IFACE, BlueZ
from tests.gateway.test_scan_dbus import ADDR

dbus = pytest.importorskip("dbus")
dbusmock = pytest.importorskip("dbusmock")

pytestmark = pytest.mark.dbus

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("CHUMPHAE_FALLS_DATA", ROOT.parent / "shared" / "data" / "falls"))
DEV = f"{ADAPTER}/dev_{ADDR.replace(':', '_')}"
SVC = f"{DEV}/service0010"
CHAR = f"{SVC}/char0011"
SVC_IFACE = "org.bluez.GattService1"
CHAR_IFACE = "org.bluez.GattCharacteristic1"
PROPS = "org.freedesktop.DBus.Properties"


def _set(iface: str, **values: str) -> str:
    """dbusmock method code: set properties and emit PropertiesChanged, as bluetoothd does."""
    body = ", ".join(f"'{k}': {v}" for k, v in values.items())
    return (f"self.props['{iface}'].update({{{body}}})\n"
            f"self.EmitSignal('{PROPS}', 'PropertiesChanged', 'sa{{sv}}as', ['{iface}', {{{body}}}, []])\n")


def add_band_with_gatt(b: BlueZ) -> None:
    root = b.mock_root()
    yes, no = "dbus.Boolean(True)", "dbus.Boolean(False)"
    b.advertise(ADDR, -60, {0xFFFF: bytes(22)})  # the Device1 object, as a scan finds it
    dev = dbus.Interface(b.bus.get_object("org.bluez", DEV), dbusmock.MOCK_IFACE)
    dev.AddMethods(DEV_IFACE, [
        ("Connect", "", "", _set(DEV_IFACE, Connected=yes, ServicesResolved=yes)),
        ("Disconnect", "", "", _set(DEV_IFACE, Connected=no, ServicesResolved=no)),
    ])
    objects = [
        (SVC, SVC_IFACE, {"UUID": rawstream.SERVICE_UUID, "Primary": True, "Device": dbus.ObjectPath(DEV),
                          "Includes": dbus.Array([], signature="o")}, []),
        (CHAR, CHAR_IFACE, {"UUID": rawstream.CHAR_UUID, "Service": dbus.ObjectPath(SVC),
                            "Value": dbus.Array([], signature="y"), "Notifying": False,
                            "Flags": dbus.Array(["notify"], signature="s")},
         [("StartNotify", "", "", _set(CHAR_IFACE, Notifying=yes)),
          ("StopNotify", "", "", _set(CHAR_IFACE, Notifying=no))]),
    ]
    for path, iface, props, methods in objects:
        p = dbus.Dictionary(props, signature="sv")
        root.AddObject(path, iface, p, methods)
        root.EmitSignal("org.freedesktop.DBus.ObjectManager", "InterfacesAdded", "oa{sa{sv}}",
                        [dbus.ObjectPath(path), dbus.Dictionary({iface: p}, signature="sa{sv}")])


def notify(b: BlueZ, data: bytes) -> None:
    char = dbus.Interface(b.bus.get_object("org.bluez", CHAR), dbusmock.MOCK_IFACE)
    char.UpdateProperties(CHAR_IFACE, {"Value": dbus.Array([dbus.Byte(x) for x in data], signature="y")})


def prop(b: BlueZ, path: str, iface: str, name: str) -> Any:
    return b.bus.get_object("org.bluez", path).Get(iface, name, dbus_interface=PROPS)


@pytest.mark.skipif(not (DATA / "umafall" / "labels.csv").is_file(), reason=f"real fall recordings not found at {DATA}")
async def test_a_real_fall_over_bleak_and_bluez_gatt_notifications(bluez: BlueZ) -> None:
    from chumphae.detect.fall_data import pad_still, trial_seed
    from chumphae.detect.recordings import read_recording

    name = "Subject_02_Fall_forwardFall_1"
    rec = read_recording(DATA / "umafall" / f"{name}.csv")
    order = np.argsort(rec.t, kind="stable")
    t, xyz = pad_still(rec.t[order] - rec.t[order][0], rec.xyz[order], 20, seed=trial_seed(name))
    mg = np.round(xyz * 1000).astype(np.int16)
    frames = [rawstream.encode(i, round(float(t[j]) * 1000), 20.0, mg[j : j + 10]) for i, j in
              enumerate(range(0, len(t), 10))]
    frames.insert(5, b"\xa1\x00\x01")  # a torn notification in the middle: counted, the stream goes on

    await asyncio.to_thread(add_band_with_gatt, bluez)
    verdicts: list[Verdict] = []
    streams = RawStreams(bleak_factory("hci0", 10.0), verdicts.append, wall=utcnow, connect_timeout_s=15.0)
    done = threading.Event()

    def band() -> None:  # advertise until subscribed (bleak finds the device by scanning), then stream
        while not done.is_set() and not bool(prop(bluez, CHAR, CHAR_IFACE, "Notifying")):
            bluez.advertise(ADDR, -60, {0xFFFF: bytes(22)})
            done.wait(0.2)
        for f in frames:
            if done.is_set():
                return
            notify(bluez, f)

    stop = asyncio.Event()
    runner = asyncio.create_task(streams.run(stop))
    feeder = asyncio.create_task(asyncio.to_thread(band))
    try:
        assert streams.request(ADDR, utcnow())
        async with asyncio.timeout(40):
            while not verdicts:
                await asyncio.sleep(0.05)
    finally:
        done.set()
        stop.set()
        await asyncio.gather(runner, feeder)
    (v,) = verdicts
    assert v.reason == "decided" and len(v.falls) == 1 and v.falls[0].fall.confidence >= 0.5, v
    st = streams.stats
    assert (st.sessions, st.connect_failures, st.errors, st.malformed, st.lost) == (1, 0, 0, 1, 0)
    assert not bool(prop(bluez, DEV, DEV_IFACE, "Connected"))  # disconnected after the verdict


async def test_a_band_that_refuses_the_connection_ends_its_session_only(bluez: BlueZ) -> None:
    await asyncio.to_thread(add_band_with_gatt, bluez)
    dev = dbus.Interface(bluez.bus.get_object("org.bluez", DEV), dbusmock.MOCK_IFACE)
    dev.AddMethod(DEV_IFACE, "Connect", "", "",
                  "raise dbus.exceptions.DBusException('le-connection-abort-by-remote', name='org.bluez.Error.Failed')")
    verdicts: list[Verdict] = []
    streams = RawStreams(bleak_factory("hci0", 3.0), verdicts.append, wall=utcnow, connect_timeout_s=3.0)
    done = threading.Event()

    def band() -> None:
        while not done.is_set():
            bluez.advertise(ADDR, -60, {0xFFFF: bytes(22)})
            done.wait(0.2)

    stop = asyncio.Event()
    runner = asyncio.create_task(streams.run(stop))
    feeder = asyncio.create_task(asyncio.to_thread(band))
    try:
        streams.request(ADDR, utcnow())
        async with asyncio.timeout(20):
            while not verdicts:
                await asyncio.sleep(0.05)
        assert not runner.done()  # the loop goes on for the next band
    finally:
        done.set()
        stop.set()
        await asyncio.gather(runner, feeder)
    (v,) = verdicts
    assert v.reason.startswith("connect failed") and not v.covered and v.falls == ()
    assert streams.stats.connect_failures == 1 and not streams.active(ADDR)
