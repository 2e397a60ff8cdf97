"""A walking person's place over time: a particle filter over the RSSI likelihood.

`gateway.locate` turns one window of RSSI into *evidence* (`Evidence`: which
receivers heard the band and how loud, which heard it only faintly, which live
ones did not hear it at all). This module keeps, per band, a cloud of
particles (x, y, vx, vy in the site's local metres) and moves it with a
walking person's motion model between estimates:

* speed is at most `V_MAX` (2 m/s): each particle's velocity decays towards
  rest and is nudged by noise (an Ornstein–Uhlenbeck walk), then clipped, so
  a cloud can only travel as fast as a person walks;
* a few particles are redrawn from the current search box each step, so a
  track that went wrong (a band carried in a car, a receiver moved) recovers
  within a window or two instead of lagging for minutes;
* each estimate weights the particles by the evidence, *tempered* by
  `dt / TEMPER_S`: the 15 s medians of consecutive seconds share 14 s of
  packets, and the slow shadowing is the same, so a second of evidence is
  worth about a fifteenth of a window's, not a whole one (a still patient's
  region shrinks as evidence accumulates, but never on the same packets
  counted fifteen times).

The region (the cells holding `mass` of the weight) is a histogram of the
particles on square cells sized to the cloud, so the matcher's "every cell
clear of the zone" rule keeps working unchanged. The reported centre is the
weighted mean, moved at most `V_MAX · dt` (plus a metre) from the last one:
a position never jumps further than the patient could have walked; the disc
around it still covers the whole region.

All arithmetic is numpy over (receivers × particles); no Python loop per
particle. A step's one likelihood pass covers the moved cloud and the
recovery candidates together; the receivers come heard, faint, quiet, so
each set is a block of rows, not a masked copy. The likelihood runs in
float32 (numpy vectorises log and exp for it, not for float64 on every CPU);
a step draws its random numbers in a few whole-array calls.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

Arr = NDArray[np.float64]

V_MAX = 2.0  # m/s: a walking person, elderly, on a village road
N_PARTICLES = 512
VEL_DECAY_S = 6.0  # velocity memory (OU time constant): a walk keeps its heading for some seconds
VEL_SIGMA = 0.9  # m/s: stationary spread of each velocity component
TEMPER_S = 25.0  # seconds of evidence that make one independent window
INJECT = 0.02  # share of particles redrawn from this window's evidence alone each step
INJECT_WEIGHT = 0.5  # their prior weight relative to a tracked particle (a lost track is unlikely)
STILL_SHARE = 0.5  # share of particles that do not walk in a step (sitting, lying, standing)
STILL_JITTER = 0.1  # m/s
REINIT_S = 30.0  # a gap longer than this starts the track afresh from the evidence
INIT_CANDIDATES = 2048
INJECT_CANDIDATES = 64
REACH_SOFT_M = 10.0  # how softly a receiver's reach ends
CELL_SIZES = (5.0, 7.5, 10.0, 15.0, 20.0, 30.0, 40.0, 60.0, 80.0)
CELL_SPAN_DENSE = 4096  # cell grids up to this many cells are ranked with a dense table, wider ones sorted


@dataclass(slots=True)
class Evidence:
    """One window of RSSI, as arrays over the receivers that say something.

    kind: 0 heard (median `rssi` with `sigma`), 1 faint (median below the sensitivity),
    2 quiet (live receiver that did not hear the band: probably beyond its range)."""

    x: Arr
    y: Arr
    p1m: Arr
    n: Arr
    kind: NDArray[np.int8]
    rssi: Arr
    sigma: Arr
    sensitivity: float
    reach: Arr  # metres: beyond this from a receiver that heard the band, it is (softly) impossible
    box: tuple[float, float, float, float]  # x0, x1, y0, y1: where the band can be

    # the receivers' columns and masks, made once per window (loglik runs twice per step on them)
    _parts: tuple[Any, ...] | None = field(default=None, init=False, repr=False, compare=False)

    def _prepared(self) -> tuple[Any, ...]:
        if self._parts is None:
            order = np.argsort(self.kind, kind="stable")  # heard, faint, quiet: each set a slice, no copy per call
            if not np.array_equal(order, np.arange(len(order))):  # `Locator._evidence` sends them in that order
                for name in ("x", "y", "p1m", "n", "kind", "rssi", "sigma", "reach"):
                    setattr(self, name, getattr(self, name)[order])
            h = int(np.count_nonzero(self.kind == 0))
            b = int(np.count_nonzero(np.isfinite(self.reach)))
            if h > b or not np.isfinite(self.reach[:b]).all():  # reach is finite exactly for heard and faint ones
                raise ValueError("Evidence: a quiet receiver with a reach, or a heard one without")
            # Each term is linear in ln d² (μ = P1m − slope · ln d²), so its coefficients are made here once:
            # heard: z = (rssi − μ) / σ = (rssi − P1m) / σ + (slope / σ) · ln d²;
            # faint and quiet: x = −1.702 (sensitivity − μ) / σ, and −log Φ ≈ log(1 + eˣ).
            slope = self.slope
            k = -1.702 / self.sigma[h:]

            def col(v: Arr) -> NDArray[np.float32]:
                return v.astype(np.float32)[:, None]

            self._parts = (col(self.x), col(self.y), h, b,
                           col((self.rssi[:h] - self.p1m[:h]) / self.sigma[:h]), col(slope[:h] / self.sigma[:h]),
                           col(self.reach[:b]), col(k * (self.sensitivity - self.p1m[h:])), col(k * slope[h:]))
        return self._parts

    def loglik(self, px: Arr, py: Arr) -> Arr:
        """Log-likelihood of each candidate place (px, py); one (receivers × places) pass.

        The arithmetic is float32, receivers by rows (each receiver set a block of rows, each row a
        long run of places): numpy's log and exp are vectorised for float32, not for float64 on every
        CPU. Metres stay exact to a millimetre over kilometres and each term to about 1e-6 of its
        size; the sums over receivers come back as float64."""
        x, y, h, b, za, zb, reach_b, ca, cb = self._prepared()
        m = len(x)
        d2 = x - px.astype(np.float32)
        d2 *= d2
        dy = y - py.astype(np.float32)
        dy *= dy
        d2 += dy
        lnd2 = np.log(np.maximum(d2, np.float32(0.25)))  # d ≥ 0.5 m
        ll = np.zeros(len(px))
        if h:
            z = lnd2[:h] * zb
            z += za
            z *= z
            ll -= 0.5 * z.sum(axis=0)
        if b:
            over = np.sqrt(d2[:b])
            over -= reach_b
            np.maximum(over, np.float32(0.0), out=over)
            over *= over
            ll -= (0.5 / REACH_SOFT_M**2) * over.sum(axis=0)
        if h < m:
            e = lnd2[h:] * cb
            e += ca
            # log(1 + eˣ) (the logistic log Φ); x ≤ 80 keeps eˣ finite in float32 and is no cap in
            # practice: x > 80 would take a band heard 165 dB above the receiver's sensitivity
            np.minimum(e, np.float32(80.0), out=e)
            np.exp(e, out=e)
            e += np.float32(1.0)
            np.log(e, out=e)
            ll -= e.sum(axis=0)
        return ll

    @property
    def slope(self) -> Arr:
        return 5.0 * self.n / math.log(10.0)


@dataclass(slots=True)
class Track:
    """One band's particle cloud and what was last reported."""

    px: Arr
    py: Arr
    vx: Arr
    vy: Arr
    w: Arr  # normalised weights
    t: float  # monotonic time of the last update
    cx: float  # reported centre
    cy: float
    even: bool = True  # all weights equal (1 / n): a fresh or just resampled cloud


@dataclass(frozen=True, slots=True)
class Estimate:
    cx: float
    cy: float
    uncertainty_m: float
    cells_x: Arr
    cells_y: Arr
    cell_m: float
    cell_w: Arr  # the share of the cloud's weight in each of those cells (they sum to about `mass`)


def _uniform(rng: np.random.Generator, box: tuple[float, float, float, float], k: int) -> tuple[Arr, Arr]:
    x0, x1, y0, y1 = box
    return rng.uniform(x0, x1, k), rng.uniform(y0, y1, k)


def start(ev: Evidence, now: float, rng: np.random.Generator, n: int | None = None) -> Track:
    """A fresh track from one window: candidates over the search box, weighted by the evidence, resampled."""
    cx, cy = _uniform(rng, ev.box, INIT_CANDIDATES)
    ll = ev.loglik(cx, cy)
    w = np.exp(ll - ll.max())
    w /= w.sum()
    n = n or N_PARTICLES
    idx = rng.choice(len(cx), size=n, p=w)
    x0, x1, y0, y1 = ev.box
    jitter = max(x1 - x0, y1 - y0) / math.sqrt(INIT_CANDIDATES)
    px = cx[idx] + rng.uniform(-jitter / 2, jitter / 2, n)
    py = cy[idx] + rng.uniform(-jitter / 2, jitter / 2, n)
    v = np.zeros(n)
    weights = np.full(n, 1.0 / n)
    return Track(px, py, v.copy(), v.copy(), weights, now, float(np.mean(px)), float(np.mean(py)))


def step(tr: Track, ev: Evidence, now: float, rng: np.random.Generator) -> Track:
    """Predict (walk for dt), inject a few fresh particles, weight by the tempered evidence, resample."""
    dt = max(0.0, now - tr.t)
    if dt > REINIT_S:
        fresh = start(ev, now, rng, len(tr.px))
        fresh.cx, fresh.cy = _toward(tr.cx, tr.cy, fresh.cx, fresh.cy, V_MAX * dt + 1.0)
        return fresh
    n = len(tr.px)
    px, py, vx, vy = tr.px, tr.py, tr.vx, tr.vy  # never written to: each step makes new arrays
    if dt > 0:
        rho = math.exp(-dt / VEL_DECAY_S)
        s = VEL_SIGMA * math.sqrt(1.0 - rho * rho)
        # most of the time a patient is still: a share of the cloud stays put (only a jitter);
        # the rest keeps a decaying share of its velocity plus noise
        g = rng.standard_normal((2, n))
        still = rng.random(n) < STILL_SHARE
        keep = np.where(still, 0.0, rho)
        g *= np.where(still, STILL_JITTER, s)
        vx = keep * vx
        vx += g[0]
        vy = keep * vy
        vy += g[1]
        # no faster than V_MAX: a factor V_MAX / speed where the speed is above it, 1 elsewhere
        shrink = vx * vx
        shrink += vy * vy
        np.maximum(shrink, V_MAX * V_MAX, out=shrink)
        np.sqrt(shrink, out=shrink)
        np.divide(V_MAX, shrink, out=shrink)
        vx *= shrink
        vy *= shrink
        px = px + vx * dt
        py = py + vy * dt
    else:
        px, py, vx, vy = px.copy(), py.copy(), vx.copy(), vy.copy()
    # a few particles (evenly spaced through the cloud from a random start) are replaced by places
    # drawn from this window's evidence alone; the likelihood of the moved cloud and of the
    # candidates they are drawn from is one pass
    k = max(1, int(INJECT * n))
    idx = (int(rng.integers(n)) + np.arange(k) * (n // k)) % n
    qx, qy = _uniform(rng, ev.box, INJECT_CANDIDATES)
    ll_all = ev.loglik(np.concatenate((px, qx)), np.concatenate((py, qy)))
    ll, ll_c = ll_all[:n], ll_all[n:]
    cdf = np.cumsum(np.exp(ll_c - ll_c.max()))  # drawn by the evidence: inverse CDF (`choice(p=…)` checks p, slowly)
    j = np.minimum(np.searchsorted(cdf, rng.random(k) * cdf[-1], side="right"), INJECT_CANDIDATES - 1)
    px[idx], py[idx], ll[idx] = qx[j], qy[j], ll_c[j]
    vx[idx] = vy[idx] = 0.0
    alpha = min(1.0, max(dt, 1.0) / TEMPER_S)
    # log weights: the last step's (none to take after a resampling: all equal), the injected ones'
    # prior, then the tempered evidence
    lw = np.zeros(n) if tr.even else np.log(np.maximum(tr.w, 1e-300))
    lw[idx] = math.log(INJECT_WEIGHT / n) + (math.log(n) if tr.even else 0.0)
    lw += alpha * ll
    lw -= lw.max()
    w = np.exp(lw)
    w /= w.sum()
    even = False
    if 1.0 / float(np.dot(w, w)) < n / 2:  # effective sample size low: systematic resampling
        pos = (rng.random() + np.arange(n)) / n
        j = np.minimum(np.searchsorted(np.cumsum(w), pos), n - 1)
        px, py, vx, vy = px[j], py[j], vx[j], vy[j]
        w = np.full(n, 1.0 / n)
        even = True
    mx, my = float(np.dot(w, px)), float(np.dot(w, py))
    cx, cy = _toward(tr.cx, tr.cy, mx, my, V_MAX * dt + 1.0)
    return Track(px, py, vx, vy, w, now, cx, cy, even)


def _toward(ax: float, ay: float, bx: float, by: float, limit: float) -> tuple[float, float]:
    """b, or the point `limit` metres from a on the way to it."""
    d = math.hypot(bx - ax, by - ay)
    if d <= limit:
        return bx, by
    f = limit / d
    return ax + (bx - ax) * f, ay + (by - ay) * f


def _cells(px: Arr, py: Arr, cell: float) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64], int]:
    ix = np.floor(px / cell).astype(np.int64)
    iy = np.floor(py / cell).astype(np.int64)
    key = (ix - ix.min()) * (int(iy.max() - iy.min()) + 1) + (iy - iy.min())
    span = int(key.max()) + 1
    if span <= CELL_SPAN_DENSE:  # the rank of each key among those present: np.unique's inverse, no sort
        present = np.zeros(span, dtype=bool)
        present[key] = True
        rank = np.cumsum(present) - 1
        return ix, iy, rank[key], int(rank[-1]) + 1
    uniq, inv = np.unique(key, return_inverse=True)
    return ix, iy, inv, len(uniq)


def estimate(tr: Track, mass: float) -> Estimate:
    """The cells holding `mass` of the weight (a histogram of the cloud), each with its weight, and
    the disc covering them.

    The cell is the smallest of `CELL_SIZES` at which the cloud fills at most a third as many
    cells as it has particles: a histogram that dense has no holes where the patient could be,
    and a two-lobed cloud (a band heard only by receivers on one straight road) keeps two lobes."""
    px, py, w = tr.px, tr.py, tr.w
    for cell in CELL_SIZES:
        ix, iy, inv, m = _cells(px, py, cell)
        if 3 * m <= len(px):
            break
    cw = np.bincount(inv, weights=w, minlength=m)
    first = np.zeros(m, dtype=np.int64)
    first[inv[::-1]] = np.arange(len(inv))[::-1]
    o = np.argsort(-cw)
    k = int(np.searchsorted(np.cumsum(cw[o]), mass)) + 1
    keep = first[o[:k]]
    gx = ((ix[keep] + 0.5) * cell).astype(np.float64)
    gy = ((iy[keep] + 0.5) * cell).astype(np.float64)
    reach = float(np.max(np.hypot(gx - tr.cx, gy - tr.cy))) + cell * math.sqrt(0.5)
    return Estimate(tr.cx, tr.cy, reach, gx, gy, cell, cw[o[:k]].astype(np.float64))
