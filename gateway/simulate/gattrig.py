"""A GATT rig for the raw-stream fall path: a real wrist recording played as a band through the gateway.

`RecordedBand` plays a recording as a band would: its adverts (real band
frames, one per second, with the summary of that second) and its GATT side
(real raw-stream notifications, history first, then live) behind
BleakClient's small protocol (`gateway.gatt.GattClient`). `Rig` is a gateway
pipeline with the raw path, played second by second on a virtual clock.
Used by tests/gateway/test_gatt.py and scripts/eval_live_falls.py; reading
recordings needs `chumphae.detect` (the fall data helpers).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from chumphae.values import Advert
from gateway.decode import chumphae_band as band
from gateway.decode import rawstream
from gateway.gatt import RawPath, RawStreams
from gateway.pipeline import Pipeline
from gateway.queue import Outbox
from gateway.service import default_steps
from gateway.simulate import motion
from gateway.siteconfig import SiteConfig, parse

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("CHUMPHAE_FALLS_DATA", ROOT.parent / "shared" / "data" / "falls"))
ADDR = "C0:FF:EE:00:00:01"
KEY = bytes.fromhex("00112233445566778899aabbccddeeff")
T0 = datetime(2025, 6, 1, 13, 0, 0, tzinfo=UTC)  # second 0 of a played recording, wall clock

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


def site() -> SiteConfig:
    """One receiver and one band (ADDR, KEY) worn by patient 1."""
    return parse({"site_id": "t", "receivers": [{"id": "local", "lat": 16.5442, "lon": 102.0997}],
                  "bands": [{"address": ADDR, "key_hex": KEY.hex(), "patient_id": 1}],
                  "patients": [{"id": 1}]})


def recorded(set_: str, name: str, hz: float, data: Path | None = None) -> RecordedBand:
    """A trial of `data` (default DATA) after 10 s of stillness at its first orientation, and 15 s of it at its last."""
    from chumphae.detect.fall_data import pad_still, trial_seed
    from chumphae.detect.recordings import read_recording

    rec = read_recording((data or DATA) / set_ / f"{name}.csv")
    order = np.argsort(rec.t, kind="stable")
    t, xyz = rec.t[order], rec.xyz[order]
    t, xyz = pad_still(t, xyz, hz, seed=trial_seed(name))
    pre_t, pre = pad_still(-t[::-1], xyz[::-1], hz, seconds=10.0, seed=1)  # the same, backwards in time
    return RecordedBand(ADDR, KEY, -pre_t[::-1], pre[::-1], hz)


class Rig:
    """A pipeline with the raw path, played second by second on a virtual clock."""

    def __init__(self, band: RecordedBand, tmp: Path, **streams: Any) -> None:
        cfg = site()
        matcher, detector = default_steps(cfg)
        self.outbox = Outbox(tmp / "outbox.sqlite3")
        self.pipe = Pipeline(cfg, self.outbox, matcher, detector)
        self.band = band
        self.k = 0
        self.raw = RawPath(lambda on_verdict: RawStreams(band.client, on_verdict, wall=lambda: band.wall(self.k),
                                                        **streams))
        self.raw.patient_for = cfg.patient_for
        self.raw.sink = self.pipe.emit
        self.pipe.raw = self.raw

    async def play(self) -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(self.raw.streams.run(stop))
        try:
            for k in range(self.band.seconds + 5):
                self.k = k + 1
                adv = self.band.second(k)
                if adv is not None:
                    self.pipe.handle(adv)
                for _ in range(5):  # let the sessions run, as the radio's pauses would
                    await asyncio.sleep(0)
                self.pipe.tick(float(k + 1), self.band.wall(k + 1))
        finally:
            stop.set()
            await task

    def alerts(self) -> list[dict[str, Any]]:
        """The alerts in the outbox, as the backend would get them."""
        try:
            return [json.loads(q.text)["body"] for q in self.outbox.pending(1000) if q.type == "alert"]
        finally:
            self.outbox.close()
