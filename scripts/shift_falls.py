#!/usr/bin/env python3
"""Screen time-shift augmentation of the falls for the shipped trees (falls-10), cross-set and held-out subjects.

    .venv/bin/python scripts/shift_falls.py --data ../shared/data/falls --cache DIR \\
        [--variants base,shift50,shift25] [--no-loso] [--loso-sets fallalld,umafall]

Needs the windows saved by `scripts/windows_falls.py` in DIR (and its feature
cache). A fall trial trains the trees with one positive row, its top
candidate (`fall_train.training_rows`). A variant adds, for each such row of
each copy (as recorded, ±2 g, other watch), the shipped features computed
with the candidate moved by a few 20 Hz samples inside its saved window
(−3…+8 s, so a shift of +0.5 s sees 7.5 s after instead of 8): more varied
falls for the same protocol (the impact a little off the window's centre,
as another rate or clock puts it). Daily activities are unchanged; classes
stay balanced (each positive weighs less). Out-of-fold trial scores, and so
the threshold, come from the unshifted rows only (what runs in the field);
a shifted row trains only the folds its subject trains. The threshold is
the shipped rule (`fall_train.adl_quantile_threshold`, 0.90 quantile of the
daily activities' out-of-fold scores; 4 folds cross-set, 3 inside
leave-one-subject-out). No figure comes from data a model was fitted to.
Experiment tooling; needs scikit-learn.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

sys.path.insert(0, str(Path(__file__).resolve().parent))

from confusers_falls import rival_bursts  # noqa: E402
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
I64 = NDArray[np.int64]
B = NDArray[np.bool_]

# shifts in 20 Hz samples (5 = 0.25 s); named before any held-out figure was seen (docs, falls-10)
VARIANTS: dict[str, tuple[int, ...]] = {"base": (), "shift50": (-10, -5, 5, 10), "shift25": (-5, 5)}


def shifted_rows(cache: Path, set_name: str, vname: str, S: SetFeatures, shifts: tuple[int, ...]
                 ) -> tuple[F64, I64]:
    """Features of every fall trial's top candidate moved by each shift (rows, their trial index in S)."""
    if not shifts:
        return np.zeros((0, len(ff.FEATURES))), np.zeros(0, dtype=np.int64)
    fall = np.array([t.fall for t in S.trials])
    rows, y = fall_train.training_rows(fall, S.X, S.trial_of)
    pos = rows[y == 1]
    with np.load(cache / f"windows-{set_name}-{vname}.npz") as z:
        w = {k: z[k][pos] for k in ("xyz", "peak", "clipped")}  # one read (NpzFile re-reads per access)
    xs: list[F64] = []
    of: list[int] = []
    for n, r in enumerate(pos.tolist()):
        s, i = window_stream(w["xyz"][n], w["peak"][n], w["clipped"][n])
        for k in shifts:
            j = i + k
            if 0 <= j < len(s.t):
                xs.append(ff.features_at(s, j))
                of.append(int(S.trial_of[r]))
    return np.vstack(xs), np.asarray(of, dtype=np.int64)


def rivals_of(cache: Path, set_name: str, vname: str) -> F64:
    """Rival bursts (confusers_falls.rival_bursts) of every candidate row of a saved set variant (cached)."""
    out = cache / f"rivals-{set_name}-{vname}.npy"
    if out.is_file():
        return np.asarray(np.load(out), dtype=np.float64)
    with np.load(cache / f"windows-{set_name}-{vname}.npz") as z:
        xyz, peak, clipped = z["xyz"], z["peak"], z["clipped"]
    r = np.array([rival_bursts(*window_stream(xyz[n], peak[n], clipped[n])) for n in range(len(xyz))])
    tmp = out.with_suffix(f".{os.getpid()}.npy")
    np.save(tmp, r)
    tmp.replace(out)  # atomic: another screen may read it at the same time
    return r


def veto_limit(X: F64, trial_of: I64, fall: B, rivals: F64, use: B | None = None) -> float:
    """VETO: the 0.99 quantile (numpy 'higher') of the rival bursts of the training falls' top candidates
    (`use`: only those trials, e.g. the recorded ones without their copies)."""
    rows, y = fall_train.training_rows(fall, X, trial_of)
    pos = rows[y == 1]
    if use is not None:
        pos = pos[use[trial_of[pos]]]
    return float(np.quantile(rivals[pos], 0.99, method="higher"))


def fit_oof(X: F64, trial_of: I64, fall: B, groups: list[str], Xe: F64, e_of: I64, folds: int
            ) -> tuple[F64, Any]:
    """Grouped out-of-fold trial scores (unshifted rows) and the model fitted on everything."""
    rows, y = fall_train.training_rows(fall, X, trial_of)
    g = np.asarray(groups)
    k, fold_of = fall_train.subject_folds(list(groups), folds)
    cand_fold = np.array([fold_of[s] for s in g[trial_of]])
    e_fold = np.array([fold_of[s] for s in g[e_of]]) if len(e_of) else np.zeros(0, dtype=np.int64)
    oof = np.zeros(len(X))
    for f in range(k):
        tr = rows[cand_fold[rows] != f]
        ke = e_fold != f
        clf = fall_train._fit(np.vstack([X[tr], Xe[ke]]),
                              np.r_[fall[trial_of[tr]].astype(np.int64), np.ones(int(ke.sum()), dtype=np.int64)])
        te = np.flatnonzero(cand_fold == f)
        if len(te):
            oof[te] = clf.predict_proba(X[te])[:, 1]
    full = fall_train._fit(np.vstack([X[rows], Xe]), np.r_[y, np.ones(len(Xe), dtype=np.int64)])
    return fall_train.trial_scores(oof, trial_of, len(fall)), full


def summary(tag: str, s: F64, y: B, th: F64 | float, acts: list[str]) -> str:
    from sklearn.metrics import roc_auc_score

    q90, q95 = np.quantile(s[~y], 0.90), np.quantile(s[~y], 0.95)
    det = s >= th
    sens, spec = float(np.mean(det[y])), float(np.mean(~det[~y]))
    worst = Counter(a for a, d, f in zip(acts, det.tolist(), y.tolist(), strict=True) if d and not f)
    return (f"{tag}: AUC {roc_auc_score(y, s):.3f} s@.90 {np.mean(s[y] > q90):.3f} s@.95 {np.mean(s[y] > q95):.3f}"
            f"  q90 {sens:.3f}/{spec:.3f} sum {sens + spec:.3f}\n      worst: "
            + ", ".join(f"{k} {v}" for k, v in worst.most_common(5)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--cache", type=Path, required=True)
    ap.add_argument("--variants", default="base,shift50,shift25")
    ap.add_argument("--no-loso", action="store_true")
    ap.add_argument("--no-cross", action="store_true")
    ap.add_argument("--loso-sets", default="")
    ap.add_argument("--veto", action="store_true", help="also score with the rival-bursts veto (veto_limit)")
    ap.add_argument("--veto-rec", action="store_true", help="the veto's limit from the recorded trials only")
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    sets = find_sets(a.data)
    parts: dict[str, list[tuple[str, SetFeatures]]] = {}
    for name, folder in sets.items():
        parts[name] = [(c.name, S) for c, S in training_parts(name, folder, a.cache, progress=False)]
    for vn in a.variants.split(","):
        shifts = VARIANTS[vn]
        train: dict[str, tuple[SetFeatures, F64, I64]] = {}
        for name, p in parts.items():
            T = combine([S for _, S in p])
            xe, eo, off = [], [], 0
            for vname, S in p:
                X1, o1 = shifted_rows(a.cache, name, vname, S, shifts)
                xe.append(X1)
                eo.append(o1 + off)
                off += len(S.trials)
            train[name] = (T, np.vstack(xe), np.concatenate(eo))
        print(f"== {vn}: shifts {shifts}; extra rows "
              + ", ".join(f"{n} {len(v[1])}" for n, v in train.items()) + f"; {time.perf_counter() - t0:.0f} s",
              flush=True)
        rec = {n: p[0][1] for n, p in parts.items()}
        riv: dict[str, tuple[F64, F64]] = {}
        if a.veto:
            for n, p in parts.items():
                rs = [rivals_of(a.cache, n, v) for v, _ in p]
                riv[n] = (np.concatenate(rs), rs[0])
        if not a.no_cross:
            for an, (T, Xe, eo) in train.items():
                for bn, Bs in rec.items():
                    if an == bn:
                        continue
                    fall = np.array([t.fall for t in T.trials])
                    oof, clf = fit_oof(T.X, T.trial_of, fall, [t.subject for t in T.trials], Xe, eo, 4)
                    th = fall_train.adl_quantile_threshold(oof, fall)
                    s = fall_train.trial_scores(clf.predict_proba(Bs.X)[:, 1], Bs.trial_of, len(Bs.trials))
                    y = np.array([t.fall for t in Bs.trials])
                    print("  " + summary(f"{an}→{bn} (th {th:.3f})", s, y, th, [t.activity for t in Bs.trials]),
                          flush=True)
                    if a.veto:
                        n_rec = len(rec[an].trials)
                        lim = veto_limit(T.X, T.trial_of, fall, riv[an][0],
                                         np.arange(len(T.trials)) < n_rec if a.veto_rec else None)
                        pv = np.where(riv[bn][1] > lim, 0.0, clf.predict_proba(Bs.X)[:, 1])
                        sv = fall_train.trial_scores(pv, Bs.trial_of, len(Bs.trials))
                        print("  " + summary(f"{an}→{bn} + veto rivals > {lim:g} (th {th:.3f})", sv, y, th,
                                             [t.activity for t in Bs.trials]), flush=True)
        if a.no_loso:
            continue
        for name, (T, Xe, eo) in train.items():
            if a.loso_sets and name not in a.loso_sets.split(","):
                continue
            S = rec[name]
            subj_T = np.array([t.subject for t in T.trials])
            subj_S = np.array([t.subject for t in S.trials])
            s = np.zeros(len(S.trials))
            sv = np.zeros(len(S.trials))
            lims: list[float] = []
            th_of = np.zeros(len(S.trials))
            for subj in sorted(set(subj_S.tolist())):
                keep = subj_T != subj
                idx = np.flatnonzero(keep)
                remap = -np.ones(len(T.trials), dtype=np.int64)
                remap[idx] = np.arange(len(idx))
                rows = keep[T.trial_of]
                ke = keep[eo]
                fall = np.array([T.trials[k].fall for k in idx])
                oof, clf = fit_oof(T.X[rows], remap[T.trial_of[rows]], fall,
                                   [T.trials[k].subject for k in idx], Xe[ke], remap[eo[ke]], 3)
                th = fall_train.adl_quantile_threshold(oof, fall)
                held = subj_S == subj
                r2 = held[S.trial_of]
                sc = fall_train.trial_scores(clf.predict_proba(S.X[r2])[:, 1], S.trial_of[r2], len(S.trials))
                s[held] = sc[held]
                th_of[held] = th
                if a.veto:
                    use = (idx < len(S.trials)) if a.veto_rec else None  # the recorded trials come first
                    lim = veto_limit(T.X[rows], remap[T.trial_of[rows]], fall, riv[name][0][rows], use)
                    lims.append(lim)
                    pv = np.where(riv[name][1][r2] > lim, 0.0, clf.predict_proba(S.X[r2])[:, 1])
                    scv = fall_train.trial_scores(pv, S.trial_of[r2], len(S.trials))
                    sv[held] = scv[held]
                print(f"    {name} {subj}: th {th:.3f}; {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
            y = np.array([t.fall for t in S.trials])
            print("  " + summary(f"LOSO {name} (pooled AUC; th {th_of.min():.2f}–{th_of.max():.2f})", s, y, th_of,
                                 [t.activity for t in S.trials]), flush=True)
            if a.veto:
                print("  " + summary(f"LOSO {name} + veto rivals > {min(lims):g}–{max(lims):g}", sv, y, th_of,
                                     [t.activity for t in S.trials]), flush=True)
    print(f"took {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
