"""A walking person's place over time: a particle filter over the RSSI likelihood.

`gateway.locate` turns one window of RSSI into *evidence* (`Evidence`: which
receivers heard the band and how loud, which heard it only faintly, which live
ones did not hear it at all). This module keeps, per band, a cloud of
particles (x, y, vx, vy in the site's local metres) and moves it with a
walking person's motion model between estimates:

* speed is at most `V_MAX` (2 m/s): each particle's velocity decays towards
  rest and is nudged by noise (an Ornstein–Uhlenbeck walk), then clipped, so
  a cloud can only travel as fast as a person walks;
* each particle is walking or still, and keeps that mode for a spell (a
  Markov switch: `WALK_SPELL_S` walking, `STILL_SPELL_S` still, so that
  `STILL_SHARE` of the cloud is still): the walkers keep their heading from
  one second to the next, so a cloud can follow a minute of walking out of
  the zone instead of being dragged there by the evidence (a particle that
  stops every other second diffuses ~10 m a minute);
* a few particles are redrawn from the current search box each step, so a
  track that went wrong (a band carried in a car, a receiver moved) recovers
  within a window or two instead of lagging for minutes;
* each estimate weights the particles by the evidence, *tempered* by
  `dt / TEMPER_S`: the 15 s medians of consecutive seconds share 14 s of
  packets, and the slow shadowing is the same, so a second of evidence is
  worth about a fifteenth of a window's, not a whole one (a still patient's
  region shrinks as evidence accumulates, but never on the same packets
  counted fifteen times).

The track keeps its past (`Genealogy`, wander-15): every `CHECK_S` a snapshot of the cloud, and each
particle's ancestor in it, copied on resampling; the current weights over the ancestors' places are a
fixed-lag smoother's path. `passages` says, for each snapshot's reported centre, when that path passed
there: a slow walker's filtered centre crosses the zone's edge late, the smoothed path on time, and the
wander detector dates the excursion by it (`chumphae.detect.wander.smoothed_start`).

The region (the cells holding `mass` of the weight) is a histogram of the
particles on square cells sized to the cloud, so the matcher's "every cell
clear of the zone" rule keeps working unchanged. The reported centre is the
weighted mean, moved at most `V_MAX · dt` (plus a metre) from the last one:
a position never jumps further than the patient could have walked; the disc
around it still covers the whole region.

All arithmetic is numpy; no Python loop per particle. The bands due in one
tick are stepped together (`step_many`): their clouds stacked as (bands ×
particles), their windows as one `Stack` of coefficients (receivers heard,
faint, quiet in that order, so each term is a block of rows; padding rows
add exact zeros), one likelihood pass for the moved clouds and the recovery
candidates of every band, run receiver by receiver so each pass stays in the
core's cache. The likelihood runs in float32 (numpy vectorises log and exp
for it, not for float64 on every CPU). Each band draws its random numbers
from its own generator, two calls a step, so a band's track is the same bit
for bit whichever bands share its batch (`step` is a batch of one).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from numpy.typing import NDArray

Arr = NDArray[np.float64]
F32 = NDArray[np.float32]
Box = tuple[float, float, float, float]  # x0, x1, y0, y1

V_MAX = 2.0  # m/s: a walking person, elderly, on a village road
N_PARTICLES = 512
VEL_DECAY_S = 6.0  # velocity memory (OU time constant): a walk keeps its heading for some seconds
VEL_SIGMA = 0.9  # m/s: stationary spread of each velocity component
TEMPER_S = 25.0  # seconds of evidence that make one independent window
INJECT = 0.02  # share of particles redrawn from this window's evidence alone each step
INJECT_WEIGHT = 0.5  # their prior weight relative to a tracked particle (a lost track is unlikely)
STILL_SHARE = 0.5  # share of particles that do not walk in a step (sitting, lying, standing)
STILL_JITTER = 0.1  # m/s
WALK_SPELL_S = 20.0  # mean time a walking particle keeps walking (its heading memory is VEL_DECAY_S)
STILL_SPELL_S = WALK_SPELL_S * STILL_SHARE / (1.0 - STILL_SHARE)  # so that STILL_SHARE of the cloud is still
REINIT_S = 30.0  # a gap longer than this starts the track afresh from the evidence
INIT_CANDIDATES = 2048
INJECT_CANDIDATES = 64
REACH_SOFT_M = 10.0  # how softly a receiver's reach ends
CELL_SIZES = (5.0, 7.5, 10.0, 15.0, 20.0, 30.0, 40.0, 60.0, 80.0)
CELL_SPAN_DENSE = 4096  # cell grids up to this many cells are ranked with a dense table, wider ones sorted
BLOCK_ELEMENTS = 65536  # a likelihood over at most this many (receiver, place) pairs is one pass (256 KiB a temporary)
CHECK_S = 5.0  # the genealogy's snapshots: one every this many seconds (the smoothed path's resolution)
CHECKS = 36  # …and this many kept (3 minutes of smoothed past)
GENEALOGY = True  # keep the smoothed past (`Genealogy`, `passages`); False: tracks keep none
PASS_TOL_M = 3.0  # a smoothed point within this of its nearest approach to a past centre "passes" it
MOVED_M = 15.0  # …and only once the cloud's centre is this far from that past centre (a walk, not a jitter)


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
    box: Box  # where the band can be

    _stack: Stack | None = field(default=None, init=False, repr=False, compare=False)

    def stack(self) -> Stack:
        """This window as a `Stack` of one band (made once)."""
        if self._stack is None:
            o = np.argsort(self.kind, kind="stable")  # heard, faint, quiet
            self._stack = stack([len(o)], self.x[o], self.y[o], self.p1m[o], self.n[o], self.kind[o], self.rssi[o],
                                self.sigma[o], self.reach[o], self.sensitivity, [self.box])
        return self._stack

    def loglik(self, px: Arr, py: Arr) -> Arr:
        """Log-likelihood of each candidate place (px, py) (`Stack.loglik` of this one band)."""
        ll: Arr = self.stack().loglik(px[None], py[None])[0]
        return ll

    @property
    def slope(self) -> Arr:
        return 5.0 * self.n / math.log(10.0)


@dataclass(frozen=True, slots=True)
class Stack:
    """The windows of several bands as the likelihood's coefficients: float32 arrays over
    (row × band × 1). Each term is linear in ln d² (μ = P1m − slope · ln d²), so a window's
    coefficients are made once (`stack`), not per call:

    * heard, rows [0, heard): z = (rssi − μ) / σ = za + zb · ln d²; the term −z² / 2;
    * heard and faint, rows [0, bounded): beyond `reach` of the receiver, −(d − reach)² / (2 · REACH_SOFT_M²);
    * faint and quiet, rows [censored, rows): x = −1.702 (sensitivity − μ) / σ = ca + cb · ln d²;
      −log Φ ≈ log(1 + eˣ) (the logistic approximation).

    Row r of band j is its r-th receiver, heard then faint then quiet. Where a band has fewer rows
    in a term's range than the widest band, its rows there carry coefficients that add exactly 0
    (za = zb = 0, reach = ∞, ca = −∞, cb = 0; x = y = 0 for rows past its last receiver), so each
    band's likelihood is the same, bit for bit, whatever other bands share its stack."""

    x: F32
    y: F32
    za: F32
    zb: F32
    reach: F32
    ca: F32
    cb: F32
    boxes: Arr  # (bands × 4): each band's search box, x0, x1, y0, y1

    def __len__(self) -> int:
        return int(self.x.shape[1])

    def box(self, j: int) -> Box:
        x0, x1, y0, y1 = (float(v) for v in self.boxes[j])
        return x0, x1, y0, y1

    def take(self, js: Sequence[int]) -> Stack:
        """Bands `js` (in that order) as a stack of their own (their rows as they are here)."""
        ix = np.asarray(js, dtype=np.intp)
        return Stack(self.x[:, ix], self.y[:, ix], self.za[:, ix], self.zb[:, ix], self.reach[:, ix],
                     self.ca[:, ix], self.cb[:, ix], self.boxes[ix])

    def loglik(self, px: Arr, py: Arr) -> Arr:
        """Log-likelihood of each candidate place: (bands × places) in, (bands × places) out; band j's
        places weighed by band j's window.

        The arithmetic is float32 (numpy vectorises its log and exp, not float64's on every CPU):
        metres stay exact to a millimetre over kilometres and each term to about 1e-6 of its size;
        each term's sum over receivers is accumulated receiver after receiver in float32, and the
        three sums come back as float64. A small stack is one pass over (rows × bands × places);
        a large one goes receiver by receiver (each pass over (bands × places)), which stays in the
        core's cache where one (rows × bands × places) pass would not. Both give the same numbers,
        bit for bit."""
        if self.x.shape[0] * px.size <= BLOCK_ELEMENTS:
            return self._loglik_block(px, py)
        return self._loglik_rows(px, py)

    def _loglik_block(self, px: Arr, py: Arr) -> Arr:
        f32 = np.float32
        m, h, b = self.x.shape[0], self.za.shape[0], self.reach.shape[0]
        c = m - self.ca.shape[0]
        d2 = self.x - px.astype(f32)
        d2 *= d2
        dy = self.y - py.astype(f32)
        dy *= dy
        d2 += dy
        lnd2 = np.log(np.maximum(d2, np.full_like(d2, 0.25)))  # d ≥ 0.5 m
        ll = np.zeros(px.shape)
        if h:
            z = lnd2[:h] * self.zb
            z += self.za
            z *= z
            ll -= 0.5 * z.sum(axis=0)
        if b:
            over = np.sqrt(d2[:b])
            over -= self.reach
            np.maximum(over, np.zeros_like(over), out=over)
            over *= over
            ll -= (0.5 / REACH_SOFT_M**2) * over.sum(axis=0)
        if c < m:
            e = lnd2[c:] * self.cb
            e += self.ca
            np.minimum(e, np.full_like(e, 80.0), out=e)  # as in `_loglik_rows`
            np.exp(e, out=e)
            e += f32(1.0)
            np.log(e, out=e)
            ll -= e.sum(axis=0)
        return ll

    def _loglik_rows(self, px: Arr, py: Arr) -> Arr:
        f32 = np.float32
        m, h, b = self.x.shape[0], self.za.shape[0], self.reach.shape[0]
        c = m - self.ca.shape[0]
        qx, qy = px.astype(f32), py.astype(f32)
        shape = px.shape
        d2, t, lnd2 = np.empty(shape, f32), np.empty(shape, f32), np.empty(shape, f32)
        heard, over, cens = np.zeros(shape, f32), np.zeros(shape, f32), np.zeros(shape, f32)
        # the bounds as whole arrays: numpy's minimum and maximum against a scalar take 4x as long
        zero, d2_min, x_max = np.zeros(shape, f32), np.full(shape, 0.25, f32), np.full(shape, 80.0, f32)
        for r in range(m):
            np.subtract(self.x[r], qx, out=d2)
            d2 *= d2
            np.subtract(self.y[r], qy, out=t)
            t *= t
            d2 += t
            if r < b:  # beyond the reach: (d − reach)²
                np.sqrt(d2, out=t)
                t -= self.reach[r]
                np.maximum(t, zero, out=t)
                t *= t
                over += t
            if r < h or r >= c:
                np.maximum(d2, d2_min, out=lnd2)  # d ≥ 0.5 m
                np.log(lnd2, out=lnd2)
            if r < h:  # z²
                np.multiply(lnd2, self.zb[r], out=t)
                t += self.za[r]
                t *= t
                heard += t
            if r >= c:
                # log(1 + eˣ); x ≤ 80 keeps eˣ finite in float32 and is no cap in practice: x > 80
                # would take a band heard 165 dB above the receiver's sensitivity
                np.multiply(lnd2, self.cb[r - c], out=t)
                t += self.ca[r - c]
                np.minimum(t, x_max, out=t)
                np.exp(t, out=t)
                t += f32(1.0)
                np.log(t, out=t)
                cens += t
        ll = np.zeros(shape)
        if h:
            ll -= 0.5 * heard
        if b:
            ll -= (0.5 / REACH_SOFT_M**2) * over
        if c < m:
            ll -= cens
        return ll


def stack(rows: Sequence[int], x: Arr, y: Arr, p1m: Arr, n: Arr, kind: NDArray[np.int8], rssi: Arr, sigma: Arr,
          reach: Arr, sensitivity: float, boxes: Sequence[Box]) -> Stack:
    """Several bands' windows as one `Stack`. The arrays hold one entry per band and receiver, band
    by band (`rows[j]` entries for band j, heard then faint then quiet, as `Evidence`'s fields);
    `boxes[j]` is band j's search box."""
    nb = len(rows)
    counts = np.asarray(rows, dtype=np.intp)
    band = np.repeat(np.arange(nb), counts)
    slot = np.arange(len(band)) - np.repeat(np.cumsum(counts) - counts, counts)
    heard = kind == 0
    bounded = np.isfinite(reach)
    if not np.array_equal(bounded, kind < 2):
        raise ValueError("Evidence: a reach for a quiet receiver, or none for a heard or faint one")
    if np.any((np.diff(band) == 0) & (np.diff(kind) < 0)):
        raise ValueError("Evidence: receivers must come heard, then faint, then quiet")
    m = int(slot.max()) + 1 if len(slot) else 0
    h = int(slot[heard].max()) + 1 if heard.any() else 0
    b = int(slot[bounded].max()) + 1 if bounded.any() else 0
    c = int(slot[~heard].min()) if not heard.all() else m
    slope = 5.0 * n / math.log(10.0)
    k = -1.702 / sigma

    def grid(lo: int, hi: int, fill: float, where: NDArray[np.bool_] | None, v: Arr) -> F32:
        g = np.full((hi - lo, nb, 1), fill, dtype=np.float32)
        if where is None:
            g[slot - lo, band, 0] = v
        else:
            g[slot[where] - lo, band[where], 0] = v[where]
        return g

    return Stack(grid(0, m, 0.0, None, x), grid(0, m, 0.0, None, y),
                 grid(0, h, 0.0, heard, (rssi - p1m) / sigma), grid(0, h, 0.0, heard, slope / sigma),
                 grid(0, b, math.inf, bounded, reach),
                 grid(c, m, -math.inf, ~heard, k * (sensitivity - p1m)), grid(c, m, 0.0, ~heard, k * slope),
                 np.array(boxes, dtype=float).reshape(nb, 4))


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
    walking: NDArray[np.bool_] | None = None  # each particle's mode (None: all still, a fresh cloud)
    genealogy: Genealogy | None = None  # the smoothed past (`passages`); None: not kept, or a fresh cloud


@dataclass(frozen=True, slots=True)
class Genealogy:
    """A fixed-lag smoother by genealogy: the cloud's past, as the places its particles' ancestors held.

    Every `CHECK_S` the cloud is snapshotted: `hx`, `hy` (snapshots × particles) hold, for each particle
    of the newest snapshot, where its ancestor was at each snapshot (oldest first), gathered again
    through the resampling indices at each snapshot; `anc` is each current particle's ancestor in the
    newest snapshot (copied on resampling; an injected particle takes the past of the one it
    replaces: 2 % of the particles at half weight). `passed`: at the newest snapshot, for each
    snapshot j, (the time of j, the time the smoothed path passed the centre reported at j)."""

    t: tuple[float, ...]  # the snapshots' times, oldest first
    cx: tuple[float, ...]  # the centre reported at each
    cy: tuple[float, ...]
    hx: NDArray[np.float32]  # metres from the site's origin: float32 is ~1 mm here, and halves the memory
    hy: NDArray[np.float32]
    anc: NDArray[np.intp]
    passed: tuple[tuple[float, float], ...]


@dataclass(frozen=True, slots=True)
class Estimate:
    cx: float
    cy: float
    uncertainty_m: float
    cells_x: Arr
    cells_y: Arr
    cell_m: float
    cell_w: Arr  # the share of the cloud's weight in each of those cells (they sum to about `mass`)


def _uniform(rng: np.random.Generator, box: Box, k: int) -> tuple[Arr, Arr]:
    x0, x1, y0, y1 = box
    return rng.uniform(x0, x1, k), rng.uniform(y0, y1, k)


def start(ev: Evidence | Stack, now: float, rng: np.random.Generator, n: int | None = None) -> Track:
    """A fresh track from one window: candidates over the search box, weighted by the evidence, resampled.
    (A `Stack` here is one band's.)"""
    s = ev.stack() if isinstance(ev, Evidence) else ev
    box = s.box(0)
    cx, cy = _uniform(rng, box, INIT_CANDIDATES)
    ll = s.loglik(cx[None], cy[None])[0]
    w = np.exp(ll - ll.max())
    w /= w.sum()
    n = n or N_PARTICLES
    idx = rng.choice(len(cx), size=n, p=w)
    x0, x1, y0, y1 = box
    jitter = max(x1 - x0, y1 - y0) / math.sqrt(INIT_CANDIDATES)
    px = cx[idx] + rng.uniform(-jitter / 2, jitter / 2, n)
    py = cy[idx] + rng.uniform(-jitter / 2, jitter / 2, n)
    v = np.zeros(n)
    weights = np.full(n, 1.0 / n)
    return Track(px, py, v.copy(), v.copy(), weights, now, float(np.mean(px)), float(np.mean(py)))


def step(tr: Track, ev: Evidence | Stack, now: float, rng: np.random.Generator) -> Track:
    """Predict (walk for dt), inject a few fresh particles, weight by the tempered evidence, resample:
    `step_many` for one band (a `Stack` here is one band's)."""
    return step_many([tr], ev.stack() if isinstance(ev, Evidence) else ev, now, [rng])[0]


def step_many(tracks: Sequence[Track | None], ev: Stack, now: float,
              rngs: Sequence[np.random.Generator]) -> list[Track]:
    """Several bands' tracks to `now` at once: band j's track is `tracks[j]` (None: `start` one), its
    window band j of `ev`, its random numbers come from `rngs[j]` alone. The clouds of the bands that
    walk are stacked (bands × particles) and weighed in one likelihood pass, so a tick costs about
    as many numpy calls for forty bands as for one; each band gets what it gets stepped alone, bit
    for bit (its own draws; the other bands' rows add exact zeros to its sums)."""
    out: list[Track | None] = [None] * len(tracks)
    groups: dict[int, list[int]] = {}  # particles → the bands that walk with that many
    for j, tr in enumerate(tracks):
        if tr is None:
            out[j] = start(ev.take([j]), now, rngs[j])
        elif now - tr.t > REINIT_S:  # a long gap: afresh from the evidence, the centre still walked there
            fresh = start(ev.take([j]), now, rngs[j], len(tr.px))
            fresh.cx, fresh.cy = _toward(tr.cx, tr.cy, fresh.cx, fresh.cy, V_MAX * (now - tr.t) + 1.0)
            out[j] = fresh
        else:
            groups.setdefault(len(tr.px), []).append(j)
    for n, js in groups.items():
        sub = ev if len(js) == len(tracks) else ev.take(js)
        walked = _walk([t for j in js if (t := tracks[j]) is not None], sub, now, [rngs[j] for j in js], n)
        for j, t in zip(js, walked, strict=True):
            out[j] = t
    return [t for t in out if t is not None]


def _walk(trs: list[Track], ev: Stack, now: float, rngs: list[np.random.Generator], n: int) -> list[Track]:
    """`step_many` for bands of n particles each, none starting afresh: arrays over (bands × particles)."""
    nb = len(trs)
    k = max(1, int(INJECT * n))  # injected particles per band
    c = INJECT_CANDIDATES
    dts = [max(0.0, now - tr.t) for tr in trs]
    dt = np.array(dts)
    rows = np.arange(nb)[:, None]
    # each band's random numbers from its own generator, in two calls: the walk's normals (2 × n), and
    # uniforms [still? (n) | candidates' x (c), y (c) | which candidates (k) | injection start | resampling start]
    g = np.empty((nb, 2, n))
    u = np.empty((nb, n + 2 * c + k + 2))
    for j, rng in enumerate(rngs):
        rng.standard_normal(out=g[j])
        rng.random(out=u[j])
    # predict: most of the time a patient is still: a share of the cloud stays put (only a jitter);
    # the rest keeps a decaying share of its velocity plus noise (a band not walked (dt = 0) keeps its cloud).
    # Each particle keeps its mode for a spell (a Markov switch, mean WALK_SPELL_S walking, STILL_SPELL_S
    # still): a walk out of the zone is a minute or more of walking in one direction, which a cloud
    # whose particles stop every other second can only follow by the evidence dragging it, a minute late
    was = np.array([tr.walking if tr.walking is not None else np.zeros(n, dtype=bool) for tr in trs])
    rho = np.array([math.exp(-d / VEL_DECAY_S) for d in dts])
    s = np.array([VEL_SIGMA * math.sqrt(1.0 - r * r) for r in rho.tolist()])
    p_stop = np.array([1.0 - math.exp(-d / WALK_SPELL_S) for d in dts])
    p_go = np.array([1.0 - math.exp(-d / STILL_SPELL_S) for d in dts])
    moving = np.where(was, u[:, :n] >= p_stop[:, None], u[:, :n] < p_go[:, None])
    fresh = [j for j, tr in enumerate(trs) if tr.walking is None]  # a fresh cloud: modes drawn at their shares
    if fresh:
        moving[fresh] = u[fresh, :n] >= STILL_SHARE
    still = ~moving
    keep = moving * rho[:, None]  # 0 or ρ (np.where over a column is 10x slower)
    scale = moving * s[:, None]
    scale += still * STILL_JITTER  # s or STILL_JITTER
    g *= scale[:, None, :]
    vx = keep * np.array([tr.vx for tr in trs])  # np.array of the rows: np.stack's checks cost more here
    vx += g[:, 0]
    vy = keep * np.array([tr.vy for tr in trs])
    vy += g[:, 1]
    # no faster than V_MAX: a factor V_MAX / speed where the speed is above it, 1 elsewhere
    shrink = vx * vx
    shrink += vy * vy
    np.maximum(shrink, np.full_like(shrink, V_MAX * V_MAX), out=shrink)  # against a scalar: slower
    np.sqrt(shrink, out=shrink)
    np.divide(V_MAX, shrink, out=shrink)
    vx *= shrink
    vy *= shrink
    px = vx * dt[:, None]
    px += np.array([tr.px for tr in trs])
    py = vy * dt[:, None]
    py += np.array([tr.py for tr in trs])
    # a few particles (evenly spaced through the cloud from a random start) are replaced by places
    # drawn from this window's evidence alone; the likelihood of the moved clouds and of the
    # candidates they are drawn from is one pass
    idx = ((u[:, -2] * n).astype(np.intp)[:, None] + np.arange(k) * (n // k)) % n
    x0, x1, y0, y1 = ev.boxes.T
    qx = u[:, n:n + c] * (x1 - x0)[:, None]
    qx += x0[:, None]
    qy = u[:, n + c:n + 2 * c] * (y1 - y0)[:, None]
    qy += y0[:, None]
    ll_all = ev.loglik(np.concatenate((px, qx), axis=1), np.concatenate((py, qy), axis=1))
    ll, ll_c = ll_all[:, :n], ll_all[:, n:]
    cdf = np.exp(ll_c - ll_c.max(axis=1, keepdims=True))
    np.cumsum(cdf, axis=1, out=cdf)
    # drawn by the evidence, inverse CDF: the count of cdf ≤ r is searchsorted(cdf, r, side="right")
    r = u[:, n + 2 * c:n + 2 * c + k] * cdf[:, -1:]
    pick = np.minimum(np.count_nonzero(cdf[:, None, :] <= r[:, :, None], axis=2), c - 1)
    px[rows, idx], py[rows, idx], ll[rows, idx] = qx[rows, pick], qy[rows, pick], ll_c[rows, pick]
    vx[rows, idx] = 0.0
    vy[rows, idx] = 0.0
    moving[rows, idx] = False
    gens = [tr.genealogy for tr in trs]
    anc = np.array([g.anc if g is not None else np.arange(n) for g in gens], dtype=np.intp)
    # log weights: the last step's (none after a resampling: all equal), the injected ones' prior,
    # then the evidence tempered by dt / TEMPER_S
    even = np.array([tr.even for tr in trs])
    lw = np.zeros((nb, n))
    if not even.all():
        lw[~even] = np.log(np.maximum(np.array([tr.w for tr in trs if not tr.even]), 1e-300))
    prior = [math.log(INJECT_WEIGHT / n) + (math.log(n) if tr.even else 0.0) for tr in trs]
    lw[rows, idx] = np.array(prior)[:, None]
    alpha = np.array([min(1.0, max(d, 1.0) / TEMPER_S) for d in dts])
    lw += alpha[:, None] * ll
    lw -= lw.max(axis=1, keepdims=True)
    w = np.exp(lw)
    w /= w.sum(axis=1, keepdims=True)
    resampled = np.zeros(nb, dtype=bool)
    low = np.flatnonzero(1.0 / (w * w).sum(axis=1) < n / 2)  # effective sample size low: systematic resampling
    if len(low):
        cum = np.cumsum(w[low], axis=1)
        pos = u[low, -1:] + np.arange(n)
        pos /= n
        src = np.empty((len(low), n), dtype=np.intp)
        for i in range(len(low)):
            src[i] = np.searchsorted(cum[i], pos[i])
        np.minimum(src, n - 1, out=src)
        at = low[:, None]
        px[low], py[low], vx[low], vy[low] = px[at, src], py[at, src], vx[at, src], vy[at, src]
        moving[low] = moving[at, src]
        anc[low] = anc[at, src]
        w[low] = 1.0 / n
        resampled[low] = True
    mx = (w * px).sum(axis=1).tolist()
    my = (w * py).sum(axis=1).tolist()
    state = np.stack((px, py, vx, vy, w), axis=1)  # (bands × 5 × particles): one block per band, copied out
    out = []
    for j, tr in enumerate(trs):
        cx, cy = _toward(tr.cx, tr.cy, mx[j], my[j], V_MAX * dts[j] + 1.0)
        a = state[j].copy()
        gen = gens[j]
        if not GENEALOGY:
            gen = None
        elif gen is None or now - gen.t[-1] >= CHECK_S:
            gen = _snapshot(gen, anc[j], a[0], a[1], a[4], now, cx, cy)
        else:
            gen = replace(gen, anc=anc[j].copy())
        out.append(Track(a[0], a[1], a[2], a[3], a[4], now, cx, cy, bool(resampled[j]), moving[j].copy(), gen))
    return out


def _snapshot(g: Genealogy | None, anc: NDArray[np.intp], px: Arr, py: Arr, w: Arr, now: float,
              cx: float, cy: float) -> Genealogy:
    """The genealogy with the cloud (px, py, weights w) snapshotted at `now` (at most `CHECKS` kept), and
    its passages (`_passed`) at this snapshot."""
    ts: tuple[float, ...]
    cxs: tuple[float, ...]
    cys: tuple[float, ...]
    if g is None:  # the first snapshot of a track: no past yet
        hx, hy = px[None].astype(np.float32), py[None].astype(np.float32)
        ts, cxs, cys = (now,), (cx,), (cy,)
    else:
        keep = slice(max(0, len(g.t) - CHECKS + 1), None)
        hx = np.concatenate((g.hx[keep][:, anc], px[None].astype(np.float32)))
        hy = np.concatenate((g.hy[keep][:, anc], py[None].astype(np.float32)))
        ts, cxs, cys = (*g.t[keep], now), (*g.cx[keep], cx), (*g.cy[keep], cy)
    n = len(px)
    return Genealogy(ts, cxs, cys, hx, hy, np.arange(n, dtype=np.intp), _passed(ts, cxs, cys, hx @ w, hy @ w))


def _passed(ts: tuple[float, ...], cxs: tuple[float, ...], cys: tuple[float, ...], sx: Arr,
            sy: Arr) -> tuple[tuple[float, float], ...]:
    """For each snapshot j, (its time, the time the smoothed path (sx, sy) passed the centre reported at j):
    the latest smoothed point within `PASS_TOL_M` of its nearest approach to that centre, and "now" while
    the cloud's centre is within `MOVED_M` of it. A cloud that stays put says "now"; only a walk away
    says "earlier". Empty when no centre was passed earlier than it was reported (what the detector
    reads of it is then the same, at no cost per estimate)."""
    t = np.array(ts)
    d = np.hypot(sx[None, :] - np.array(cxs)[:, None], sy[None, :] - np.array(cys)[:, None])  # (centre j, point k)
    near = d <= d.min(axis=1, keepdims=True) + PASS_TOL_M
    last = len(ts) - 1 - np.argmax(near[:, ::-1], axis=1)
    last[d[:, -1] < MOVED_M] = len(ts) - 1  # the cloud still there: passed "now"
    if not np.any(t[last] < t):  # nothing passed earlier than reported (a cloud that stays put): nothing to say
        return ()
    return tuple(zip(ts, t[last].tolist(), strict=True))


def passages(tr: Track) -> tuple[tuple[float, float], ...]:
    """As of the track's newest snapshot: for each earlier snapshot, (the age in seconds of the centre
    reported then, the age at which the smoothed path passed that place) — ages before the track's time
    `tr.t`. A filtered centre that lagged a slow walker by a minute shows as an age pair (a, a + 60).
    Empty without a genealogy."""
    g = tr.genealogy
    if g is None:
        return ()
    return tuple((round(tr.t - tf, 1), round(tr.t - ts, 1)) for tf, ts in g.passed)
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
