"""What a receiver hears: log-distance path loss, slow shadowing, fast noise, lost packets.

RSSI = P1m − 10 n log10(d) + S + N, with S a per-(band, receiver) shadowing
term that drifts slowly (walls, bodies, a parked truck: AR(1), correlation
time ~10 s) and N white noise per packet. Packets are lost at `drop_rate`
and whenever RSSI is below the receiver's sensitivity.
"""

from __future__ import annotations

import math
import random

from gateway.simulate.scenario import Radio

M_PER_DEG = 110_574.0


def distance_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    dy = (a[0] - b[0]) * M_PER_DEG
    dx = (a[1] - b[1]) * M_PER_DEG * math.cos(math.radians(a[0]))
    return math.hypot(dx, dy)


class RadioModel:
    def __init__(self, radio: Radio, rng: random.Random) -> None:
        self.r = radio
        self.rng = rng
        self._shadow: dict[tuple[str, str], float] = {}

    def rssi(self, band: str, receiver: str, d_m: float, dt_s: float = 1.0) -> int | None:
        """One packet's RSSI at the receiver, or None if it was not received."""
        key = (band, receiver)
        rho = math.exp(-dt_s / 10.0)
        s = self._shadow.get(key, self.rng.gauss(0, self.r.shadowing_db))
        s = rho * s + math.sqrt(1 - rho * rho) * self.rng.gauss(0, self.r.shadowing_db)
        self._shadow[key] = s
        if self.rng.random() < self.r.drop_rate:
            return None
        v = self.r.p1m_dbm - 10 * self.r.path_loss_n * math.log10(max(0.5, d_m)) + s + self.rng.gauss(0, self.r.noise_db)
        if v < self.r.sensitivity_dbm:
            return None
        return round(v)
