"""The Smart Chumphae band advert and advert recording, built by hand from the documents only.

docs/band-frame.md (byte layout, AES-128-CCM key and nonce) and docs/gateway-protocol.md §6 (the
recording format). Deliberately independent of `gateway/decode`: an outsider's encoder, so a change
of the real format that the documents do not follow shows up as a failing end-to-end test.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESCCM

COMPANY_ID = 0xFFFF
VERSION = 0xC1
FLAG_SOS = 1 << 0
FLAG_FALL = 1 << 1
FLAG_WORN = 1 << 2
FLAG_CHARGING = 1 << 3
FLAG_BATTERY_LOW = 1 << 4


@dataclass(frozen=True)
class Body:
    """The 9-byte clear body (band-frame.md, "Body")."""

    flags: int
    battery_pct: int
    max_g: float
    min_g: float
    mean_g: float
    pitch_deg: int
    roll_deg: int
    steps: int

    def pack(self) -> bytes:
        def sixteenths(g: float) -> int:
            return round(g * 16)

        return struct.pack(
            "<BBBBBbbH",
            self.flags,
            self.battery_pct,
            sixteenths(self.max_g),
            sixteenths(self.min_g),
            sixteenths(self.mean_g),
            self.pitch_deg,
            self.roll_deg // 2,
            self.steps & 0xFFFF,
        )


def nonce(address: str, counter: int) -> bytes:
    """address (6 bytes, as written) ‖ company id u16 LE ‖ version ‖ counter u32 LE."""
    return (
        bytes.fromhex(address.replace(":", ""))
        + struct.pack("<H", COMPANY_ID)
        + bytes([VERSION])
        + struct.pack("<I", counter)
    )


def payload(address: str, key_hex: str, counter: int, body: Body) -> bytes:
    """The 22-byte payload after the company id: version, counter, ciphertext (9), tag (8)."""
    sealed = AESCCM(bytes.fromhex(key_hex), tag_length=8).encrypt(nonce(address, counter), body.pack(), None)
    return bytes([VERSION]) + struct.pack("<I", counter) + sealed


def advertisement(address: str, key_hex: str, counter: int, body: Body) -> bytes:
    """Flags AD + Manufacturer Specific Data AD (29 bytes)."""
    data = struct.pack("<H", COMPANY_ID) + payload(address, key_hex, counter, body)
    return bytes([0x02, 0x01, 0x06, len(data) + 1, 0xFF]) + data


def iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat(timespec="microseconds")


@dataclass(frozen=True)
class Heard:
    """One advert as one receiver heard it (a recording line, gateway-protocol.md §6)."""

    t: datetime
    receiver: str
    address: str
    rssi: int
    payload: bytes

    def line(self) -> dict[str, object]:
        return {
            "t": iso(self.t),
            "receiver": self.receiver,
            "address": self.address,
            "rssi": self.rssi,
            "manufacturer_data": {str(COMPANY_ID): self.payload.hex()},
            "service_data": {},
            "local_name": None,
            "tx_power": None,
        }


def write_recording(path: Path, started: datetime, heard: list[Heard], end: datetime | None) -> None:
    """Header, one advert per line in time order, optional end line; UTF-8, `\\n`."""
    lines = [{"format": "chumphae-adverts", "version": 1, "started": iso(started), "source": "source"}]
    lines += [h.line() for h in sorted(heard, key=lambda h: h.t)]
    if end is not None:
        lines.append({"end": iso(end)})
    path.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines), encoding="utf-8")
