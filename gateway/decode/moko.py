"""MokoSmart BeaconX Pro accelerometer frame: service data 0xFEAB, frame 0x60.

    0 frame type 0x60   1 ranging data (RSSI at 0 m, int8)   2 adv interval
    3 sample rate   4 full scale   5 motion threshold
    6-7, 8-9, 10-11 x, y, z int16 BE   12-13 battery mV (BE)

Axis values are taken as milli-g (inferred from published frames, not from
a vendor specification).
"""

from __future__ import annotations

import struct

from chumphae.values import Advert, Reading
from gateway.decode import DecodeError, Key, reading, uuid16

KEYS = (Key("s", uuid16(0xFEAB), 0x60),)


def parse(payload: bytes) -> tuple[tuple[float, float, float], int, int]:
    """(acceleration in g, battery mV, ranging data dBm)."""
    if len(payload) < 14 or payload[0] != 0x60:
        raise DecodeError(f"Moko ACC frame length {len(payload)}")
    ranging = struct.unpack_from(">b", payload, 1)[0]
    x, y, z, mv = struct.unpack_from(">hhhH", payload, 6)
    return (x / 1000.0, y / 1000.0, z / 1000.0), mv, ranging


class MokoDecoder:
    name = "moko"

    def decode(self, advert: Advert, payload: bytes) -> Reading | None:
        accel, mv, _ranging = parse(payload)
        return reading(
            advert,
            self.name,
            battery_mv=mv,
            accel_g=accel,
        )
