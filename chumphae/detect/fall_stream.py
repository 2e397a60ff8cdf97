"""Timeline repair for raw wrist streams, and the rule-only fall detector kept as a baseline.

The shipped detector (fall_detector.py) uses `prepare` below and a learned
model; the rules below were the detector until the model replaced them and
are measured beside it by scripts/eval_falls.py.

A peak alone does not make a fall: clapping, hitting a table and sitting down
hard all peak at the wrist (DOMAIN.md, Falls). A fall is judged from four
pieces of physics around each impact, each turned into a score in 0..1:

  - impact: the vector magnitude |a| reaches several g. Consumer watches clip
    each axis at ±2 g or ±4 g; a clipped axis means "at least", and the
    magnitude of three clipped axes can still reach √3 × rail (3.46 g at 2 g);
  - free fall before it: |a| well under 1 g for a fraction of a second. On
    the wrist it is often weak or absent (the arm reaches out), so it is
    evidence, never required;
  - post-impact low activity from +1.5 s: the dynamic part of the
    acceleration (per-axis spread over 1 s windows) is small compared with
    walking, in most windows (the median), with |a| near 1 g. Real people
    move a little after a fall, so this is "low activity", not rest;
  - orientation change: the angle between the mean gravity vector before the
    fall began and the one after it.

Gates keep the obvious negatives out (no stillness → no fall; a fall needs
free fall or a turned wrist; a run of impacts in the seconds before is
clapping or hammering, not a fall); the weighted scores give the confidence.
Each impact is decided by impact + 7 s (or at the end of the data, if that
comes first and at least 1.5 s follows the impact): within the 10 s promise.

Real recordings are untidy, so `prepare` first repairs the timeline:
non-finite rows dropped, samples sorted, repeated timestamps (batched
sensors) spread over the sampling interval, millisecond/µs/ns clocks
recognised from the median step, gaps over 1 s split into segments (no
interpolation across them), then everything is put on a uniform grid at the
requested rate, at the instants k / rate of the recording's clock (so
where a buffer starts does not move the grid). The grid keeps, per bin, the highest and lowest raw |a|, so
resampling never shaves an impact peak or fills in a free fall.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class FallParams:
    impact_g: float = 2.0  # a peak of |a| at least this is an impact
    soft_impact_g: float = 1.6  # … or at least this with a clear free fall before it
    free_fall_g: float = 0.6  # |a| below this counts as (partial) free fall
    cluster_s: float = 0.6  # impacts closer than this are one impact (hand, then hip)
    pre_from_s: float = 2.5  # orientation before: [impact − 2.5 s, impact − 1.0 s]
    pre_to_s: float = 1.0
    post_from_s: float = 1.5  # low activity after: [impact + 1.5 s, impact + 7 s]
    post_to_s: float = 7.0
    min_post_s: float = 1.5  # need at least this much post-impact data to decide
    still_activity_g: float = 0.15  # median post-impact activity must be below this
    min_turn_deg: float = 35.0  # "the wrist turned" for the evidence gate
    repeat_window_s: float = 5.0  # impacts in the seconds before → repetitive motion
    max_repeats: int = 2  # more bursts than this in the window: not a fall
    min_free_fall_s: float = 0.12  # a free fall this long stands in for a turned wrist (falls from bed)
    min_confidence: float = 0.45
    refractory_s: float = 10.0  # one fall, one report
    gap_s: float = 1.0  # no data for longer than this splits the stream


@dataclass(frozen=True, slots=True)
class StreamFall:
    t: float  # impact time, s (the recording's clock)
    decided_at: float  # when the decision could be made, s
    confidence: float
    peak_g: float
    clipped: bool
    free_fall_min_g: float
    post_activity_g: float
    turn_deg: float | None


@dataclass(frozen=True, slots=True)
class Grid:
    """One gap-free stretch of the stream on a uniform time grid."""

    t: Array  # (n,) seconds
    xyz: Array  # (n, 3) g, interpolated
    peak: Array  # (n,) highest raw |a| in each bin (≥ interpolated |a|)
    trough: Array  # (n,) lowest raw |a| in each bin
    clipped: NDArray[np.bool_]  # (n,) a raw sample in the bin sat on an axis rail
    hz: float


@dataclass(frozen=True, slots=True)
class Timeline:
    """What `prepare` did to the clock (reported, so odd files can be understood)."""

    grids: tuple[Grid, ...]
    rate_hz: float  # estimated true rate from the timestamps
    clock_scale: float  # 1 (s), 1e3 (ms), 1e6 (µs) or 1e9 (ns)
    repeated: int  # samples whose timestamp repeated an earlier one
    rails_g: tuple[float, float, float]  # per-axis clipping level (inf: none seen)


def _spread_repeats(t: Array, dt: float) -> tuple[Array, int]:
    """Sorted times with runs of equal values spread evenly over the following interval."""
    uniq, start, counts = np.unique(t, return_index=True, return_counts=True)
    if len(uniq) == len(t):
        return t, 0
    rank = np.arange(len(t)) - np.repeat(start, counts)
    nxt = np.append(uniq[1:], uniq[-1] + counts[-1] * dt)
    step = np.minimum(dt, (nxt - uniq) / counts)
    return t + rank * np.repeat(step, counts), int(len(t) - len(uniq))


def clock_scale(t: Array, hz: float) -> float:
    """What a clock's stamps `t` (sorted) are divided by to be seconds at about `hz`: 1 for seconds; 1e3/1e6/1e9
    when the steps only make sense as ms/µs/ns (`prepare`, `fall_data.trial_recording`)."""
    d = np.diff(t)
    d = d[d > 0]
    if len(d) == 0:
        return 1.0
    med = float(np.median(d))
    if med <= 20.0 / hz:
        return 1.0
    for scale in (1e3, 1e6, 1e9):
        if 0.2 / hz <= med / scale <= 5.0 / hz:
            return scale
    return 1.0


STANDARD_RANGES_G = (2.0, 4.0, 8.0, 16.0)


def detect_rails(xyz: Array) -> tuple[float, float, float]:
    """The clipping level, if the stream shows one: the same on all axes (one sensor range).

    An axis is taken to clip when its largest |value| (≥ 1.2 g) is held by three
    or more samples, or is reached at all and sits within 1.5 % of a standard
    range (±2/4/8/16 g): at 50 Hz a 30 ms impact leaves only one or two samples
    on the rail.
    """
    found = []
    for k in range(3):
        a = np.abs(xyz[:, k])
        if len(a) == 0:
            continue
        top = float(a.max())
        at_top = int(np.count_nonzero(a >= top - max(1e-3 * top, 1e-9)))
        standard = any(abs(top - r) <= 0.015 * r for r in STANDARD_RANGES_G)
        if top >= 1.2 and (at_top >= 3 or standard):
            found.append(top)
    r = min(found) if found else float("inf")
    return (r, r, r)


def prepare(t: Array, xyz: Array, hz: float, gap_s: float = 1.0) -> Timeline:
    """Repair the timeline and put the stream on a uniform grid at `hz` (see module doc)."""
    if hz <= 0:
        raise ValueError("hz must be positive")
    t = np.asarray(t, dtype=np.float64)
    xyz = np.asarray(xyz, dtype=np.float64).reshape(-1, 3)
    ok = np.isfinite(t) & np.isfinite(xyz).all(axis=1)
    t, xyz = t[ok], xyz[ok]
    rails = detect_rails(xyz)
    if len(t) < 2:
        return Timeline((), 0.0, 1.0, 0, rails)
    scale = clock_scale(np.sort(t), hz)
    t = t / scale
    if len(np.unique(t)) < 0.1 * len(t):  # no usable clock at all: trust the stated rate
        t = np.arange(len(t)) / hz
    order = np.argsort(t, kind="stable")
    t, xyz = t[order], xyz[order]
    span = float(t[-1] - t[0])
    mean_dt = span / (len(t) - 1) if span > 0 else 1.0 / hz
    t, repeated = _spread_repeats(t, min(mean_dt, 1.0 / hz) if mean_dt > 0 else 1.0 / hz)
    d = np.diff(t)
    pos = d[d > 0]
    rate = 1.0 / float(np.median(pos)) if len(pos) else 0.0
    breaks = np.flatnonzero(d > gap_s) + 1
    grids = []
    for lo, hi in zip(np.r_[0, breaks], np.r_[breaks, len(t)], strict=True):
        g = _grid(t[lo:hi], xyz[lo:hi], hz, rails)
        if g is not None:
            grids.append(g)
    return Timeline(tuple(grids), rate, scale, repeated, rails)


def absolute_grid(t0: float, t1: float, hz: float) -> Array:
    """The instants k / hz (k an integer) within [t0, t1]: the same grid wherever the data starts.

    Built from integer indices, so two callers whose data start at different
    moments of the same clock get bit-identical times where they overlap (a
    live buffer and the whole file see the same samples).
    """
    k0 = int(np.ceil(t0 * hz - 1e-6))
    k1 = int(np.floor(t1 * hz + 1e-6))
    return np.arange(k0, k1 + 1, dtype=np.float64) / hz


def bins(t: Array, hz: float) -> NDArray[np.int64]:
    """The absolute grid index k of the instant k / hz nearest each time (the same for every caller)."""
    return np.rint(t * hz).astype(np.int64)


def _grid(t: Array, xyz: Array, hz: float, rails: tuple[float, float, float]) -> Grid | None:
    if len(t) < 2 or t[-1] - t[0] < 1.0:
        return None
    tg = absolute_grid(float(t[0]), float(t[-1]), hz)
    if len(tg) < 2:
        return None
    xg = np.column_stack([np.interp(tg, t, xyz[:, k]) for k in range(3)])
    mag_g = np.linalg.norm(xg, axis=1)
    raw = np.linalg.norm(xyz, axis=1)
    idx = np.clip(bins(t, hz) - int(round(float(tg[0]) * hz)), 0, len(tg) - 1)
    peak = mag_g.copy()
    trough = mag_g.copy()
    np.maximum.at(peak, idx, raw)
    np.minimum.at(trough, idx, raw)
    rail = np.asarray(rails)
    on_rail = (np.abs(xyz) >= 0.985 * rail).any(axis=1)
    clipped = np.zeros(len(tg), dtype=bool)
    np.logical_or.at(clipped, idx, on_rail)
    return Grid(tg, xg, peak, trough, clipped, hz)


def _clamp(v: float) -> float:
    return float(min(1.0, max(0.0, v)))


def _activity(xyz: Array, n_win: int) -> Array:
    """Dynamic acceleration per 1 s window, hop ½ s: √(Σ per-axis variance), g."""
    hop = max(1, n_win // 2)
    out = [float(np.sqrt(xyz[s:s + n_win].var(axis=0).sum()))
           for s in range(0, max(1, len(xyz) - n_win + 1), hop)]
    return np.asarray(out)


def _angle(u: Array, v: Array) -> float | None:
    nu, nv = float(np.linalg.norm(u)), float(np.linalg.norm(v))
    if nu < 0.3 or nv < 0.3:
        return None
    return float(np.degrees(np.arccos(np.clip(float(u @ v) / (nu * nv), -1.0, 1.0))))


def _impact_peaks(g: Grid, p: FallParams) -> list[int]:
    """Grid indices of impacts: the highest bin of each cluster of candidate bins."""
    cand = np.flatnonzero((g.peak >= p.soft_impact_g) | (g.clipped & (g.peak >= 1.2)))
    if len(cand) == 0:
        return []
    gap = max(1, int(round(p.cluster_s * g.hz)))
    splits = np.flatnonzero(np.diff(cand) > gap) + 1
    # a clipped bin read "at least" its value: rank it above unclipped bins of similar height
    rank = g.peak * np.where(g.clipped, 1.5, 1.0)
    return [int(c[np.argmax(rank[c])]) for c in np.split(cand, splits)]


def _bursts(g: Grid, lo: int, hi: int, level: float) -> int:
    """Distinct bursts (≥ 0.15 s apart) of |a| at or over `level` in bins [lo, hi)."""
    over = np.flatnonzero(g.peak[lo:hi] >= level)
    if len(over) == 0:
        return 0
    return 1 + int(np.count_nonzero(np.diff(over) > max(1, int(0.15 * g.hz))))


def _judge(g: Grid, i: int, peaks: list[int], p: FallParams) -> StreamFall | None:
    hz = g.hz
    n = len(g.t)
    ti = float(g.t[i])
    peak = float(g.peak[i])
    lo_c, hi_c = max(0, i - 2), min(n, i + 3)
    clipped = bool(g.clipped[lo_c:hi_c].any())
    # free fall in the second before the impact
    ff_lo, ff_hi = max(0, i - int(1.2 * hz)), max(0, i - int(0.03 * hz))
    ff_min = float(g.trough[ff_lo:ff_hi].min()) if ff_hi > ff_lo else 1.0
    ff_mag = np.linalg.norm(g.xyz[ff_lo:ff_hi], axis=1)
    ff_dur = float(np.count_nonzero(ff_mag < p.free_fall_g)) / hz
    # the impact gate
    hard = peak >= p.impact_g or (clipped and peak >= 1.2)
    soft = peak >= p.soft_impact_g and ff_min <= 0.5 and ff_dur >= 0.1
    if not (hard or soft):
        return None
    # post-impact: enough data, low activity, |a| near 1 g
    post_lo = i + int(p.post_from_s * hz)
    post_hi = min(n, i + int(p.post_to_s * hz) + 1)
    if post_hi - post_lo < int(p.min_post_s * hz):
        return None
    post = g.xyz[post_lo:post_hi]
    act = _activity(post, max(2, int(hz)))
    post_act = float(np.median(act))
    post_mag = float(np.median(np.linalg.norm(post, axis=1)))
    decided_at = float(g.t[post_hi - 1])
    if post_act > p.still_activity_g or not 0.75 <= post_mag <= 1.3:
        return None
    # orientation before the fall began vs after
    pre_lo, pre_hi = max(0, i - int(p.pre_from_s * hz)), max(0, i - int(p.pre_to_s * hz))
    if pre_hi - pre_lo < int(0.4 * hz):  # trial started mid-fall: use what there is
        pre_lo, pre_hi = 0, max(0, i - int(0.5 * hz))
    turn = None
    if pre_hi - pre_lo >= max(2, int(0.2 * hz)):
        turn = _angle(g.xyz[pre_lo:pre_hi].mean(axis=0), np.median(post, axis=0))
    # repetitive impacts before (clapping, waving, hammering): distinct bursts of comparable peaks
    repeats = _bursts(g, max(0, i - int(p.repeat_window_s * hz)), max(0, i - int(0.3 * hz)),
                      max(p.soft_impact_g, min(0.8 * peak, max(p.impact_g, 0.5 * peak))))
    if repeats > p.max_repeats:
        return None
    # evidence gate: free fall or a turned wrist
    turned = turn is not None and turn >= p.min_turn_deg
    if not (turned or (ff_min <= p.free_fall_g and ff_dur >= p.min_free_fall_s)):
        return None
    # arm motion just before the impact (reaching out, flailing)
    pre_act_lo = max(0, i - int(1.0 * hz))
    pre_act = float(np.sqrt(g.xyz[pre_act_lo:max(pre_act_lo + 1, i - 1)].var(axis=0).sum()))
    s_peak = _clamp((peak - 1.8) / (4.0 - 1.8))
    if clipped:  # a clipped axis says "at least": the rail, not the reading, bounds the impact
        s_peak = max(s_peak, 0.6)
    s_ff = _clamp((0.8 - ff_min) / (0.8 - 0.3)) * (0.5 + 0.5 * _clamp(ff_dur / 0.3))
    s_still = _clamp((p.still_activity_g + 0.05 - post_act) / (p.still_activity_g + 0.05 - 0.02))
    s_turn = 0.4 if turn is None else _clamp((turn - 20.0) / (70.0 - 20.0))
    s_pre = _clamp((pre_act - 0.1) / (0.5 - 0.1))
    conf = 0.35 * s_peak + 0.25 * s_ff + 0.15 * s_still + 0.2 * s_turn + 0.05 * s_pre
    conf *= 1.0 - 0.15 * repeats
    if conf < p.min_confidence:
        return None
    return StreamFall(ti, decided_at, round(conf, 3), round(peak, 3), clipped, round(ff_min, 3),
                      round(post_act, 4), None if turn is None else round(turn, 1))


def detect_in_timeline(tl: Timeline, p: FallParams = FallParams()) -> list[StreamFall]:
    falls: list[StreamFall] = []
    for g in tl.grids:
        peaks = _impact_peaks(g, p)
        for i in peaks:
            if falls and g.t[i] < falls[-1].t + p.refractory_s:
                continue
            f = _judge(g, i, peaks, p)
            if f is not None:
                falls.append(f)
    return falls


def detect_falls_rules(t: Array, xyz_g: Array, hz: float, p: FallParams = FallParams()) -> list[StreamFall]:
    """The previous, rule-only detector (kept as a baseline for `scripts/eval_falls.py`).

    Falls in a stream of (t seconds, x/y/z in g) samples, resampled at `hz`.
    The shipped detector is `fall_detector.detect_falls` (candidates + model).
    """
    return detect_in_timeline(prepare(t, xyz_g, hz, p.gap_s), p)
