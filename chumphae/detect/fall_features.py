"""Candidate moments and device-independent features for the learned fall detector.

Every stream, whatever its rate (20–240 Hz), clock or sensor range, is first
repaired by `fall_stream.prepare` (sorted, repeated stamps spread, gaps split)
and then brought to one rate, `RATE_HZ` = 20 Hz: a moving mean over 1/20 s
(anti-aliasing, so a 238 Hz watch and a 20 Hz one see the same smoothed
impact) and interpolation onto a 20 Hz grid. The highest raw |a| in each
20 Hz bin is kept beside it (`peak`), capped at `CAP_G`.

Candidates are cheap physics: a local maximum of the smoothed |a| of at
least 1.4 g, or a raw peak of at least 1.6 g, or a sample on a clipped axis;
candidates closer than 1 s are one (the highest stays, a clipped bin
ranking above unclipped ones: its reading is only a lower bound). The grid
is absolute (multiples of 50 ms of the recording's clock), so a live buffer
and the whole file see the same samples; the clustering is not local (a run
of candidates less than 1 s apart is one, however long), so in a long run
of motion they can still differ (see docs/fall-detection.md). Each candidate gets
`FEATURES`, all orientation-free (magnitudes, spreads, jerk, angles between
gravity directions): impact height and width, free fall before it, motion
and level after it, how far the wrist turned and how much it kept rotating.
What the wearer was doing seconds before (walking, standing still) is left
out on purpose: it describes a data set's protocol, not the fall, and a
model trained on falls from standing (UMAFall) learnt from it to miss falls
during activity (FallAllD). A window reaches `PRE_S` before and `POST_S` after the
candidate; the decision is taken at candidate + `POST_S` (or at the end of
the data, holding the last sample, when the stream ends first).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from chumphae.detect.fall_stream import Grid, Timeline, absolute_grid, bins, prepare

Array = NDArray[np.float64]

RATE_HZ = 20.0
CAP_G = 8.0
PRE_S = 3.0
POST_S = 8.0
MIN_POST_S = 1.5  # a candidate this close to the end of the data is decided with what there is
CLUSTER_S = 1.0
SMOOTH_CAND_G = 1.4
RAW_CAND_G = 1.6

FEATURES = (
    "peak_s", "peak_raw", "clipped", "width_15", "energy", "jerk", "jerk_xyz",
    "ff_min", "ff_dur6", "ff_dur8", "pre_mean", "vel", "post_bursts",
    "post_std1", "post_std2", "post_std3", "post_act", "post_mean", "post_dev",
    "turn", "turn_near", "post_rot",
)


@dataclass(frozen=True, slots=True)
class Stream20:
    """One gap-free stretch at 20 Hz."""

    t: Array  # (n,) s
    xyz: Array  # (n, 3) g, smoothed
    mag: Array  # (n,) |xyz|
    peak: Array  # (n,) highest raw |a| in the bin, capped
    clipped: NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class Candidate:
    t: float
    decided_at: float
    features: Array  # (len(FEATURES),)


def to_rate(g: Grid) -> Stream20 | None:
    """A repaired grid at any rate → the 20 Hz stream the model was trained on."""
    k = max(1, int(round(g.hz / RATE_HZ)))
    xyz = g.xyz
    if k > 1:
        kern = np.ones(k) / k
        xyz = np.column_stack([np.convolve(np.pad(xyz[:, j], (k // 2, k - 1 - k // 2), mode="edge"),
                                           kern, mode="valid") for j in range(3)])
    t = absolute_grid(float(g.t[0]), float(g.t[-1]), RATE_HZ)
    n = len(t)
    if n < 2:
        return None
    x20 = np.column_stack([np.interp(t, g.t, xyz[:, j]) for j in range(3)])
    idx = np.clip(bins(g.t, RATE_HZ) - int(round(float(t[0]) * RATE_HZ)), 0, n - 1)
    peak = np.zeros(n)
    np.maximum.at(peak, idx, g.peak)
    clipped = np.zeros(n, dtype=bool)
    np.logical_or.at(clipped, idx, g.clipped)
    mag = np.linalg.norm(x20, axis=1)
    return Stream20(t, x20, mag, np.minimum(np.maximum(peak, mag), CAP_G), clipped)


def streams(t: Array, xyz_g: Array, hz: float) -> tuple[Timeline, list[Stream20]]:
    tl = prepare(t, xyz_g, hz)
    out = [s for s in (to_rate(g) for g in tl.grids) if s is not None]
    return tl, out


def candidates(s: Stream20) -> list[int]:
    """Indices of candidate impacts (see module doc)."""
    m = s.mag
    n = len(m)
    if n < 3:
        return []
    local = np.r_[False, (m[1:-1] >= m[:-2]) & (m[1:-1] >= m[2:]), False]
    cand = np.flatnonzero((local & (m >= SMOOTH_CAND_G)) | (s.peak >= RAW_CAND_G) | s.clipped)
    if len(cand) == 0:
        return []
    gap = int(CLUSTER_S * RATE_HZ)
    splits = np.flatnonzero(np.diff(cand) > gap) + 1
    score = s.peak + m + np.where(s.clipped, 2.0, 0.0)
    return [int(c[np.argmax(score[c])]) for c in np.split(cand, splits)]


def _seg(a: Array, lo: int, hi: int) -> Array:
    return a[max(0, lo):max(0, min(len(a), hi))]


def _std(a: Array) -> float:
    return float(a.std()) if len(a) >= 2 else float("nan")


def _angle(u: Array, v: Array) -> float:
    nu, nv = float(np.linalg.norm(u)), float(np.linalg.norm(v))
    if nu < 0.3 or nv < 0.3:
        return float("nan")
    return float(np.degrees(np.arccos(np.clip(float(u @ v) / (nu * nv), -1.0, 1.0))))


def _rotation(xyz: Array) -> float:
    """Sum of angles between successive ½ s mean gravity directions, degrees."""
    step = int(RATE_HZ / 2)
    if len(xyz) < 2 * step:
        return float("nan")
    means = [xyz[i:i + step].mean(axis=0) for i in range(0, len(xyz) - step + 1, step)]
    angles = [_angle(a, b) for a, b in zip(means, means[1:], strict=False)]
    vals = [x for x in angles if np.isfinite(x)]
    return float(sum(vals)) if vals else float("nan")


def _bursts(m: Array, level: float) -> int:
    over = np.flatnonzero(m >= level)
    if len(over) == 0:
        return 0
    return 1 + int(np.count_nonzero(np.diff(over) > 3))


def _activity(xyz: Array) -> float:
    w = int(RATE_HZ)
    if len(xyz) < w:
        return float(np.sqrt(xyz.var(axis=0).sum())) if len(xyz) >= 2 else float("nan")
    acts = [float(np.sqrt(xyz[s:s + w].var(axis=0).sum())) for s in range(0, len(xyz) - w + 1, w // 2)]
    return float(np.median(acts))


def features_at(s: Stream20, i: int) -> Array:
    """The feature vector of candidate i (NaN where the window falls outside the data)."""
    hz = RATE_HZ
    m, xyz = s.mag, s.xyz

    def ix(sec: float) -> int:
        return i + int(round(sec * hz))

    near = _seg(m, ix(-1.0), ix(1.0) + 1)
    imp = _seg(m, ix(-0.1), ix(0.1) + 1)
    peak_s = float(imp.max())
    peak_raw = float(_seg(s.peak, ix(-0.1), ix(0.1) + 1).max())
    clipped = float(_seg(s.clipped.astype(np.float64), ix(-0.1), ix(0.1) + 1).max())
    width = float(np.count_nonzero(near >= 1.5)) / hz
    energy = float(np.abs(_seg(m, ix(-0.5), ix(1.0) + 1) - 1.0).sum()) / hz
    jm = _seg(m, ix(-0.5), ix(0.5) + 1)
    jerk = float(np.abs(np.diff(jm)).max()) * hz if len(jm) >= 2 else float("nan")
    jx = _seg(xyz, ix(-0.5), ix(0.5) + 1)
    jerk_xyz = float(np.linalg.norm(np.diff(jx, axis=0), axis=1).max()) * hz if len(jx) >= 2 else float("nan")
    ff = _seg(m, ix(-1.5), i)
    ff_min = float(ff.min()) if len(ff) else float("nan")
    ff6 = float(np.count_nonzero(ff < 0.6)) / hz if len(ff) else float("nan")
    ff8 = float(np.count_nonzero(ff < 0.8)) / hz if len(ff) else float("nan")
    pre1 = _seg(m, ix(-1.0), i)
    pre_mean = float(pre1.mean()) if len(pre1) else float("nan")
    vel = float((pre1 - 1.0).sum()) / hz if len(pre1) else float("nan")
    post_bursts = float(_bursts(_seg(m, ix(0.5), ix(3.0) + 1), 1.5))
    post_std1 = _std(_seg(m, ix(1.0), ix(3.0)))
    post_std2 = _std(_seg(m, ix(3.0), ix(5.5)))
    post_std3 = _std(_seg(m, ix(5.5), ix(POST_S)))
    post = _seg(xyz, ix(1.5), ix(POST_S) + 1)
    pm = _seg(m, ix(1.5), ix(POST_S) + 1)
    post_act = _activity(post)
    post_mean = float(pm.mean()) if len(pm) else float("nan")
    post_dev = float(np.abs(pm - 1.0).max()) if len(pm) else float("nan")
    before = _seg(xyz, ix(-3.0), ix(-1.0))
    turn = _angle(before.mean(axis=0), post.mean(axis=0)) if len(before) >= 4 and len(post) >= 4 else float("nan")
    b2, a2 = _seg(xyz, ix(-1.5), ix(-0.5)), _seg(xyz, ix(0.5), ix(1.5))
    turn_near = _angle(b2.mean(axis=0), a2.mean(axis=0)) if len(b2) >= 4 and len(a2) >= 4 else float("nan")
    post_rot = _rotation(post)
    return np.array([peak_s, peak_raw, clipped, width, energy, jerk, jerk_xyz,
                     ff_min, ff6, ff8, pre_mean, vel, post_bursts,
                     post_std1, post_std2, post_std3, post_act, post_mean, post_dev,
                     turn, turn_near, post_rot], dtype=np.float64)


def _hold_last(s: Stream20, extra: int) -> Stream20:
    """The stream with its last sample held for `extra` more bins (the end of the data)."""
    t = np.r_[s.t, s.t[-1] + np.arange(1, extra + 1) / RATE_HZ]
    xyz = np.vstack([s.xyz, np.repeat(s.xyz[-1:], extra, axis=0)])
    mag = np.r_[s.mag, np.repeat(s.mag[-1], extra)]
    return Stream20(t, xyz, mag, np.r_[s.peak, np.repeat(s.mag[-1], extra)],
                    np.r_[s.clipped, np.zeros(extra, dtype=bool)])


def stream_candidates(s: Stream20, final: bool = True, after: float = -np.inf,
                      settle: float = 0.0) -> list[Candidate]:
    """Candidates in a stream with their features, decided once POST_S of data follows.

    `final`: the stream has ended, so candidates with at least MIN_POST_S after
    them are decided now (last sample held). `after`: skip candidates at or
    before this time (already decided by a live caller). `settle`: while the
    stream goes on, wait this much more data past POST_S, so that the last
    samples of the window are no longer at the edge of the data (smoothing,
    interpolation): a live buffer then computes what the whole file does.
    """
    out: list[Candidate] = []
    end = float(s.t[-1])
    need = int(round(POST_S * RATE_HZ))
    idxs = [i for i in candidates(s) if float(s.t[i]) > after]
    held: Stream20 | None = None
    for i in idxs:
        ti = float(s.t[i])
        if ti + POST_S + (0.0 if final else settle) <= end + 1e-9:
            out.append(Candidate(ti, ti + POST_S, features_at(s, i)))
        elif final and end - ti >= MIN_POST_S:
            if held is None:
                held = _hold_last(s, need)
            out.append(Candidate(ti, end, features_at(held, i)))
    return out
