#!/usr/bin/env python3
"""Describe the cross-set false alarms against the falls on a few physics quantities (falls-10; descriptive).

    .venv/bin/python scripts/confusers_falls.py --data ../shared/data/falls --cache DIR \\
        --threshold fallalld=0.421,umafall=0.062

For each direction (trees fitted by the training recipe on one set with its
copies, scoring the other set as recorded; the threshold is the one the
recipe picks on the training set, as printed by `scripts/shift_falls.py`'s
`base` variant), takes the candidate that makes each test trial ring (its
highest probability, when at or above the threshold) and computes on its
saved 20 Hz window (`scripts/windows_falls.py`):
  - v_drop: the wrist's lowest vertical velocity over the 1.5 s before the
    impact (m/s; the acceleration projected on the gravity direction of 3–1 s
    before, minus 1 g, integrated from rest): a body's drop vs lowering oneself;
  - z_drop: its double integral over the same 1.5 s (m; a height-change proxy,
    drift included);
  - rivals: bursts of the raw peak within ±3 s (outside ±0.3 s) reaching
    max(1.6 g, 1 g + 0.6 × the impact over 1 g): claps, hops;
  - motion_before: seconds of continuous motion before the impact (back to
    the last ½ s with a spread under 0.05 g, at most 3 s);
  - final_tilt: the angle between the gravity direction 3–1 s before and
    6–8 s after (degrees).
Prints each quantity's 10/50/90 % quantiles for the detected falls and for
the false alarms of each of the worst daily-activity kinds, and how many
false alarms lie beyond the quantile that keeps 98 % of the detected falls
(either side). These are figures on the held-out set, for describing what
separates them, not for choosing a rule: a rule set from them would be
fitted to that set. Experiment tooling; needs scikit-learn.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

sys.path.insert(0, str(Path(__file__).resolve().parent))

from windows_falls import LO, window_stream  # noqa: E402

from chumphae.detect import fall_features as ff  # noqa: E402
from chumphae.detect import fall_train  # noqa: E402
from chumphae.detect.fall_data import find_sets, set_features, training_set  # noqa: E402

F64 = NDArray[np.float64]
G = 9.81
QUANTITIES = ("v_drop", "z_drop", "rivals", "motion_before", "final_tilt")


def rival_bursts(s: ff.Stream20, i: int) -> float:
    """Bursts of the raw peak within ±3 s of candidate i (outside ±0.3 s) reaching max(1.6 g, 1 g + 0.6 × its impact)."""
    hz = ff.RATE_HZ
    imp = float(s.peak[i])
    level = max(1.6, 1.0 + 0.6 * (imp - 1.0))
    near = int(0.3 * hz)
    left = ff._seg(s.peak, i - int(3 * hz), i - near)
    right = ff._seg(s.peak, i + near + 1, i + int(3 * hz) + 1)
    return float(ff._bursts(left, level) + ff._bursts(right, level))


def physics(xyz: F64, peak: F64, clipped: NDArray[np.bool_]) -> tuple[float, ...]:
    """The quantities above for one saved window (candidate at index LO of the saved window)."""
    s, i = window_stream(xyz, peak, clipped)
    hz = ff.RATE_HZ
    pre = ff._seg(s.xyz, i - int(3 * hz), i - int(1 * hz))
    v_drop = z_drop = tilt = float("nan")
    if len(pre) >= 4:
        g0 = pre.mean(axis=0)
        ng = float(np.linalg.norm(g0))
        if ng > 0.3:
            av = (ff._seg(s.xyz, i - int(1.5 * hz), i + 1) @ (g0 / ng) - 1.0) * G
            v = np.cumsum(av) / hz
            v_drop = float(v.min())
            z_drop = float((np.cumsum(v) / hz).min())
        end = ff._seg(s.xyz, i + int(6 * hz), i + int(8 * hz) + 1)
        if len(end) >= 4:
            tilt = ff._angle(g0, end.mean(axis=0))
    rivals = rival_bursts(s, i)
    w = int(hz / 2)
    motion = 3.0
    for k in range(i - 2 - w, max(-1, i - int(3 * hz) - 1), -1):
        seg = s.xyz[k:k + w]
        if len(seg) == w and float(np.sqrt(seg.var(axis=0).sum())) < 0.05:
            motion = (i - k - w) / hz
            break
    return v_drop, z_drop, rivals, motion, tilt


def describe(tag: str, vals: F64) -> str:
    v = vals[np.isfinite(vals)]
    if not len(v):
        return f"{tag} –"
    q = np.quantile(v, (0.1, 0.5, 0.9))
    return f"{tag} {q[0]:.2f}/{q[1]:.2f}/{q[2]:.2f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--cache", type=Path, required=True)
    ap.add_argument("--threshold", required=True, help="TRAINSET=TH,… (the recipe's threshold per training set)")
    a = ap.parse_args(argv)
    ths = {k: float(v) for k, v in (p.split("=") for p in a.threshold.split(","))}
    sets = find_sets(a.data)
    for an, af in sets.items():
        for bn, bf in sets.items():
            if an == bn:
                continue
            T = training_set(an, af, a.cache, progress=False)
            Bs = set_features(bn, bf, a.cache, progress=False)
            fall = np.array([t.fall for t in T.trials])
            rows, y = fall_train.training_rows(fall, T.X, T.trial_of)
            clf = fall_train._fit(T.X[rows], y)
            p = clf.predict_proba(Bs.X)[:, 1]
            best: dict[int, int] = {}
            for r, k in enumerate(Bs.trial_of.tolist()):
                if k not in best or p[r] > p[best[k]]:
                    best[k] = r
            rings = [(k, r) for k, r in best.items() if p[r] >= ths[an]]
            with np.load(a.cache / f"windows-{bn}-rec.npz") as z:
                idx = np.array([r for _, r in rings])
                W = (z["xyz"][idx], z["peak"][idx], z["clipped"][idx])
            assert W[0].shape[1] > LO
            Q = np.array([physics(W[0][n], W[1][n], W[2][n]) for n in range(len(rings))])
            tp = np.array([Bs.trials[k].fall for k, _ in rings])
            acts = [Bs.trials[k].activity for k, _ in rings]
            worst = [k for k, _ in Counter(x for x, f in zip(acts, tp.tolist(), strict=True) if not f).most_common(4)]
            print(f"== {an} → {bn} (th {ths[an]:.3f}): {int(tp.sum())} falls found, {int((~tp).sum())} false alarms; "
                  "quantiles 10/50/90 %")
            for j, qn in enumerate(QUANTITIES):
                col = Q[:, j]
                parts = [describe("falls", col[tp])] + [
                    describe(w, col[np.array([x == w for x in acts])]) for w in worst]
                f = col[tp & np.isfinite(col)]
                fa = col[~tp]
                lo, hi = np.quantile(f, 0.02), np.quantile(f, 0.98)
                parts.append(f"| FAs below falls' 2 %: {int(np.sum(fa < lo))}, above 98 %: {int(np.sum(fa > hi))}"
                             f" of {len(fa)}")
                print(f"  {qn:13s} " + "  ".join(parts), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
