"""KKM / BlueCharm sensor frame: service data 0xFEAA, frame type 0x21.

    0 frame type 0x21   1 version   2 content mask
    3-4 battery mV (BE)   5 temperature int8   6 temperature /256
    7-12 x, y, z acceleration int16 BE (milli-g; unit inferred, see DOMAIN.md)

The mask says which sensors are fitted; we read the fixed layout that KKM's
K-series bands send (voltage, temperature, acceleration all present) and
refuse a frame too short to hold them rather than guess other layouts.
"""

from __future__ import annotations

import struct

from chumphae.values import Advert, Reading
from gateway.decode import DecodeError, Key, reading, uuid16

KEYS = (Key("s", uuid16(0xFEAA), 0x21),)


def parse(payload: bytes) -> tuple[int, float, tuple[float, float, float] | None]:
    """(battery mV, temperature °C, acceleration in g or None)."""
    if len(payload) < 7 or payload[0] != 0x21:
        raise DecodeError(f"KKM frame length {len(payload)}")
    mv = struct.unpack_from(">H", payload, 3)[0]
    temp = struct.unpack_from(">b", payload, 5)[0] + payload[6] / 256.0
    accel = None
    if len(payload) >= 13:
        x, y, z = struct.unpack_from(">hhh", payload, 7)
        accel = (x / 1000.0, y / 1000.0, z / 1000.0)
    return mv, temp, accel


class KkmDecoder:
    name = "kkm"

    def decode(self, advert: Advert, payload: bytes) -> Reading | None:
        mv, _temp, accel = parse(payload)
        return reading(
            advert,
            self.name,
            battery_mv=mv,
            accel_g=accel,
        )
