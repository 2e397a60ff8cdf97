"""Candidate seconds and their features, from the per-second summaries a band advertises.

An advert carries one summary a second (max, min and mean |a|, pitch/roll at
the end of the second). The summary model (fall_summary_model.py) works like
the raw-stream one, at one-second grain:
  - physics proposes: a second whose max |a| reaches `CANDIDATE_G` opens a
    candidate; a louder second before it is decided takes its place (the
    impact is the loudest second); it is decided `DECIDE_S` (8 s) after it,
    within the 10 s promise;
  - small boosted trees decide, over the summaries from 3 s before to 8 s
    after it (`FEATURES`, orientation-free: heights of |a|, spreads, levels,
    and the angles between gravity directions, never a direction itself).
`candidates` (a recording's summaries, offline) and fall_summary.py's live
step choose the same seconds and compute the same features (`features`), so
the model is trained on what the live path sees (tests/detect/test_fall_summary.py).
`summarise` makes the summaries a band would send from a recording (training
and evaluation; the same as scripts/eval_falls.py's summary-rule row).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from chumphae.detect.fall_stream import prepare
from chumphae.values import Motion

Array = NDArray[np.float64]
CANDIDATE_G = 1.6  # a second this loud opens a candidate
DECIDE_S = 8.0  # decided this long after the candidate's second
DECIDE_BY_S = 10.0  # or, when the band goes quiet, by this (fall_summary.tick)
BEFORE_S = 3.0  # summaries this long before it are looked at
QUIET_G = 0.1  # a second whose max − min stays under this is still
# what an advert can carry (docs/band-frame.md; gateway/decode/chumphae_band.py): |a| in 1/16 g up to 255/16 g,
# pitch in 1° (±90°), roll in 2° steps (±180°)
G_UNIT = 16.0
ROLL_UNIT = 2.0
FEATURES: tuple[str, ...] = (
    "peak_g", "peak_prev_g", "peak_next_g", "trough_g", "mean_g", "impact_spread_g",
    "post1_spread_g", "post1_max_g", "post2_spread_g", "post3_spread_g", "post_max_g", "post_level_g",
    "post_dev_g", "post_loud", "post_quiet", "turn_deg", "turn_near_deg", "rot_after_deg",
)
# falls-12: walking on after the impact (`walks_on`): over +3…+5 s and +6…+8 s the median spread is at least
# WALK_SPREAD_G in both and within WALK_AGREE_G of each other (steady), no second from +3 s reaches CANDIDATE_G and
# the mean stays within WALK_DEV_G of 1 g. Such a candidate is no fall, whatever the trees or the band's flag say.
WALK_SPREAD_G = 0.3
WALK_AGREE_G = 0.1
WALK_DEV_G = 0.1
# columns of a summary array: max, min, mean |a| (g), pitch, roll (degrees, NaN when the band sent none)
MAX, MIN, MEAN, PITCH, ROLL = range(5)


def summarise(t: Array, xyz: Array, hz: float) -> tuple[Array, Array]:
    """(end time of each second, summaries (n, 5)) of a recording, as a band would advertise them.

    On fall_stream.prepare's 20 Hz grid: the max |a| of a second counts the raw peak of each bin, the min its
    trough; pitch/roll of the second's last sample; rounded to what an advert carries (`as_advertised`)."""
    ts: list[Array] = []
    ms: list[Array] = []
    for g in prepare(t, xyz, hz).grids:
        if len(g.t) == 0:
            continue
        sec = np.floor(g.t).astype(np.int64)
        starts = np.flatnonzero(np.r_[True, sec[1:] != sec[:-1]])
        ends = np.r_[starts[1:], len(sec)] - 1
        mags = np.linalg.norm(g.xyz, axis=1)
        hi = np.maximum.reduceat(np.maximum(mags, g.peak), starts)
        lo = np.minimum.reduceat(np.minimum(mags, g.trough), starts)
        mean = np.add.reduceat(mags, starts) / (ends - starts + 1)
        x, y, z = g.xyz[ends, 0], g.xyz[ends, 1], g.xyz[ends, 2]
        pitch = np.degrees(np.arctan2(-x, np.hypot(y, z)))
        roll = np.degrees(np.arctan2(y, z))
        ts.append(sec[starts].astype(np.float64) + 1.0)
        ms.append(as_advertised(np.column_stack([hi, lo, mean, pitch, roll])))
    if not ts:
        return np.zeros(0), np.zeros((0, 5))
    return np.concatenate(ts), np.vstack(ms)


def as_advertised(m: Array) -> Array:
    """Summaries rounded as an advert carries them (the live path only ever sees these)."""
    out = m.copy()
    out[:, :3] = np.clip(np.rint(m[:, :3] * G_UNIT), 0, 255) / G_UNIT
    out[:, PITCH] = np.clip(np.rint(m[:, PITCH]), -90, 90)
    out[:, ROLL] = np.clip(np.rint(m[:, ROLL] / ROLL_UNIT), -90, 90) * ROLL_UNIT
    return out


def advertised(m: Motion) -> Motion:
    """One summary rounded as an advert carries it (`as_advertised`, without numpy: the live step's cost).

    A decoded advert is unchanged; a simulator's or a test's unrounded Motion becomes what a band would send."""
    def q(v: float | None, unit: float, lo: float, hi: float) -> float | None:  # NaN and None stay as they are
        return v if v is None or not math.isfinite(v) else min(hi, max(lo, float(round(v / unit)))) * unit

    def g(v: float) -> float:
        r = q(v * G_UNIT, 1.0, 0.0, 255.0)
        return v if r is None or not math.isfinite(r) else r / G_UNIT

    out = Motion(g(m.max_g), g(m.min_g), g(m.mean_g), q(m.pitch_deg, 1.0, -90.0, 90.0),
                 q(m.roll_deg, ROLL_UNIT, -90.0, 90.0))
    return m if out == m else out


def _gravity(pitch: float, roll: float) -> tuple[float, float, float]:
    p, r = math.radians(pitch), math.radians(roll)
    return (-math.sin(p), math.cos(p) * math.sin(r), math.cos(p) * math.cos(r))


def _angle(a: Array | None, b: Array | None) -> float:
    if a is None or b is None or np.isnan(a[PITCH]) or np.isnan(b[PITCH]) or np.isnan(a[ROLL]) or np.isnan(b[ROLL]):
        return math.nan
    u, v = _gravity(float(a[PITCH]), float(a[ROLL])), _gravity(float(b[PITCH]), float(b[ROLL]))
    dot = max(-1.0, min(1.0, sum(x * y for x, y in zip(u, v, strict=True))))
    return math.degrees(math.acos(dot))


def _med(x: Array) -> float:
    return float(np.median(x)) if len(x) else math.nan


def _max(x: Array) -> float:
    return float(np.max(x)) if len(x) else math.nan


def features(dt: Array, m: Array) -> Array:
    """Features of the candidate, the summary at dt = 0, from summaries `dt` seconds from it (in time order).

    Offline the summaries are one a second (whole dt); live they come when adverts are heard, so each window
    is a span of dt, not a count: the second before is the last summary within 1.5 s before, the second after
    the first within 1.5 s after, "+1…+2 s" is (0, 2.5], "+3…+5 s" (2.5, 5.5], "+6…+8 s" (5.5, 8] (the same
    rows for whole dt). Only −`BEFORE_S` − 0.5 … +`DECIDE_S` is looked at."""
    c = m[np.flatnonzero(np.abs(dt) < 1e-6)[-1]]

    def rows(lo: float, hi: float) -> Array:  # lo < dt ≤ hi
        return m[(dt > lo) & (dt <= hi + 1e-6)]

    def last(lo: float, hi: float) -> Array | None:  # the latest summary with lo ≤ dt < hi
        r = m[(dt >= lo - 1e-6) & (dt < hi - 1e-6)]
        return r[-1] if len(r) else None

    def first(lo: float, hi: float) -> Array | None:  # the earliest with lo < dt ≤ hi
        r = rows(lo, hi)
        return r[0] if len(r) else None

    prev, nxt = last(-1.5, 0.0), first(0.0, 1.5)
    around = m[(dt >= -1.5 - 1e-6) & (dt <= 1.5 + 1e-6)]
    p1, p2, p3, post = rows(0.0, 2.5), rows(2.5, 5.5), rows(5.5, DECIDE_S), rows(2.5, DECIDE_S)
    after = rows(0.0, DECIDE_S)
    before = last(-BEFORE_S - 0.5, -1.5)
    before = prev if before is None else before
    last_row = after[-1] if len(after) else None
    near = first(1.5, 3.5)
    near = nxt if near is None else near
    first_post = post[0] if len(post) else None
    trough = m[(dt >= -1.5 - 1e-6) & (dt <= 1e-6)]
    spread = post[:, MAX] - post[:, MIN]
    return np.array([
        c[MAX], math.nan if prev is None else prev[MAX], math.nan if nxt is None else nxt[MAX],
        float(np.min(trough[:, MIN])), c[MEAN], float(np.sum(around[:, MAX] - around[:, MIN])),
        _med(p1[:, MAX] - p1[:, MIN]), _max(p1[:, MAX]), _med(p2[:, MAX] - p2[:, MIN]),
        _med(p3[:, MAX] - p3[:, MIN]), _max(post[:, MAX]), float(np.mean(post[:, MEAN])) if len(post) else math.nan,
        _max(np.abs(post[:, MEAN] - 1.0)), float(np.sum(after[:, MAX] >= CANDIDATE_G)),
        float(np.mean(spread < QUIET_G)) if len(post) else math.nan,
        _angle(before, last_row), _angle(before, near), _angle(first_post, last_row),
    ], dtype=np.float64)


def candidates(ts: Array, m: Array) -> list[tuple[int, int]]:
    """(candidate index, index of the summary it is decided on) of a recording's summaries, in order.

    The live step's rule (fall_summary.py): a second ≥ `CANDIDATE_G` opens a candidate when none is open; a
    louder one replaces the open one; the open one is decided on the first summary `DECIDE_S` or more after
    it (before that summary can open the next), or on the last summary."""
    out: list[tuple[int, int]] = []
    pend = -1
    for j in range(len(ts)):
        if pend >= 0 and ts[j] - ts[pend] >= DECIDE_S:
            out.append((pend, j))
            pend = -1
        if m[j, MAX] >= CANDIDATE_G and (pend < 0 or m[j, MAX] > m[pend, MAX]):
            pend = j
    if pend >= 0:
        out.append((pend, len(ts) - 1))
    return out


def recording_features(ts: Array, m: Array) -> tuple[Array, Array, Array]:
    """(features (n, len(FEATURES)), candidate times, decision times) of every candidate of a recording."""
    cs = candidates(ts, m)
    if not cs:
        return np.zeros((0, len(FEATURES))), np.zeros(0), np.zeros(0)
    X = np.vstack([features(ts - ts[i], m) for i, _ in cs])
    decided = [ts[j] if ts[j] - ts[i] >= DECIDE_S else ts[i] + DECIDE_BY_S for i, j in cs]
    return X, np.array([ts[i] for i, _ in cs]), np.array(decided)


def walks_on(X: Array) -> NDArray[np.bool_]:
    """Per row of features (n, len(FEATURES)): does the wearer walk on, steadily, after the candidate?"""
    X = np.asarray(X, dtype=np.float64).reshape(-1, len(FEATURES))
    a, b = X[:, FEATURES.index("post2_spread_g")], X[:, FEATURES.index("post3_spread_g")]
    with np.errstate(invalid="ignore"):
        out: NDArray[np.bool_] = ((np.minimum(a, b) >= WALK_SPREAD_G) & (np.abs(a - b) <= WALK_AGREE_G)
                                  & (X[:, FEATURES.index("post_max_g")] < CANDIDATE_G)
                                  & (X[:, FEATURES.index("post_dev_g")] < WALK_DEV_G))
    return out
