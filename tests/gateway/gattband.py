"""A band played from a wrist recording, for the raw-stream tests: its adverts (real band frames,
one per second, with the summary of that second) and its GATT side (real raw-stream notifications:
history first, then live) behind BleakClient's small protocol (`gateway.gatt.GattClient`)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from numpy.typing import NDArray

from chumphae.values import Advert
from gateway.decode import chumphae_band as band
from gateway.decode import rawstream
from gateway.simulate import motion
from tests.gateway.builders import T0

Notify = Callable[[Any, bytearray], None]


class RecordedBand:
    """Second k of the recording is heard at T0 + k s; its samples reach subscribers then."""

    def __init__(self, address: str, key: bytes, t: NDArray[np.float64], xyz_g: NDArray[np.float64], hz: float,
                 history_s: float = 10.0) -> None:
        order = np.argsort(t, kind="stable")
        self.address, self.key, self.hz = address, key, hz
        self.t, self.xyz = t[order] - t[order][0], xyz_g[order]
        self.seconds = int(self.t[-1]) + 1
        self.history_s = history_s
        self.subscribers: list[Notify] = []
        self.sent: list[tuple[int, NDArray[np.int16]]] = []  # (t0 ms, block) in the order taken
        self.seq = 0
        self.block = max(1, int(hz // 2))
        self.connects = 0
        self.fail_connect: BaseException | None = None
        self.drop_every = 0  # lose every n-th notification on the air (0: none)

    def wall(self, k: float) -> datetime:
        return T0 + timedelta(seconds=k)

    def second(self, k: int) -> Advert | None:
        """Take second k's samples (sending them to subscribers); its advert, or None if empty."""
        sel = (self.t >= k) & (self.t < k + 1)
        if not sel.any():
            return None
        ts, xyz = self.t[sel], self.xyz[sel]
        mg = np.round(xyz * 1000).astype(np.int16)
        for i in range(0, len(ts), self.block):
            blk = (round(float(ts[i]) * 1000), mg[i : i + self.block])
            self.sent.append(blk)
            for cb in list(self.subscribers):
                self._notify(cb, *blk)
        summary = motion.summarise([tuple(map(float, r)) for r in xyz])  # type: ignore[misc]
        frame = band.encode(self.address, self.key, band.BandState(seq=1000 + k, motion=summary))
        return Advert(self.address, -65, "local", self.wall(k + 1), float(k + 1), {band.COMPANY_ID: frame})

    def _notify(self, cb: Notify, t0_ms: int, mg: NDArray[np.int16]) -> None:
        self.seq += 1
        if self.drop_every and self.seq % self.drop_every == 0:
            return
        cb(None, bytearray(rawstream.encode(self.seq, t0_ms, self.hz, mg)))

    # -- BleakClient's protocol ----------------------------------------------------
    def client(self, address: str) -> RecordedBand.Client:
        assert address == self.address
        return RecordedBand.Client(self)

    class Client:
        def __init__(self, band: RecordedBand) -> None:
            self.band = band
            self.cb: Notify | None = None

        async def connect(self) -> bool:
            await asyncio.sleep(0)
            if self.band.fail_connect is not None:
                raise self.band.fail_connect
            self.band.connects += 1
            return True

        async def start_notify(self, char_specifier: str, callback: Notify) -> None:
            assert char_specifier == rawstream.CHAR_UUID
            newest = self.band.sent[-1][0] if self.band.sent else 0
            for t0, mg in self.band.sent:
                if t0 >= newest - self.band.history_s * 1000:
                    self.band._notify(callback, t0, mg)
            self.cb = callback
            self.band.subscribers.append(callback)

        async def disconnect(self) -> bool:
            if self.cb in self.band.subscribers:
                self.band.subscribers.remove(self.cb)
            return True
