"""BlueZ as python-dbusmock plays it, on a private system bus: the `bluez` fixture's object (tests/gateway/conftest.py).

Importable without dbus-python or python-dbusmock (the names are then missing): the fixture checks for them, and
for dbus-daemon, and skips the test that asked for it with the reason.
"""

from __future__ import annotations

import contextlib
import subprocess
from typing import Any

with contextlib.suppress(ImportError):  # the fixture skips, with the reason, when these are missing
    import dbus
    import dbusmock

ADAPTER = "/org/bluez/hci0"
DEV_IFACE = "org.bluez.Device1"


class BlueZ:
    """A private system bus with the bluez5 template and adapter hci0."""

    def __init__(self) -> None:
        dbusmock.DBusTestCase.start_system_bus()  # a private dbus-daemon; sets DBUS_SYSTEM_BUS_ADDRESS
        self.proc, self.obj = dbusmock.DBusTestCase.spawn_server_template("bluez5", {}, subprocess.DEVNULL)
        self.mock = dbus.Interface(self.obj, "org.bluez.Mock")
        self.mock.AddAdapter("hci0", "rph-gateway")
        self.bus = dbusmock.DBusTestCase.get_dbus(system_bus=True)
        self.known: set[str] = set()

    def adapter_mock(self) -> Any:
        return dbus.Interface(self.bus.get_object("org.bluez", ADAPTER), dbusmock.MOCK_IFACE)

    def advertise(self, address: str, rssi: int, mfr: dict[int, bytes] | None = None, svc: dict[str, bytes] | None = None) -> None:
        path = f"{ADAPTER}/dev_{address.replace(':', '_')}"
        mfr_v = dbus.Dictionary({dbus.UInt16(k): dbus.Array([dbus.Byte(b) for b in v], signature="y") for k, v in (mfr or {}).items()}, signature="qv")
        svc_v = dbus.Dictionary({k: dbus.Array([dbus.Byte(b) for b in v], signature="y") for k, v in (svc or {}).items()}, signature="sv")
        props = {"RSSI": dbus.Int16(rssi), "ManufacturerData": mfr_v, "ServiceData": svc_v}
        if path not in self.known:
            self.known.add(path)
            base = {
                "Address": dbus.String(address), "AddressType": dbus.String("random"), "Alias": dbus.String("band"),
                "Adapter": dbus.ObjectPath(ADAPTER), "Paired": False, "Bonded": False, "Connected": False,
                "Trusted": False, "Blocked": False, "LegacyPairing": False, "ServicesResolved": False,
                "UUIDs": dbus.Array([], signature="s"),
            }
            all_props = dbus.Dictionary({**base, **props}, signature="sv")
            self.mock_root().AddObject(path, DEV_IFACE, all_props, [])
            self.mock_root().EmitSignal(
                "org.freedesktop.DBus.ObjectManager", "InterfacesAdded", "oa{sa{sv}}",
                [dbus.ObjectPath(path), dbus.Dictionary({DEV_IFACE: all_props}, signature="sa{sv}")],
            )
            return
        dev = dbus.Interface(self.bus.get_object("org.bluez", path), dbusmock.MOCK_IFACE)
        dev.UpdateProperties(DEV_IFACE, props)  # emits PropertiesChanged, as a repeated advert does

    def mock_root(self) -> Any:
        return dbus.Interface(self.bus.get_object("org.bluez", "/"), dbusmock.MOCK_IFACE)

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait()
        dbusmock.DBusTestCase.tearDownClass()  # stops the private bus
