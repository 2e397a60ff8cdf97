"""Eddystone-TLM (unencrypted): service data 0xFEAA, frame 0x20, version 0x00.

    0 frame type 0x20   1 version 0x00   2-3 battery mV (BE, 0 = unknown)
    4-5 temperature, signed 8.8 fixed point (0x8000 = none)
    6-9 advert count (BE)   10-13 uptime in 0.1 s (BE)
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from chumphae.values import Advert, Reading
from gateway.decode import DecodeError, Key, reading, uuid16

EDDYSTONE = uuid16(0xFEAA)
KEYS = (Key("s", EDDYSTONE, 0x20),)


@dataclass(frozen=True, slots=True)
class Tlm:
    battery_mv: int | None
    temperature_c: float | None
    adv_count: int
    uptime_s: float


def parse(payload: bytes) -> Tlm:
    if len(payload) != 14 or payload[0] != 0x20:
        raise DecodeError(f"TLM length {len(payload)}")
    if payload[1] != 0x00:
        raise DecodeError(f"TLM version {payload[1]} (encrypted TLM not supported)")
    mv, temp_raw, count, uptime = struct.unpack_from(">HHII", payload, 2)
    temp = None if temp_raw == 0x8000 else struct.unpack(">h", struct.pack(">H", temp_raw))[0] / 256.0
    return Tlm(battery_mv=mv or None, temperature_c=temp, adv_count=count, uptime_s=uptime / 10.0)


class TlmDecoder:
    name = "eddystone_tlm"

    def decode(self, advert: Advert, payload: bytes) -> Reading | None:
        tlm = parse(payload)
        return reading(
            advert,
            self.name,
            battery_mv=tlm.battery_mv,
        )
