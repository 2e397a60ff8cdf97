"""The locate step: RSSI sightings from several receivers → a Position with an uncertainty and a region.

Outdoors in a village with a handful of receivers, metres are a hope and
zones are the truth: every position carries an uncertainty disc and the
region of places it may be, and a walking person's motion model ties one
second to the next (`gateway.track`).

Per band and receiver we keep the last `window_s` of RSSI. Each estimate
turns that window into evidence (`_evidence`): each receiver that heard the
band says "the median RSSI is P1m − 10 n log10 d, give or take σ" (σ: what a
15 s median leaves of per-packet noise, plus the slow part: shadowing,
calibration, model error); a receiver that heard fewer than half of the
band's packets says "the median is below my sensitivity"; each live receiver
that did *not* hear it says "the band is probably beyond my range". The
band's particle track (`gateway.track.Track`) walks forward to now (≤ 2 m/s)
and is weighted by that evidence. The Position's centre is the track's
(never further from the last one than a person could walk), its `region` the
cells holding `region_mass` (95 %) of the track, and `uncertainty_m` the
disc around the centre covering them. So one receiver hearing the band at
−98 dBm gives a ring 40–120 m out, not "at the receiver ± 70 m", and the
matcher can say "wholly outside" when every cell of the ring is outside the
zone; a still patient's region shrinks as the seconds add evidence.

`estimate_many` estimates a tick's bands at once: their windows one by one,
their tracks stepped in one batch (`track.step_many`); each band's track has
its own random stream (seeded from the locator's seed and the address), so a
band's Position does not depend on which bands share its batch.

Nobody heard the band for `coverage_timeout_s`: one "out of coverage"
position at the last place, the likeliest one with its uncertainty.

A GPS fix (`Fix`) goes through `locate_fix` and comes out as the same
Position with the fix's own accuracy.
"""

from __future__ import annotations

import hashlib
import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from operator import itemgetter

import numpy as np

from chumphae.values import Position, PositionSource
from gateway import track
from gateway.siteconfig import Receiver
from gateway.track import Track

M_PER_DEG_LAT = 110_574.0
MIN_UNCERTAINTY_M = 5.0
SIGMA_FAST_DB = 4.0  # per-packet RSSI scatter (multipath, the body): a median of k packets keeps ~σ/√k
SIGMA_SLOW_DB = 3.5  # what a 15 s median keeps: shadowing, receiver calibration, path-loss model error
SENSITIVITY_DBM = -100.0  # weakest packet a receiver reports (ESP32 / BlueZ adapters: −95 … −100)
REGION_MASS = 0.95  # share of the likelihood the region holds
MAX_RANGE_M = 300.0  # no BLE band is heard further than this (heard: at least half its packets)
# A faint receiver (fewer than half the packets) may have caught one stray packet from much further: while
# another receiver hears the band (and bounds it), a faint one's reach is where a packet must be this many
# per-packet σ above its expected RSSI to reach the sensitivity (wander-19); heard only faintly, MAX_RANGE_M
FAINT_REACH_Z = 0.0  # 0 (the default): MAX_RANGE_M always; 4.0: wander-19's rule (tried, not shipped)
# wander-21, narrower: only a row of ONE packet in the window (heard or faint), from a receiver farther from every
# receiver that hears the band well (>= half its packets, >= 2 packets) than that receiver's reach, becomes a
# faint row with this many per-packet σ of reach (no 300 m wall, out of the search box); everything else as main
STRAY_REACH_Z = 0.0  # 0 (the default): off, main's rows; 4.0: wander-21's rule (met its check, lost on the report seeds)
RECEIVER_ALIVE_S = 600.0  # a receiver that heard any band this recently counts when it hears nothing

_rssi = itemgetter(1)  # of a (monotonic time, rssi) sample


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
    return max(0.5, float(10.0 ** ((p1m_dbm - rssi) / (10.0 * n))))


@dataclass(slots=True)
class _Band:
    samples: dict[str, deque[tuple[float, float]]] = field(default_factory=dict)  # receiver → (mono, rssi)
    last_heard: float = -math.inf
    last_t: datetime | None = None
    anchor: str | None = None
    last: Position | None = None
    out_reported: bool = False
    full: int = 0  # the most packets of this band any receiver heard in one window
    track: Track | None = None  # the particle cloud (gateway.track)
    rng: np.random.Generator | None = None  # the track's own random stream


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
        seed: int = 0,
    ) -> None:
        self.receivers = {r.id: r for r in receivers}
        self.window_s = window_s
        self.coverage_timeout_s = coverage_timeout_s
        self.max_samples = max_samples
        self.sensitivity_dbm = sensitivity_dbm
        self.region_mass = region_mass
        self._rx_alive: dict[str, float] = {}  # receiver → monotonic time it last heard any band
        self._rx_full: dict[str, int] = {}  # receiver → the most packets of one band it heard in a window
        lat0 = sum(r.lat for r in receivers) / len(receivers) if receivers else 0.0
        lon0 = sum(r.lon for r in receivers) / len(receivers) if receivers else 0.0
        self._origin = (lat0, lon0)
        self._m_per_deg_lon = M_PER_DEG_LAT * math.cos(math.radians(lat0))
        self._xy = {r.id: self._to_xy(r.lat, r.lon) for r in receivers}
        self._rx_index = {r.id: i for i, r in enumerate(receivers)}
        self._rx_x = np.array([self._xy[r.id][0] for r in receivers], dtype=float)
        self._rx_y = np.array([self._xy[r.id][1] for r in receivers], dtype=float)
        self._rx_p1m = np.array([r.p1m_dbm for r in receivers], dtype=float)
        self._rx_n = np.array([r.path_loss_n for r in receivers], dtype=float)
        self.seed = seed
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
        """Where the band is now: the track moved to `now` and weighted by the last window's evidence."""
        return self.estimate_many([address], now)[0]

    def estimate_many(self, addresses: Sequence[str], now: float) -> list[Position | None]:
        """`estimate` for several bands at once (None where a band has nothing in its window): the
        windows made band by band in that order, then every track stepped in one batch
        (`track.step_many`). Each band's track draws from its own random stream (seeded from the
        locator's seed and the address), so a band's Position is the same whichever bands share
        its batch."""
        out: list[Position | None] = [None] * len(addresses)
        due: list[tuple[int, _Band, int]] = []  # (place in `addresses`, band, receivers that heard it)
        rows: list[tuple[int, int, float, float, float]] = []
        sizes: list[int] = []
        boxes: list[tuple[float, float, float, float]] = []
        for i, address in enumerate(addresses):
            b = self._bands.get(address)
            if b is None or b.last_t is None:
                continue
            counts = self._window(b, now)
            if not counts:
                continue
            r, box = self._rows(b, counts, now)
            rows += r
            sizes.append(len(r))
            boxes.append(box)
            due.append((i, b, len(counts)))
        if not due:
            return out
        ev = self._stack(rows, sizes, boxes)
        tracks = track.step_many([b.track for _i, b, _h in due], ev, now,
                                 [self._rng_for(addresses[i], b) for i, b, _h in due])
        for (i, b, heard), tr in zip(due, tracks, strict=True):
            b.track = tr
            out[i] = self._position(addresses[i], b, heard)
        return out

    def _window(self, b: _Band, now: float) -> dict[str, list[float]]:
        """receiver → the RSSIs it heard of the band in the last `window_s`, loudest first (older ones dropped)."""
        cutoff = now - self.window_s
        counts: dict[str, list[float]] = {}  # receiver → the RSSIs it heard in the window
        for rid, q in b.samples.items():
            while q and q[0][0] < cutoff:
                q.popleft()
            if q:
                counts[rid] = sorted(map(_rssi, q), reverse=True)
        return counts

    def _rng_for(self, address: str, b: _Band) -> np.random.Generator:
        if b.rng is None:
            key = int.from_bytes(hashlib.blake2b(address.encode(), digest_size=8).digest(), "little")
            b.rng = np.random.default_rng((self.seed, key))
        return b.rng

    def _position(self, address: str, b: _Band, heard: int) -> Position:
        """The band's Position from its track: the centre, the region's cells, the disc around them."""
        assert b.track is not None and b.last_t is not None
        est = track.estimate(b.track, self.region_mass)
        lat, lon = self._to_latlon(est.cx, est.cy)
        lats = self._origin[0] + est.cells_y / M_PER_DEG_LAT
        lons = self._origin[1] + est.cells_x / self._m_per_deg_lon
        k = len(lats)
        cells = np.round(np.concatenate((lats, lons)), 7).tolist()  # one rounding pass for both
        region = tuple(zip(cells[:k], cells[k:], strict=True))
        pos = Position(address, b.last_t, lat, lon, round(max(MIN_UNCERTAINTY_M, est.uncertainty_m), 1),
                       PositionSource.BLE, heard, True, region=region, region_cell_m=round(est.cell_m, 2),
                       region_weights=tuple(np.round(est.cell_w, 5).tolist()), passages=track.passages(b.track))
        b.last = pos
        return pos

    # -- the evidence -----------------------------------------------------------
    def _rows(self, b: _Band, counts: dict[str, list[float]],
              now: float) -> tuple[list[tuple[int, int, float, float, float]], tuple[float, float, float, float]]:
        """One window of RSSI as rows for the track's evidence (`_stack`, `track.Stack`): per
        receiver (index, kind, median, σ, reach), heard then faint then quiet; and the search box.

        The median is taken over every packet the band sent in the window, heard or not: a
        receiver that heard fewer than half of them says "median below my sensitivity", which
        is what a band 150 m away, caught now and then at −99 dBm, really tells. How many packets
        a window holds is learnt, not configured: the most a receiver has heard of this band in
        one window (so a scanner's duty cycle or a band's advertising interval is part of it),
        capped per receiver by the most that receiver ever heard of any band. Live receivers that
        did not hear the band at all say "probably beyond my range" (one packet's σ: lenient); a
        receiver silent for `RECEIVER_ALIVE_S` may be dead and says nothing.

        Also sets the band's anchor (the receiver with the loudest median)."""
        most = max(len(v) for v in counts.values())
        b.full = max(b.full, most)
        rows: list[tuple[int, int, float, float, float]] = []  # receiver index, kind, median, σ, reach
        box: list[tuple[float, float, float]] = []  # x, y, reach of each receiver that heard it
        faint_box: list[tuple[float, float, float]] = []
        faint_reach: list[float] = []  # each faint row's reach when some receiver heard the band (wander-19)
        single: list[tuple[int, int, str, float, float, float]] = []  # one-packet rows: row, box index, receiver, x, y, σ
        well: list[tuple[float, float, float]] = []  # x, y, reach of each receiver that heard >= 2 and >= half
        anchor, loudest = None, -math.inf
        for rid, heard in counts.items():
            i = self._rx_index[rid]
            r = self.receivers[rid]
            vals = heard  # loudest first (`_window`)
            m = len(vals)
            plain = vals[m // 2] if m % 2 else (vals[m // 2 - 1] + vals[m // 2]) / 2.0  # median(heard)
            if plain > loudest:
                anchor, loudest = rid, plain
            full = self._rx_full[rid] = max(self._rx_full.get(rid, 0), len(vals))
            n_sent = max(len(vals), min(b.full, full))
            sigma = math.sqrt(SIGMA_SLOW_DB**2 + SIGMA_FAST_DB**2 / n_sent)
            x, y = self._xy[rid]
            if STRAY_REACH_Z > 0.0 and m == 1:
                single.append((len(rows), len(box), rid, x, y, sigma))
            if 2 * len(vals) < n_sent:
                rows.append((i, 1, 0.0, sigma, MAX_RANGE_M))
                if FAINT_REACH_Z > 0.0:
                    faint_reach.append(self._faint_reach(r))
                faint_box.append((x, y, MAX_RANGE_M))
                continue
            med = vals[(n_sent - 1) // 2]  # the median of all n_sent packets (the unheard were weaker)
            reach = min(MAX_RANGE_M, rssi_to_distance(med - 3.0 * sigma, r.p1m_dbm, r.path_loss_n))
            rows.append((i, 0, med, sigma, max(5.0, reach)))
            box.append((x, y, max(5.0, reach)))
            if STRAY_REACH_Z > 0.0 and m >= 2:
                well.append((x, y, max(5.0, reach)))
        if box and faint_reach and FAINT_REACH_Z > 0.0:  # a receiver heard it: its own reach bounds the band, not a faint one's
            reach_of = iter(faint_reach)
            rows = [(i, k, m, s, next(reach_of)) if k == 1 else (i, k, m, s, rc) for i, k, m, s, rc in rows]
        if single and well:  # wander-21: a far receiver's lone packet while others hear the band well
            box = self._strays(rows, box, single, well)
        quiet_sigma = math.hypot(SIGMA_SLOW_DB, SIGMA_FAST_DB)
        for rid, i in self._rx_index.items():
            if rid not in counts and now - self._rx_alive.get(rid, -math.inf) <= RECEIVER_ALIVE_S:
                rows.append((i, 2, 0.0, quiet_sigma, math.inf))
        hb = box or faint_box
        x0, x1 = max(x - R for x, _y, R in hb), min(x + R for x, _y, R in hb)
        y0, y1 = max(y - R for _x, y, R in hb), min(y + R for _x, y, R in hb)
        if x0 >= x1 or y0 >= y1:  # the 3σ ranges do not overlap: their union
            x0, x1 = min(x - R for x, _y, R in hb), max(x + R for x, _y, R in hb)
            y0, y1 = min(y - R for _x, y, R in hb), max(y + R for _x, y, R in hb)
        b.anchor = anchor
        rows.sort(key=lambda r: r[1])  # heard, faint, quiet (`track.stack` wants them so)
        return rows, (x0, x1, y0, y1)

    def _strays(self, rows: list[tuple[int, int, float, float, float]], box: list[tuple[float, float, float]],
                single: list[tuple[int, int, str, float, float, float]],
                well: list[tuple[float, float, float]]) -> list[tuple[float, float, float]]:
        """wander-21: each row of `single` (one packet in the window) whose receiver lies beyond the reach of
        every receiver in `well` becomes, in place in `rows`, a faint row whose reach is where a packet must be
        `STRAY_REACH_Z` per-packet σ above its expected RSSI to reach the sensitivity (no `MAX_RANGE_M`
        wall); a heard one leaves the search box. Returns the search box's entries."""
        dropped: set[int] = set()
        for k, j, rid, x, y, sigma in single:
            if all(math.hypot(x - wx, y - wy) > wr for wx, wy, wr in well):
                i, kind = rows[k][0], rows[k][1]
                rows[k] = (i, 1, 0.0, sigma, self._faint_reach(self.receivers[rid], STRAY_REACH_Z))
                if kind == 0:
                    dropped.add(j)
        return [e for j, e in enumerate(box) if j not in dropped] if dropped else box

    def _faint_reach(self, r: Receiver, z: float | None = None) -> float:
        """How far a receiver that heard the band only faintly may be from it while another receiver hears
        the band (wander-19): a single stray packet (−99 dBm from 360 m: 3 per-packet σ above its expected
        RSSI) happens every few minutes among a site's receivers, and MAX_RANGE_M's soft wall made it drag
        the whole cloud across the road. A band heard only faintly keeps MAX_RANGE_M: those walls are all
        that bounds it. `z` (default `FAINT_REACH_Z`): the σ of luck; wander-21's lone packets use `STRAY_REACH_Z`."""
        z = FAINT_REACH_Z if z is None else z
        if z <= 0.0:
            return MAX_RANGE_M
        at = self.sensitivity_dbm - z * math.hypot(SIGMA_SLOW_DB, SIGMA_FAST_DB)
        return max(MAX_RANGE_M, rssi_to_distance(at, r.p1m_dbm, r.path_loss_n))

    def _stack(self, rows: list[tuple[int, int, float, float, float]], sizes: list[int],
               boxes: list[tuple[float, float, float, float]]) -> track.Stack:
        """The rows of `_rows` of several bands (`sizes[j]` rows for band j, one after the other) as
        the likelihood's arrays (`track.Stack`)."""
        ia = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        cols = np.array([r[1:] for r in rows], dtype=float)
        return track.stack(sizes, self._rx_x[ia], self._rx_y[ia], self._rx_p1m[ia], self._rx_n[ia],
                           cols[:, 0].astype(np.int8), cols[:, 1], cols[:, 2], cols[:, 3], self.sensitivity_dbm, boxes)

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
