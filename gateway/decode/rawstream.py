"""The band's raw accelerometer stream over GATT (docs/band-frame.md, "Raw stream over GATT").

An advert carries a one-second summary; a raw stream needs a connection. The
band offers one notify characteristic; each notification is one block of
samples, all little-endian:

    0      version 0xA1
    1..2   seq u16: +1 per notification, wraps 65535 → 0
    3..6   t0 u32: the band's clock, ms, at the block's first sample (wraps)
    7..8   rate u16: samples per second in 0.1 Hz (500 = 50 Hz)
    9      n: samples in the block, 1..83
    10..   n × (x, y, z) int16, milli-g, oldest first

`parse` reads one notification (raises `DecodeError`); `RawStream` turns one
connection's notifications into samples on one time line and never raises: a
malformed notification is counted and dropped, a lost one (sequence gap) is
counted and leaves a gap in the time line (the band's clock says where the
next block lies), a repeated one is dropped, a clock that jumps back (band
reset) continues after the last sample with a one-second gap.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from gateway.decode import DecodeError

SERVICE_UUID = "c4a70001-5a1e-4c8d-9a6b-0c3f5e7a1b20"
CHAR_UUID = "c4a70002-5a1e-4c8d-9a6b-0c3f5e7a1b20"
VERSION = 0xA1
HEADER = struct.Struct("<BHIHB")  # version, seq, t0 ms, rate (0.1 Hz), n
HEADER_LEN = HEADER.size  # 10
SAMPLE_LEN = 6
MAX_SAMPLES = (512 - HEADER_LEN) // SAMPLE_LEN  # 83: an ATT value is at most 512 bytes
MIN_RATE_DHZ = 10  # 1 Hz
MAX_RATE_DHZ = 10_000  # 1000 Hz
WRAP_MS = 1 << 32
RESET_GAP_S = 1.0

Array = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class RawBlock:
    """One notification, decoded."""

    seq: int
    t0_ms: int
    hz: float
    xyz_mg: NDArray[np.int16]  # shape (n, 3)


def encode(seq: int, t0_ms: int, hz: float, xyz_mg: NDArray[np.int16] | list[tuple[int, int, int]]) -> bytes:
    """One notification's bytes (the simulator; band firmware must produce the same)."""
    a = np.asarray(xyz_mg, dtype=np.int64).reshape(-1, 3)
    if not 1 <= len(a) <= MAX_SAMPLES:
        raise ValueError(f"a block holds 1..{MAX_SAMPLES} samples, not {len(a)}")
    a = np.clip(a, -32768, 32767).astype("<i2")
    head = HEADER.pack(VERSION, seq & 0xFFFF, t0_ms % WRAP_MS, round(hz * 10), len(a))
    return head + a.tobytes()


def parse(data: bytes | bytearray) -> RawBlock:
    """One notification → RawBlock; `DecodeError` when its bytes do not fit the format."""
    if len(data) < HEADER_LEN + SAMPLE_LEN:
        raise DecodeError(f"raw block of {len(data)} bytes: shorter than one sample")
    version, seq, t0, rate, n = HEADER.unpack_from(data, 0)
    if version != VERSION:
        raise DecodeError(f"raw block version 0x{version:02x}, expected 0x{VERSION:02x}")
    if not 1 <= n <= MAX_SAMPLES:
        raise DecodeError(f"raw block claims {n} samples")
    if len(data) != HEADER_LEN + SAMPLE_LEN * n:
        raise DecodeError(f"raw block of {len(data)} bytes for {n} samples (expected {HEADER_LEN + SAMPLE_LEN * n})")
    if not MIN_RATE_DHZ <= rate <= MAX_RATE_DHZ:
        raise DecodeError(f"raw block rate {rate / 10} Hz out of range")
    xyz = np.frombuffer(bytes(data), dtype="<i2", offset=HEADER_LEN).reshape(n, 3).astype(np.int16)
    return RawBlock(seq, t0, rate / 10.0, xyz)


@dataclass(frozen=True, slots=True)
class Samples:
    t: Array  # seconds on this connection's time line
    xyz_g: Array  # shape (n, 3), g
    hz: float


class RawStream:
    """One connection's notifications → samples on one time line (seconds); never raises."""

    def __init__(self) -> None:
        self.blocks = 0
        self.malformed = 0
        self.lost = 0  # notifications missing by sequence number
        self.repeats = 0
        self.resets = 0  # the band's clock went back (not a wrap)
        self.samples = 0
        self._seq: int | None = None
        self._last_t0: int | None = None
        self._base_ms = 0  # added to t0: 2^32 per wrap, a shift per reset
        self.end_s: float | None = None  # time of the newest sample so far

    def feed(self, data: bytes | bytearray) -> Samples | None:
        try:
            b = parse(data)
        except DecodeError:
            self.malformed += 1
            return None
        if self._seq is not None:
            step = (b.seq - self._seq) & 0xFFFF
            if step == 0 or step > 0x8000:  # the same block again, or an older one
                self.repeats += 1
                return None
            self.lost += step - 1
        if self._last_t0 is not None and b.t0_ms < self._last_t0:
            if self._last_t0 - b.t0_ms > WRAP_MS // 2:
                self._base_ms += WRAP_MS  # the u32 clock wrapped (every 49.7 days)
            else:  # the band restarted its clock: continue after what we have, with a gap
                self.resets += 1
                assert self.end_s is not None
                self._base_ms = round((self.end_s + RESET_GAP_S) * 1000) - b.t0_ms
        self._seq, self._last_t0 = b.seq, b.t0_ms
        n = len(b.xyz_mg)
        t = (self._base_ms + b.t0_ms) / 1000.0 + np.arange(n, dtype=np.float64) / b.hz
        self.blocks += 1
        self.samples += n
        self.end_s = float(t[-1]) if self.end_s is None else max(self.end_s, float(t[-1]))
        return Samples(t, b.xyz_mg.astype(np.float64) / 1000.0, b.hz)

    def health(self) -> dict[str, int]:
        return {"blocks": self.blocks, "malformed": self.malformed, "lost": self.lost,
                "repeats": self.repeats, "resets": self.resets}
