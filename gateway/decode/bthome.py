"""BTHome v2 (service data 0xFCD2) through the maintained `bthome-ble` parser.

bthome-ble keeps per-device state (its packet-id duplicate filter, the
encryption counter), so we keep one parser per address. A button press is
taken as SOS: BTHome panic buttons are how a patient without our band can
still call for help.
"""

from __future__ import annotations

from bleak.backends.device import BLEDevice
from bthome_ble import BTHomeBluetoothDeviceData
from habluetooth.models import BluetoothServiceInfoBleak

from chumphae.values import Advert, Reading
from gateway.decode import DecodeError, Key, reading, uuid16

BTHOME = uuid16(0xFCD2)
KEYS = (Key("s", BTHOME),)
SOS_EVENTS = {"press", "long_press", "double_press", "triple_press"}


class BTHomeDecoder:
    name = "bthome"

    def __init__(self, max_devices: int = 4096) -> None:
        self._parsers: dict[str, BTHomeBluetoothDeviceData] = {}
        self._max = max_devices

    def _parser(self, address: str) -> BTHomeBluetoothDeviceData:
        p = self._parsers.get(address)
        if p is None:
            if len(self._parsers) >= self._max:  # bounded: strangers pass by
                self._parsers.pop(next(iter(self._parsers)))
            p = self._parsers[address] = BTHomeBluetoothDeviceData()
        return p

    def decode(self, advert: Advert, payload: bytes) -> Reading | None:
        if not payload or (payload[0] >> 5) & 0x07 != 2:
            raise DecodeError("not a BTHome v2 frame")
        info = BluetoothServiceInfoBleak(
            advert.local_name or advert.address,
            advert.address,
            advert.rssi,
            {},
            {BTHOME: payload},
            [BTHOME],
            advert.receiver,
            BLEDevice(advert.address, advert.local_name, None),
            None,
            False,
            advert.monotonic,
            advert.tx_power,
        )
        parser = self._parser(advert.address)
        update = parser.update(info)
        if parser.decryption_failed and payload[0] & 0x01:
            raise DecodeError("encrypted BTHome frame without a key")
        values = {k.key: v.native_value for k, v in update.entity_values.items()}
        events = {e.event_type for e in update.events.values()}
        battery = values.get("battery")
        mv = values.get("voltage")
        return reading(
            advert,
            self.name,
            battery_pct=float(battery) if isinstance(battery, (int, float)) else None,
            battery_mv=round(float(mv) * 1000) if isinstance(mv, (int, float)) else None,
            sos=bool(events & SOS_EVENTS),
        )
