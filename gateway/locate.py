"""The locate step: RSSI sightings from several receivers → a Position with an uncertainty.

Outdoors in a village with a handful of receivers, metres are a hope and
zones are the truth: every position carries an uncertainty radius, and with
fewer than three receivers we only say "near receiver X".

Per band and receiver we keep the last `window_s` of RSSI, reject outliers
by IQR and take the median (ESPresense's approach), turn it into a distance
with the receiver's own log-distance calibration, then

* ≥ 3 receivers: weighted least-squares multilateration (Gauss-Newton from
  the weighted centroid), uncertainty from residuals and ranging error;
* 1–2 receivers: proximity to the nearest receiver, which only changes when
  another is 30 % nearer (Bermuda's margin), so a patient sitting between
  two receivers does not flap;
* nobody for `coverage_timeout_s`: one "out of coverage" position at the
  last known place.

The uncertainty is not a formula of the residuals: it comes from a likelihood
over a grid of candidate places (`_region`). Each receiver that heard the
band says "the median RSSI is P1m − 10 n log10 d, give or take σ" (σ: what a
15 s median leaves of per-packet noise, plus the slow part: shadowing,
calibration, model error); each live receiver that did *not* hear it says
"the band is probably beyond my range" (RSSI below the receiver's
sensitivity). The cells holding `region_mass` (95 %) of the probability are
the Position's `region`; the reported disc is the smallest one around the
centre that covers them. So one receiver hearing the band at −98 dBm gives a
ring 40–120 m out, not "at the receiver ± 70 m", and the matcher can say
"wholly outside" when every cell of the ring is outside the zone.

A GPS fix (`Fix`) goes through `locate_fix` and comes out as the same
Position with the fix's own accuracy.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from chumphae.values import Position, PositionSource
from gateway.siteconfig import Receiver

M_PER_DEG_LAT = 110_574.0
RANGE_ERROR = 0.35  # relative distance error of log-distance ranging at ~4 dB RSSI noise
MIN_UNCERTAINTY_M = 5.0
HYSTERESIS = 0.30
SIGMA_FAST_DB = 4.0  # per-packet RSSI scatter (multipath, the body): a median of k packets keeps ~σ/√k
SIGMA_SLOW_DB = 3.5  # what a 15 s median keeps: shadowing, receiver calibration, path-loss model error
SENSITIVITY_DBM = -100.0  # weakest packet a receiver reports (ESP32 / BlueZ adapters: −95 … −100)
REGION_MASS = 0.95  # share of the likelihood the region holds
GRID_CELLS = 80  # cells per side of the search box
MAX_RANGE_M = 300.0  # no BLE band is heard further than this
RECEIVER_ALIVE_S = 600.0  # a receiver that heard any band this recently counts when it hears nothing


@dataclass(frozen=True, slots=True)
class Fix:
    """A position a source measured itself (GPS on a phone or a GPS band)."""

    address: str
    t: datetime
    lat: float
    lon: float
    accuracy_m: float
    source: PositionSource = PositionSource.GPS


def median(xs: Sequence[float]) -> float:
    s = sorted(xs)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2.0


def robust_rssi(samples: Iterable[float]) -> float:
    """Median after dropping points outside 1.5 IQR (a body between band and antenna, a reflection)."""
    s = sorted(samples)
    n = len(s)
    if n < 4:
        return median(s)
    q1, q3 = s[n // 4], s[(3 * n) // 4]
    lo, hi = q1 - 1.5 * (q3 - q1), q3 + 1.5 * (q3 - q1)
    kept = [x for x in s if lo <= x <= hi]
    return median(kept or s)


def rssi_to_distance(rssi: float, p1m_dbm: float, n: float) -> float:
    """Log-distance path loss: d = 10^((P1m − RSSI) / (10 n)), at least 0.5 m."""
    return max(0.5, 10.0 ** ((p1m_dbm - rssi) / (10.0 * n)))


@dataclass(slots=True)
class _Band:
    samples: dict[str, deque[tuple[float, float]]] = field(default_factory=dict)  # receiver → (mono, rssi)
    last_heard: float = -math.inf
    last_t: datetime | None = None
    anchor: str | None = None
    last: Position | None = None
    out_reported: bool = False
    full: int = 0  # the most packets of this band any receiver heard in one window


def _log_phi(z: np.ndarray) -> np.ndarray:
    """log Φ(z), logistic approximation (1.702 z): heavier tails than the normal, so on the lenient side."""
    return -np.logaddexp(0.0, -1.702 * z)  # type: ignore[no-any-return]


class Locator:
    """Stateful per band; pure arithmetic inside. `now` is a monotonic clock in seconds."""

    def __init__(
        self,
        receivers: Sequence[Receiver],
        window_s: float = 15.0,
        coverage_timeout_s: float = 60.0,
        max_samples: int = 64,
        sensitivity_dbm: float = SENSITIVITY_DBM,
        region_mass: float = REGION_MASS,
    ) -> None:
        self.receivers = {r.id: r for r in receivers}
        self.window_s = window_s
        self.coverage_timeout_s = coverage_timeout_s
        self.max_samples = max_samples
        self.sensitivity_dbm = sensitivity_dbm
        self.region_mass = region_mass
        self._rx_alive: dict[str, float] = {}
        self._rx_full: dict[str, int] = {}  # receiver → the most packets of one band it heard in a window  # receiver → monotonic time it last heard any band
        lat0 = sum(r.lat for r in receivers) / len(receivers) if receivers else 0.0
        lon0 = sum(r.lon for r in receivers) / len(receivers) if receivers else 0.0
        self._origin = (lat0, lon0)
        self._m_per_deg_lon = M_PER_DEG_LAT * math.cos(math.radians(lat0))
        self._xy = {r.id: self._to_xy(r.lat, r.lon) for r in receivers}
        self._bands: dict[str, _Band] = {}

    def _to_xy(self, lat: float, lon: float) -> tuple[float, float]:
        return ((lon - self._origin[1]) * self._m_per_deg_lon, (lat - self._origin[0]) * M_PER_DEG_LAT)

    def _to_latlon(self, x: float, y: float) -> tuple[float, float]:
        return (self._origin[0] + y / M_PER_DEG_LAT, self._origin[1] + x / self._m_per_deg_lon)

    def observe(self, address: str, receiver: str, rssi: float, t: datetime, now: float) -> bool:
        """Record one sighting. False if the receiver is unknown (not calibrated: not used)."""
        if receiver not in self.receivers:
            return False
        b = self._bands.get(address)
        if b is None:
            b = self._bands[address] = _Band()
        q = b.samples.get(receiver)
        if q is None:
            q = b.samples[receiver] = deque(maxlen=self.max_samples)
        q.append((now, float(rssi)))
        self._rx_alive[receiver] = max(now, self._rx_alive.get(receiver, -math.inf))
        b.last_heard = now
        b.last_t = t
        b.out_reported = False
        return True

    def estimate(self, address: str, now: float) -> Position | None:
        """Where the band is now, from the sightings of the last window; None if none."""
        b = self._bands.get(address)
        if b is None or b.last_t is None:
            return None
        cutoff = now - self.window_s
        ranges: list[tuple[str, float, float]] = []  # receiver, filtered rssi, distance
        counts: dict[str, list[float]] = {}  # receiver → the RSSIs it heard in the window
        for rid, q in b.samples.items():
            while q and q[0][0] < cutoff:
                q.popleft()
            if q:
                r = self.receivers[rid]
                rssi = robust_rssi(s for _t, s in q)
                ranges.append((rid, rssi, rssi_to_distance(rssi, r.p1m_dbm, r.path_loss_n)))
                counts[rid] = [v for _t, v in q]
        if not ranges:
            return None
        pos = self._multilaterate(address, b, ranges) if len(ranges) >= 3 else self._proximity(address, b, ranges)
        pos = self._with_region(b, pos, ranges, counts, now, centre_from_region=len(ranges) >= 3)
        b.last = pos
        return pos

    # -- the likelihood region ------------------------------------------------
    def _region(self, b: _Band, ranges: list[tuple[str, float, float]], counts: dict[str, list[float]],
                now: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, float] | None:
        """Grid cells (x, y, probability) holding `region_mass` of the likelihood, and the cell size.

        The median is taken over every packet the band sent in the window, heard or not: a
        receiver that heard fewer than half of them says "median below my sensitivity", which
        is what a band 150 m away, caught now and then at −99 dBm, really tells. How many packets
        a window holds is learnt, not configured: the most a receiver has heard of this band in
        one window (so a scanner's duty cycle or a band's advertising interval is part of it),
        capped per receiver by the most that receiver ever heard of any band."""
        most = max(len(v) for v in counts.values())
        b.full = max(b.full, most)
        heard = []  # uncensored: (xy, p1m, n, median, sigma, reach)
        faint = []  # censored: (xy, p1m, n, sigma): the median is below the sensitivity
        for rid, _rssi, _d in ranges:
            r = self.receivers[rid]
            vals = sorted(counts[rid], reverse=True)
            self._rx_full[rid] = max(self._rx_full.get(rid, 0), len(vals))
            n_sent = max(len(vals), min(b.full, self._rx_full[rid]))
            sigma = math.sqrt(SIGMA_SLOW_DB**2 + SIGMA_FAST_DB**2 / n_sent)
            if 2 * len(vals) < n_sent:
                faint.append((self._xy[rid], r.p1m_dbm, r.path_loss_n, sigma))
                continue
            rssi = vals[(n_sent - 1) // 2]  # the median of all n_sent packets (the unheard were weaker)
            reach = min(MAX_RANGE_M, rssi_to_distance(rssi - 3.0 * sigma, r.p1m_dbm, r.path_loss_n))
            heard.append((self._xy[rid], r.p1m_dbm, r.path_loss_n, rssi, sigma, max(5.0, reach)))
        if not heard:  # only faint receivers: somewhere within range of them
            heard_box = [(p, MAX_RANGE_M) for p, *_m in faint]
        else:
            heard_box = [(p, R) for p, *_m, R in heard]
        # search box: where every hearing receiver's 3σ range overlaps (else their union)
        x0 = max(p[0] - R for p, R in heard_box)
        x1 = min(p[0] + R for p, R in heard_box)
        y0 = max(p[1] - R for p, R in heard_box)
        y1 = min(p[1] + R for p, R in heard_box)
        if x0 >= x1 or y0 >= y1:
            x0 = min(p[0] - R for p, R in heard_box)
            x1 = max(p[0] + R for p, R in heard_box)
            y0 = min(p[1] - R for p, R in heard_box)
            y1 = max(p[1] + R for p, R in heard_box)
        cell = max(1.0, max(x1 - x0, y1 - y0) / GRID_CELLS)
        gx = np.arange(x0 + cell / 2, x1, cell)
        gy = np.arange(y0 + cell / 2, y1, cell)
        if not len(gx) or not len(gy):
            return None
        X, Y = np.meshgrid(gx, gy)
        X, Y = X.ravel(), Y.ravel()
        ll = np.zeros(X.shape)
        for (rx, ry), p1m, n, rssi, sigma, _reach in heard:
            mu = p1m - 10.0 * n * np.log10(np.maximum(0.5, np.hypot(X - rx, Y - ry)))
            ll -= 0.5 * ((rssi - mu) / sigma) ** 2
        for (rx, ry), p1m, n, sigma in faint:
            mu = p1m - 10.0 * n * np.log10(np.maximum(0.5, np.hypot(X - rx, Y - ry)))
            ll += _log_phi((self.sensitivity_dbm - mu) / sigma)
        names = {rid for rid, _r, _d in ranges}
        quiet_sigma = math.hypot(SIGMA_SLOW_DB, SIGMA_FAST_DB)  # one packet's worth: the lenient side
        for rid, r in self.receivers.items():
            if rid in names or now - self._rx_alive.get(rid, -math.inf) > RECEIVER_ALIVE_S:
                continue  # heard it, or maybe dead: a dead receiver must not push the band away
            rx, ry = self._xy[rid]
            mu = r.p1m_dbm - 10.0 * r.path_loss_n * np.log10(np.maximum(0.5, np.hypot(X - rx, Y - ry)))
            ll += _log_phi((self.sensitivity_dbm - mu) / quiet_sigma)
        w = np.exp(ll - ll.max())
        w /= w.sum()
        order = np.argsort(-w)
        k = int(np.searchsorted(np.cumsum(w[order]), self.region_mass)) + 1
        keep = order[:k]
        return X[keep], Y[keep], w[keep], cell

    def _with_region(self, b: _Band, pos: Position, ranges: list[tuple[str, float, float]],
                     counts: dict[str, list[float]],
                     now: float, *, centre_from_region: bool) -> Position:
        """The position with its region; the disc grown (never shrunk below the old one's floor) to cover it."""
        got = self._region(b, ranges, counts, now)
        if got is None:
            return pos
        xs, ys, w, cell = got
        if centre_from_region:
            cx, cy = float(np.dot(xs, w) / w.sum()), float(np.dot(ys, w) / w.sum())
            lat, lon = self._to_latlon(cx, cy)
        else:
            lat, lon = pos.lat, pos.lon
            cx, cy = self._to_xy(lat, lon)
        reach = float(np.max(np.hypot(xs - cx, ys - cy))) + cell * math.sqrt(0.5)
        unc = max(MIN_UNCERTAINTY_M, reach)
        lats = self._origin[0] + ys / M_PER_DEG_LAT
        lons = self._origin[1] + xs / self._m_per_deg_lon
        region = tuple(zip(np.round(lats, 7).tolist(), np.round(lons, 7).tolist(), strict=True))
        return Position(pos.address, pos.t, lat, lon, round(unc, 1), pos.source, pos.receivers, pos.in_coverage,
                        region=region, region_cell_m=round(cell, 2))

    def _proximity(self, address: str, b: _Band, ranges: list[tuple[str, float, float]]) -> Position:
        best = min(ranges, key=lambda r: r[2])
        current = next((r for r in ranges if r[0] == b.anchor), None)
        if current is None or best[2] < (1.0 - HYSTERESIS) * current[2]:
            current = best
        b.anchor = current[0]
        rx = self.receivers[current[0]]
        unc = max(MIN_UNCERTAINTY_M, current[2] * (1.0 + RANGE_ERROR))
        assert b.last_t is not None
        return Position(address, b.last_t, rx.lat, rx.lon, round(unc, 1), PositionSource.BLE, len(ranges), True)

    def _multilaterate(self, address: str, b: _Band, ranges: list[tuple[str, float, float]]) -> Position:
        pts = [(self._xy[rid], d) for rid, _rssi, d in ranges]
        w = [1.0 / (d * d) for _p, d in pts]
        sw = sum(w)
        x = sum(wi * p[0] for wi, (p, _d) in zip(w, pts, strict=True)) / sw
        y = sum(wi * p[1] for wi, (p, _d) in zip(w, pts, strict=True)) / sw
        for _ in range(8):  # Gauss-Newton on Σ w (|p − r_i| − d_i)²
            a11 = a12 = a22 = g1 = g2 = 0.0
            for wi, ((rx, ry), d) in zip(w, pts, strict=True):
                dx, dy = x - rx, y - ry
                dist = math.hypot(dx, dy) or 1e-6
                ux, uy = dx / dist, dy / dist
                res = dist - d
                a11 += wi * ux * ux
                a12 += wi * ux * uy
                a22 += wi * uy * uy
                g1 += wi * ux * res
                g2 += wi * uy * res
            det = a11 * a22 - a12 * a12
            if abs(det) < 1e-12:
                break
            sx = (a22 * g1 - a12 * g2) / det
            sy = (a11 * g2 - a12 * g1) / det
            x, y = x - sx, y - sy
            if sx * sx + sy * sy < 0.01:
                break
        res2 = [(math.hypot(x - rx, y - ry) - d) ** 2 for (rx, ry), d in pts]
        rms = math.sqrt(sum(res2) / len(res2))
        dmin = min(d for _p, d in pts)
        unc = max(MIN_UNCERTAINTY_M, rms + RANGE_ERROR * dmin)
        b.anchor = min(ranges, key=lambda r: r[2])[0]
        lat, lon = self._to_latlon(x, y)
        assert b.last_t is not None
        return Position(address, b.last_t, lat, lon, round(unc, 1), PositionSource.BLE, len(ranges), True)

    def sweep(self, now: float) -> list[Position]:
        """Bands silent for `coverage_timeout_s`: one out-of-coverage position each, at the last place."""
        out = []
        for address, b in self._bands.items():
            if b.out_reported or now - b.last_heard < self.coverage_timeout_s or b.last is None:
                continue
            b.out_reported = True
            b.samples.clear()
            last = b.last
            out.append(
                Position(address, last.t, last.lat, last.lon, last.uncertainty_m, last.source, 0, in_coverage=False)
            )
        return out

    def locate_fix(self, fix: Fix, now: float) -> Position:
        """A GPS (or search-phone) fix becomes a Position with its own accuracy."""
        b = self._bands.get(fix.address)
        if b is None:
            b = self._bands[fix.address] = _Band()
        pos = Position(fix.address, fix.t, fix.lat, fix.lon, max(1.0, fix.accuracy_m), fix.source, 0, True)
        b.last, b.last_heard, b.last_t, b.out_reported = pos, now, fix.t, False
        return pos
