"""A gateway source the test drives: adverts pushed by the test, a tick every `tick_real_s`.

Its clock moves one second per tick (the pipeline's tick), and it can be iterated again after
the pipeline task restarted (state lives in the object, as the radio's does)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

from chumphae.values import Advert
from gateway.decode import chumphae_band as band
from tests.gateway.builders import T0, advert

ADDR = "C0:FF:EE:00:00:01"
KEY = bytes.fromhex("00112233445566778899aabbccddeeff")
SITE = {
    "site_id": "s1", "gateway_id": "gw1", "version": 1,
    "receivers": [{"id": "rx-a", "lat": 16.5442, "lon": 102.0997}, {"id": "rx-b", "lat": 16.5446, "lon": 102.1001}],
    "bands": [{"address": ADDR, "key_hex": KEY.hex(), "patient_id": 1}],
    "patients": [{"id": 1}],
}


class PushSource:
    def __init__(self, tick_real_s: float = 0.02) -> None:
        self.tick_real_s = tick_real_s
        self.now = 0.0
        self.queue: asyncio.Queue[Advert] = asyncio.Queue()
        self.seq = 0
        self.ticks = 0

    def clock(self) -> float:
        return self.now

    def wall(self) -> datetime:
        return T0 + timedelta(seconds=self.now)

    def push(self, *, sos: bool = False, receiver: str = "rx-a", rssi: int = -65) -> int:
        """One band frame with the next counter (heard by `receiver`); returns the counter."""
        self.seq += 1
        payload = band.encode(ADDR, KEY, band.BandState(seq=self.seq, sos=sos))
        self.queue.put_nowait(advert(address=ADDR, receiver=receiver, rssi=rssi, t=self.wall(),
                                     monotonic=self.now, manufacturer_data={band.COMPANY_ID: payload}))
        return self.seq

    async def __aiter__(self) -> AsyncIterator[Advert | None]:
        loop = asyncio.get_running_loop()
        next_tick = loop.time() + self.tick_real_s
        while True:
            wait = next_tick - loop.time()
            if wait <= 0:  # a second of the source's time passed, however busy the radio is
                next_tick = loop.time() + self.tick_real_s
                self.now += 1.0
                self.ticks += 1
                yield None
                continue
            with contextlib.suppress(TimeoutError):
                yield await asyncio.wait_for(self.queue.get(), wait)
