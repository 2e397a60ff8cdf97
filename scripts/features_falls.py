#!/usr/bin/env python3
"""Screen fall-model variants (extra features × threshold rules) cross-set AND leave-one-subject-out.

    .venv/bin/python scripts/features_falls.py --data ../shared/data/falls --cache DIR \\
        [--variants base,c31,...] [--no-loso]

Needs the windows saved by `scripts/windows_falls.py` in DIR (and its feature
cache). Extra features are computed from the saved 20 Hz windows (seconds),
appended to the shipped ones, and each variant is fitted by the training
recipe (`fall_train._fit`, the same rows, weights and seeds) on:
  - one set with its clipped and other-watch copies, scored on the other set
    as recorded (both ways);
  - every subject but one of a set (with their copies), scored on that
    subject's trials as recorded (leave-one-subject-out, as eval_falls.py).
The threshold is picked from the training part's subject-grouped
out-of-fold trial scores (4 folds cross-set, 3 inside leave-one-subject-out,
as fit_model / eval_falls.py) by each rule: `w1.5` (fit_model's: max
1.5 × sens + spec), `q90` / `q95` (that quantile of the daily activities'
scores). Prints AUC, sensitivity at 0.90 / 0.95 specificity, and sensitivity
/ specificity at each rule's threshold. No figure comes from data a model was
fitted to; choosing among variants by these figures is still selection on
held-out data (say so). Experiment tooling; needs scikit-learn.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

sys.path.insert(0, str(Path(__file__).resolve().parent))

from threshold_rules_falls import fit_oof  # noqa: E402
from windows_falls import window_stream  # noqa: E402

from chumphae.detect import fall_features as ff  # noqa: E402
from chumphae.detect import fall_train  # noqa: E402
from chumphae.detect.fall_data import (  # noqa: E402
    SetFeatures,
    combine,
    find_sets,
    training_parts,
)

F64 = NDArray[np.float64]
B = NDArray[np.bool_]
Extra = Callable[[ff.Stream20, int], tuple[float, ...]]


# --- candidate extra features ---------------------------------------------------------------------
def _acf(m: F64) -> float:
    x = m - m.mean()
    d = float(x @ x)
    if d <= 1e-9:
        return float("nan")
    return max(float(x[:-lag] @ x[lag:]) for lag in range(int(0.2 * ff.RATE_HZ), int(ff.RATE_HZ) + 1)) / d


def x_run(s: ff.Stream20, i: int) -> tuple[float, ...]:
    """falls-5 'run' features: bursts_after, rivals, second, acf, acf_after."""
    hz = ff.RATE_HZ
    n = len(s.mag)
    imp = float(s.peak[i])
    pre = ff._seg(s.peak, i - int(round(2.0 * hz)), i - int(round(0.3 * hz)))
    post = ff._seg(s.peak, i + int(round(0.3 * hz)) + 1, i + int(round(2.0 * hz)) + 1)
    level = max(1.4, 0.5 * (1.0 + max(imp, 1.0)))
    rivals = float(ff._bursts(pre, level) + ff._bursts(post, level))
    both = np.r_[pre, post]
    second = (float(both.max()) - 1.0) / max(imp - 1.0, 0.1) if len(both) else float("nan")
    lo, hi = i - int(round(2.0 * hz)), i + int(round(2.0 * hz)) + 1
    acf = _acf(s.mag[lo:hi]) if lo >= 0 and hi <= n else float("nan")
    after = ff._seg(s.mag, i + int(round(0.3 * hz)), i + int(round(4.0 * hz)) + 1)
    acf_after = _acf(after) if len(after) > 30 else float("nan")
    return float(ff._bursts(post, 2.0)), rivals, second, acf, acf_after


def x_descent(s: ff.Stream20, i: int) -> tuple[float, ...]:
    """falls-5 'descent' features: v_descent, v_descent_min, impact_to_g, impact_to_rest."""
    hz = ff.RATE_HZ
    xyz = s.xyz
    pre = ff._seg(xyz, i - int(round(3.0 * hz)), i - int(round(1.0 * hz)))
    g0 = pre.mean(axis=0) if len(pre) else np.full(3, np.nan)
    ng = float(np.linalg.norm(g0))
    vvert = vmin = ang_pre = float("nan")
    if ng > 0.3:
        av = ff._seg(xyz, i - int(round(1.5 * hz)), i) @ (g0 / ng) - 1.0
        if len(av):
            cs = np.cumsum(av) / hz
            vvert, vmin = float(cs[-1]), float(cs.min())
        ang_pre = ff._angle(xyz[i] - g0, g0)
    post = ff._seg(xyz, i + int(round(2.0 * hz)), i + int(round(8.0 * hz)) + 1)
    dyn = xyz[i] - g0 if np.isfinite(ng) else xyz[i]
    ang_post = ff._angle(dyn, post.mean(axis=0)) if len(post) else float("nan")
    return vvert, vmin, ang_pre, ang_post


def x_still(s: ff.Stream20, i: int) -> tuple[float, ...]:
    """Post-impact stillness: longest still run 1–8 s after (s), onset of the first ½ s still window,
    spread of the ½ s gravity directions over the still part (degrees), its tilt variance."""
    hz = ff.RATE_HZ
    xyz = ff._seg(s.xyz, i + int(round(1.0 * hz)), i + int(round(ff.POST_S * hz)) + 1)
    w = int(hz / 2)
    if len(xyz) < 2 * w:
        return (float("nan"),) * 4
    stds = np.array([float(np.sqrt(xyz[k:k + w].var(axis=0).sum())) for k in range(0, len(xyz) - w + 1, w)])
    still = stds < 0.05
    run = best = 0
    for v in still.tolist():
        run = run + 1 if v else 0
        best = max(best, run)
    onset = float(np.argmax(still)) / 2 if still.any() else 8.0
    dirs = np.array([xyz[k:k + w].mean(axis=0) for k in range(0, len(xyz) - w + 1, w)])
    dirs = dirs / np.maximum(np.linalg.norm(dirs, axis=1, keepdims=True), 1e-6)
    mean = dirs.mean(axis=0)
    spread = float(np.degrees(np.arccos(np.clip(dirs @ (mean / max(np.linalg.norm(mean), 1e-6)), -1, 1))).mean())
    return best / 2.0, onset, spread, float(stds.std())


def x_impacts(s: ff.Stream20, i: int) -> tuple[float, ...]:
    """Repeated impacts over the whole window (−3…+8 s): bursts of the raw peak ≥ 1.8 g and
    ≥ 0.6 × the impact (g over 1), and the median gap between bursts ≥ 1.8 g (s; 0 if < 2)."""
    hz = ff.RATE_HZ
    p = ff._seg(s.peak, i - int(round(3.0 * hz)), i + int(round(ff.POST_S * hz)) + 1)
    imp = float(s.peak[i])
    n18 = float(ff._bursts(p, 1.8))
    rel = float(ff._bursts(p, 1.0 + max(0.8, 0.6 * (imp - 1.0))))
    over = np.flatnonzero(p >= 1.8)
    starts = over[np.r_[True, np.diff(over) > 3]] if len(over) else over
    gap = float(np.median(np.diff(starts))) / hz if len(starts) >= 2 else 0.0
    return n18, rel, gap


def x_tilt(s: ff.Stream20, i: int) -> tuple[float, ...]:
    """Gravity direction change: angle between the direction 3–1 s before and each ½ s after
    (max and the time it is reached), and the angle of the final direction (6–8 s) to the
    impact's dynamic part."""
    hz = ff.RATE_HZ
    pre = ff._seg(s.xyz, i - int(round(3.0 * hz)), i - int(round(1.0 * hz)))
    post = ff._seg(s.xyz, i + int(round(0.5 * hz)), i + int(round(ff.POST_S * hz)) + 1)
    w = int(hz / 2)
    if len(pre) < 4 or len(post) < w:
        return (float("nan"),) * 4
    g0 = pre.mean(axis=0)
    angs = [ff._angle(g0, post[k:k + w].mean(axis=0)) for k in range(0, len(post) - w + 1, w)]
    a = np.array(angs)
    if not np.isfinite(a).any():
        return (float("nan"),) * 4
    end = ff._seg(s.xyz, i + int(round(6.0 * hz)), i + int(round(8.0 * hz)) + 1)
    last = ff._angle(s.xyz[i] - g0, end.mean(axis=0)) if len(end) else float("nan")
    return float(np.nanmax(a)), float(np.nanargmax(a)) / 2.0, float(np.nanstd(a)), last


EXTRAS: dict[str, tuple[list[str], Extra]] = {
    "run": (["bursts_after", "rivals", "second", "acf", "acf_after"], x_run),
    "descent": (["v_descent", "v_descent_min", "impact_to_g", "impact_to_rest"], x_descent),
    "still": (["still_run", "still_onset", "still_dir_spread", "still_std_var"], x_still),
    "impacts": (["n_bursts18", "n_bursts_rel", "burst_gap"], x_impacts),
    "tilt": (["tilt_max", "tilt_t", "tilt_std", "tilt_end"], x_tilt),
}
VARIANTS: dict[str, list[str]] = {
    "base": [], "c31": ["run", "descent"], "still": ["still"], "impacts": ["impacts"], "tilt": ["tilt"],
    "c31+still": ["run", "descent", "still"], "c31+impacts": ["run", "descent", "impacts"],
    "impacts+tilt": ["impacts", "tilt"], "c31+tilt": ["run", "descent", "tilt"],
    "c31+impacts+tilt": ["run", "descent", "impacts", "tilt"],
    "all": ["run", "descent", "still", "impacts", "tilt"],
}


def extra_columns(cache: Path, set_name: str, variant: str, group: str) -> F64:
    out = cache / f"extra-{set_name}-{variant}-{group}.npy"
    if out.is_file():
        return np.asarray(np.load(out), dtype=np.float64)
    w = np.load(cache / f"windows-{set_name}-{variant}.npz")
    fn = EXTRAS[group][1]
    rows = []
    for xyz, peak, clipped in zip(w["xyz"], w["peak"], w["clipped"], strict=True):
        s, i = window_stream(xyz, peak, clipped)
        rows.append(fn(s, i))
    X = np.asarray(rows, dtype=np.float64)
    tmp = out.with_suffix(f".{os.getpid()}.npy")
    np.save(tmp, X)
    tmp.replace(out)  # atomic: another screen may read it at the same time
    return X


# --- fitting with several threshold rules ---------------------------------------------------------
RULES = ("w1.5", "q90", "q95")


def thresholds(oof_trial: F64, fall: B) -> dict[str, float]:
    return {"w1.5": fall_train.pick_threshold(oof_trial, fall),
            "q90": float(np.quantile(oof_trial[~fall], 0.90)),
            "q95": float(np.quantile(oof_trial[~fall], 0.95))}


def fit_rules(X: F64, trial_of: NDArray[np.int64], fall: B, groups: list[str], folds: int
              ) -> tuple[Any, dict[str, float]]:
    """The full model and each rule's threshold from its subject-grouped out-of-fold scores."""
    scores, _fold, full, _models = fit_oof(X, trial_of, fall, groups, folds)
    return full, thresholds(scores, fall)


def subset(S: SetFeatures, X: F64, keep: B) -> tuple[F64, NDArray[np.int64], B, list[str]]:
    idx = np.flatnonzero(keep)
    remap = -np.ones(len(S.trials), dtype=np.int64)
    remap[idx] = np.arange(len(idx))
    rows = keep[S.trial_of]
    return (X[rows], remap[S.trial_of[rows]], np.array([S.trials[k].fall for k in idx]),
            [S.trials[k].subject for k in idx])


def summary(tag: str, s: F64, y: B, ths: dict[str, float] | dict[str, F64], acts: list[str]) -> str:
    from sklearn.metrics import roc_auc_score

    q90, q95 = np.quantile(s[~y], 0.90), np.quantile(s[~y], 0.95)
    parts = [f"{tag}: AUC {roc_auc_score(y, s):.3f} s@.90 {np.mean(s[y] > q90):.3f} s@.95 {np.mean(s[y] > q95):.3f}"]
    for r in RULES:
        th = ths[r]
        det = s >= th
        parts.append(f"{r} {np.mean(det[y]):.3f}/{np.mean(~det[~y]):.3f}")
    det = s >= ths["w1.5"]
    worst = Counter(a for a, d, f in zip(acts, det.tolist(), y.tolist(), strict=True) if d and not f)
    return "  ".join(parts) + "\n      worst (w1.5): " + ", ".join(f"{k} {v}" for k, v in worst.most_common(5))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--cache", type=Path, required=True)
    ap.add_argument("--variants", default="base,c31")
    ap.add_argument("--no-loso", action="store_true")
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    sets = find_sets(a.data)
    parts: dict[str, list[tuple[str, SetFeatures]]] = {}
    for name, folder in sets.items():
        parts[name] = [(c.name, S) for c, S in training_parts(name, folder, a.cache, progress=False)]
    for vn in a.variants.split(","):
        groups = VARIANTS[vn]
        rec: dict[str, tuple[SetFeatures, F64]] = {}
        train: dict[str, tuple[SetFeatures, F64]] = {}
        for name, p in parts.items():
            Xs = [np.hstack([S.X] + [extra_columns(a.cache, name, v, g) for g in groups]) for v, S in p]
            rec[name] = (p[0][1], Xs[0])
            train[name] = (combine([S for _, S in p]), np.vstack(Xs))
        nf = rec[next(iter(rec))][1].shape[1]
        print(f"== {vn}: {nf} features ({'+'.join(groups) or 'shipped'}); {time.perf_counter() - t0:.0f} s",
              flush=True)
        for an, (T, TX) in train.items():
            for bn, (Bs, BX) in rec.items():
                if an == bn:
                    continue
                fall = np.array([t.fall for t in T.trials])
                clf, ths = fit_rules(TX, T.trial_of, fall, [t.subject for t in T.trials], 4)
                s = fall_train.trial_scores(clf.predict_proba(BX)[:, 1], Bs.trial_of, len(Bs.trials))
                y = np.array([t.fall for t in Bs.trials])
                th_txt = " ".join(f"{r} {v:.2f}" for r, v in ths.items())
                print("  " + summary(f"{an}→{bn} (th {th_txt})", s, y, ths, [t.activity for t in Bs.trials]),
                      flush=True)
        if a.no_loso:
            continue
        for name, (T, TX) in train.items():
            S, SX = rec[name]
            subj_T = np.array([t.subject for t in T.trials])
            subj_S = np.array([t.subject for t in S.trials])
            s = np.zeros(len(S.trials))
            per_trial_th = {r: np.zeros(len(S.trials)) for r in RULES}
            for subj in sorted(set(subj_S.tolist())):
                X, of, fall, grp = subset(T, TX, subj_T != subj)
                clf, ths = fit_rules(X, of, fall, grp, 3)
                held = subj_S == subj
                rows = held[S.trial_of]
                p = clf.predict_proba(SX[rows])[:, 1]
                sc = fall_train.trial_scores(p, S.trial_of[rows], len(S.trials))
                s[held] = sc[held]
                for r in RULES:
                    per_trial_th[r][held] = ths[r]
            y = np.array([t.fall for t in S.trials])
            print("  " + summary(f"LOSO {name} (pooled AUC)", s, y, per_trial_th, [t.activity for t in S.trials]),
                  flush=True)
    print(f"took {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
