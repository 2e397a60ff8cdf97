"""The Smart Chumphae band frame: authenticated, replay-protected (docs/band-frame.md).

Manufacturer-specific data, company id 0xFFFF, 22 bytes:

    0      version/magic 0xC1
    1..4   sequence counter, u32 little-endian (clear: part of the nonce)
    5..13  AES-CCM encrypted body (9 bytes):
             flags, battery %, max |a|, min |a|, mean |a| (u8, 1/16 g),
             pitch (int8 °), roll (int8, 2° units), steps (u16 LE)
    14..21 AES-CCM tag (8 bytes)

Nonce = band address (6) + company id LE (2) + version (1) + counter LE (4).
A phone that does not hold the band's key cannot produce a frame that
verifies, and since the address is in the nonce a frame copied from one band
does not verify as another. Replays are caught by `ReplayGuard`.

This module both builds frames (the simulator; band firmware should follow
the same bytes) and reads them (the gateway).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESCCM

from chumphae.values import Advert, Motion, Reading
from gateway.decode import AuthError, DecodeError, Key, ReplayError

COMPANY_ID = 0xFFFF  # Bluetooth SIG "reserved for internal use / testing"
VERSION = 0xC1
TAG_LEN = 8
BODY_LEN = 9
FRAME_LEN = 1 + 4 + BODY_LEN + TAG_LEN  # 22
G_UNIT = 16.0  # |a| bytes count 1/16 g
UNKNOWN_ANGLE = -128

FLAG_SOS = 0x01
FLAG_FALL = 0x02
FLAG_WORN = 0x04
FLAG_CHARGING = 0x08
FLAG_LOW_BATTERY = 0x10

KEYS = (Key("m", COMPANY_ID, VERSION),)


@dataclass(frozen=True, slots=True)
class BandState:
    """What a band reports in one frame, before encryption."""

    seq: int
    sos: bool = False
    fall: bool = False
    worn: bool = True
    charging: bool = False
    low_battery: bool = False
    battery_pct: int = 100
    motion: Motion | None = None
    steps: int = 0


def _address_bytes(address: str) -> bytes:
    raw = bytes.fromhex(address.replace(":", "").replace("-", ""))
    if len(raw) != 6:
        raise DecodeError(f"bad address {address!r}")
    return raw


def _nonce(address: str, seq: int) -> bytes:
    return _address_bytes(address) + struct.pack("<HBI", COMPANY_ID, VERSION, seq)


def _g(v: float) -> int:
    return max(0, min(255, round(v * G_UNIT)))


def _angle(v: float | None, unit: float, lo: int, hi: int) -> int:
    if v is None:
        return UNKNOWN_ANGLE
    return max(lo, min(hi, round(v / unit)))


def encode(address: str, key: bytes, s: BandState) -> bytes:
    """The manufacturer-data payload (after the company id) a band sends for `s`."""
    flags = (
        (FLAG_SOS if s.sos else 0)
        | (FLAG_FALL if s.fall else 0)
        | (FLAG_WORN if s.worn else 0)
        | (FLAG_CHARGING if s.charging else 0)
        | (FLAG_LOW_BATTERY if s.low_battery else 0)
    )
    m = s.motion
    body = struct.pack(
        "<BBBBBbbH",
        flags,
        max(0, min(100, s.battery_pct)),
        _g(m.max_g) if m else 0,
        _g(m.min_g) if m else 0,
        _g(m.mean_g) if m else 0,
        _angle(m.pitch_deg if m else None, 1.0, -90, 90),
        _angle(m.roll_deg if m else None, 2.0, -90, 90),
        s.steps & 0xFFFF,
    )
    sealed = AESCCM(key, tag_length=TAG_LEN).encrypt(_nonce(address, s.seq), body, None)
    return struct.pack("<BI", VERSION, s.seq & 0xFFFFFFFF) + sealed


def decode_frame(address: str, key: bytes, payload: bytes, cipher: AESCCM | None = None) -> BandState:
    """Verify and decrypt one frame (`cipher`: a cached AESCCM for `key`). Raises DecodeError / AuthError."""
    if len(payload) != FRAME_LEN:
        raise DecodeError(f"band frame length {len(payload)} != {FRAME_LEN}")
    if payload[0] != VERSION:
        raise DecodeError(f"band frame version 0x{payload[0]:02x} unsupported")
    (seq,) = struct.unpack_from("<I", payload, 1)
    try:
        body = (cipher or AESCCM(key, tag_length=TAG_LEN)).decrypt(_nonce(address, seq), payload[5:], None)
    except InvalidTag as e:
        raise AuthError(f"band frame from {address} failed authentication") from e
    flags, batt, mx, mn, mean, pitch, roll, steps = struct.unpack("<BBBBBbbH", body)
    motion = None
    if mx or mn or mean:
        motion = Motion(
            max_g=mx / G_UNIT,
            min_g=mn / G_UNIT,
            mean_g=mean / G_UNIT,
            pitch_deg=None if pitch == UNKNOWN_ANGLE else float(pitch),
            roll_deg=None if roll == UNKNOWN_ANGLE else float(roll) * 2.0,
        )
    return BandState(
        seq=seq,
        sos=bool(flags & FLAG_SOS),
        fall=bool(flags & FLAG_FALL),
        worn=bool(flags & FLAG_WORN),
        charging=bool(flags & FLAG_CHARGING),
        low_battery=bool(flags & FLAG_LOW_BATTERY),
        battery_pct=min(batt, 100),
        motion=motion,
        steps=steps,
    )


class ReplayGuard:
    """Rejects frames whose counter is older than the newest one seen per band.

    The same frame is legitimately heard several times: by every receiver of
    the site (that is how we locate) and repeatedly while the band re-sends
    one payload within its one-second update. So the newest counter may be
    accepted again for `window_s` seconds after it was first seen; anything
    older than the newest is a replay.

    Across restarts: `snapshot` / `dirty` give the counters to store, `restore`
    seeds them back. What was accepted after the last save is lost by a crash,
    so `restore` takes a `margin`: counters up to `stored + margin` are refused
    too (bands count about once a second, so a margin of a few counters covers
    a save every second; a band that was counting on meanwhile passes it as soon
    as the gateway is back). The margin is a floor, not a stored counter: it
    does not ratchet up over repeated restarts.
    """

    def __init__(self, window_s: float = 5.0) -> None:
        self.window_s = window_s
        self._last: dict[str, tuple[int, float]] = {}
        self._floor: dict[str, int] = {}  # restored: counters ≤ this are refused
        self._dirty: set[str] = set()

    def check(self, address: str, seq: int, now: float) -> bool:
        """True if fresh (new counter); False if a repeat sighting. Raises ReplayError."""
        floor = self._floor.get(address)
        if floor is not None:
            if seq <= floor:
                raise ReplayError(f"band {address} counter {seq} is not above the restored {floor}")
            del self._floor[address]
        last = self._last.get(address)
        if last is None or seq > last[0]:
            self._last[address] = (seq, now)
            self._dirty.add(address)
            return True
        if seq == last[0] and now - last[1] <= self.window_s:
            return False
        raise ReplayError(f"band {address} counter {seq} is not newer than {last[0]}")

    def snapshot(self) -> dict[str, int]:
        """The newest accepted counter per band (restored ones included)."""
        return {a: s for a, (s, _t) in self._last.items()}

    def dirty(self) -> dict[str, int]:
        """Counters accepted since the last call (what a periodic save must write)."""
        out = {a: self._last[a][0] for a in self._dirty}
        self._dirty.clear()
        return out

    def restore(self, seqs: dict[str, int], now: float, margin: int = 0) -> None:
        for a, s in seqs.items():
            if a in self._last and self._last[a][0] >= s:
                continue
            # restored counters get no repeat window: only newer frames pass
            self._last[a] = (s, now - self.window_s - 1.0)
            if margin > 0:
                self._floor[a] = s + margin


class BandDecoder:
    """Decoder for the registry: looks the key up by address, checks replay.

    Every receiver of a site hears each frame, and a band repeats one payload a few times in its
    second, so most adverts carry bytes already verified: the last verified payload per band is
    kept with its key and decoded state, and the very same bytes under the very same key are not
    decrypted again (AES-CCM is deterministic: they would verify and decrypt to the same state).
    Anything else, a changed byte included, goes through `decode_frame`. The replay guard still
    sees every advert."""

    name = "chumphae"

    def __init__(self, keys: Callable[[str], bytes | None], guard: ReplayGuard | None = None) -> None:
        self.keys = keys
        self.guard = guard or ReplayGuard()
        self._ciphers: dict[bytes, AESCCM] = {}  # key schedule once per band, not per frame
        self._verified: dict[str, tuple[bytes, bytes, BandState]] = {}  # address → (key, payload, state)

    def repeat(self, advert: Advert, payload: bytes) -> int | None:
        """The counter of an advert that carries the very bytes last verified for its band under the
        band's key, once the replay guard has passed it; None for anything else (a new or changed
        frame, an unknown band, a counter the guard refuses): `decode` it, which counts why."""
        address = advert.address
        last = self._verified.get(address)
        if last is None or last[1] != payload or last[0] != self.keys(address):
            return None
        seq = last[2].seq
        try:
            self.guard.check(address, seq, advert.monotonic)
        except ReplayError:
            return None
        return seq

    def decode(self, advert: Advert, payload: bytes) -> Reading | None:
        address = advert.address
        key = self.keys(address)
        if key is None:
            return None  # a band of another site, or not yet in our config: not ours
        last = self._verified.get(address)
        if last is not None and last[1] == payload and last[0] == key:
            s = last[2]
        else:
            cipher = self._ciphers.get(key)
            if cipher is None:
                if len(self._ciphers) > 10_000:
                    self._ciphers.clear()
                cipher = self._ciphers[key] = AESCCM(key, tag_length=TAG_LEN)
            s = decode_frame(address, key, payload, cipher)
            if len(self._verified) > 10_000:
                self._verified.clear()
            self._verified[address] = (key, bytes(payload), s)
        self.guard.check(address, s.seq, advert.monotonic)
        return Reading(address, self.name, advert.rssi, advert.receiver, advert.t, seq=s.seq,
                       battery_pct=float(s.battery_pct), sos=s.sos, fall_flag=s.fall, worn=s.worn,
                       charging=s.charging, motion=s.motion, steps=s.steps, tx_power=advert.tx_power,
                       authenticated=True)
