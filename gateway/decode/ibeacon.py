"""Apple iBeacon: manufacturer data 0x004C, `02 15`, UUID[16], major, minor, tx power.

Off-the-shelf beacon bands often speak only iBeacon: no flags, no motion,
but enough to locate (RSSI and the calibrated 1 m power).
"""

from __future__ import annotations

import struct
import uuid

from chumphae.values import Advert, Reading
from gateway.decode import DecodeError, Key, reading

APPLE = 0x004C
KEYS = (Key("m", APPLE, 0x02),)


def parse(payload: bytes) -> tuple[str, int, int, int]:
    """(proximity uuid, major, minor, tx power at 1 m in dBm)."""
    if len(payload) != 23 or payload[1] != 0x15:
        raise DecodeError(f"iBeacon payload length {len(payload)} / type")
    major, minor, tx = struct.unpack_from(">HHb", payload, 18)
    return str(uuid.UUID(bytes=payload[2:18])), major, minor, tx


class IBeaconDecoder:
    name = "ibeacon"

    def decode(self, advert: Advert, payload: bytes) -> Reading | None:
        _uuid, _major, _minor, tx = parse(payload)
        return reading(
            advert,
            self.name,
            tx_power=tx,
        )
