#!/usr/bin/env python3
"""Screen a MiniRocket-style classifier (fixed convolution kernels in numpy + ridge) against the shipped trees.

    .venv/bin/python scripts/rocket_falls.py --data ../shared/data/falls --cache DIR [--no-loso]

Needs the 20 Hz windows saved by `scripts/windows_falls.py` in DIR (−3…+8 s
around every candidate of both sets, as recorded, clipped at ±2 g and as
another watch). Experiment tooling (falls-9); needs scikit-learn for the
trees and the AUC.

**Input** (orientation-free, one row per candidate, 221 samples at 20 Hz):
|a| − 1, the raw peak − 1, the angle to the pre-impact gravity direction
(mean 3–1 s before; radians) and the gravity-removed magnitude |a − m|
(m: a 1 s centred moving mean of the vector). Samples outside the data hold
the nearest valid one.

**Transform** (MiniRocket's fixed kernels): the 84 kernels of length 9 with
weights −1 and three 2s, dilations 1, 2, 4, 8, 16, 27 (zero padding: every
channel is 0 at rest), per channel; one bias per (channel, dilation, kernel):
the quantile (golden-ratio sequence) of the kernel's output on one random
window of the bias set (seeded). Feature: the proportion of positive values
(PPV), 84 × 6 × 4 = 2,016 features. The bias set is the training set for
cross-set; for leave-one-subject-out it is the OTHER set (so no input of a
held-out subject, labelled or not, shapes the transform).

**Classifier**: weighted ridge on standardised features with an intercept,
labels ±1, classes weighted ½ each, solved from per-subject sufficient
statistics (so every fold is a cheap solve). α from the grid by the pooled
AUC of the training set's subject-grouped out-of-fold trial scores.
"rocket+22": the 22 shipped features appended, each as its rank within the
bias set's candidates (NaN → ½).

**Rows, folds, threshold**: as the shipped recipe (`fall_train`): the top
candidate of each fall trial and every daily-activity candidate; subjects
round robin into 4 folds (3 inside leave-one-subject-out); threshold = the
0.90 quantile of the training set's daily-activity out-of-fold trial scores.

**Ensemble** (rule fixed before any held-out figure was seen, falls-9): each
model's candidate score is mapped to its rank among that model's training
daily-activity out-of-fold TRIAL scores (empirical CDF, linear between
points); the ensemble's candidate score is the mean of the two ranks
(trees and rocket); its threshold is the same rule (0.90 quantile of its own
out-of-fold daily-activity trial scores).

**Calibration idea** ("trees kindw"): the shipped trees with every activity
kind (and every fall kind) given the same total weight within its class.

Prints per scorer: AUC, sensitivity at 0.90 / 0.95 specificity, and
sensitivity / specificity at the recipe's threshold, cross-set both ways and
leave-one-subject-out per set (pooled). No figure comes from data a model or
its threshold was fitted to.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from chumphae.detect import fall_train
from chumphae.detect.fall_data import SetFeatures, combine, find_sets, training_parts

F64 = NDArray[np.float64]
F32 = NDArray[np.float32]
I64 = NDArray[np.int64]
B = NDArray[np.bool_]

LO = 60  # the candidate's index in a saved window (PRE_S × 20 Hz)
DILATIONS = (1, 2, 4, 8, 16, 27)
KERNELS = np.full((84, 9), -1.0, dtype=np.float32)
for _k, _idx in enumerate(combinations(range(9), 3)):
    KERNELS[_k, list(_idx)] = 2.0
ALPHAS = tuple(float(a) for a in np.logspace(-5, 0, 11))
PHI = (np.sqrt(5.0) - 1.0) / 2.0
SEED = 0


# --- channels ----------------------------------------------------------------------------------
def _fill(a: F64) -> F64:
    """NaN rows (outside the data) hold the nearest valid sample, along axis 1."""
    out = a.copy()
    n = out.shape[1]
    for r in range(out.shape[0]):
        ok = np.isfinite(out[r].reshape(n, -1)[:, 0])
        if ok.all():
            continue
        if not ok.any():
            out[r] = 0.0
            continue
        idx = np.flatnonzero(ok)
        near = idx[np.clip(np.searchsorted(idx, np.arange(n)), 0, len(idx) - 1)]
        prev = idx[np.clip(np.searchsorted(idx, np.arange(n)) - 1, 0, len(idx) - 1)]
        pick = np.where(np.abs(prev - np.arange(n)) < np.abs(near - np.arange(n)), prev, near)
        out[r] = out[r][pick]
    return out


def channels(xyz: F64, peak: F64) -> F32:
    """(n, 221, 3) smoothed g and (n, 221) raw peak → (n, 4, 221) orientation-free channels."""
    xyz = _fill(xyz)
    mag = np.linalg.norm(xyz, axis=2)
    pk = np.where(np.isfinite(peak), peak, np.nan)
    pk = _fill(pk[:, :, None])[:, :, 0]
    pk = np.where(np.isfinite(pk), pk, mag)
    g0 = xyz[:, 0:LO - 20].mean(axis=1)  # 3–1 s before
    ng = np.linalg.norm(g0, axis=1, keepdims=True)
    u = g0 / np.maximum(ng, 1e-6)
    cos = np.einsum("nlk,nk->nl", xyz, u) / np.maximum(mag, 1e-6)
    ang = np.arccos(np.clip(cos, -1.0, 1.0))
    ang = np.where(ng > 0.3, ang, 0.0)
    k = 21
    pad = np.pad(xyz, ((0, 0), (k // 2, k // 2), (0, 0)), mode="edge")
    cs = np.cumsum(np.pad(pad, ((0, 0), (1, 0), (0, 0))), axis=1)
    mean = (cs[:, k:] - cs[:, :-k]) / k
    dyn = np.linalg.norm(xyz - mean, axis=2)
    return np.stack([mag - 1.0, pk - 1.0, ang, dyn], axis=1).astype(np.float32)


# --- MiniRocket transform ----------------------------------------------------------------------
def _conv(x: F32, d: int) -> F32:
    """(n, L) → (n, L, 84): every kernel at dilation d, zero padding."""
    n, L = x.shape
    xp = np.pad(x, ((0, 0), (4 * d, 4 * d)))
    sh = np.stack([xp[:, k * d:k * d + L] for k in range(9)], axis=2)  # (n, L, 9)
    out: F32 = (sh.reshape(n * L, 9) @ KERNELS.T).reshape(n, L, 84)
    return out


@dataclass(frozen=True)
class Rocket:
    biases: F32  # (channels, dilations, 84)

    def transform(self, ch: F32, batch: int = 4) -> F32:
        """(n, C, L) → (n, C × dilations × 84) PPV features (all kernels, dilations, channels at once)."""
        n, C, L = ch.shape
        P = 4 * max(DILATIONS)
        idx = (np.arange(L)[None, :, None] + P
               + (np.arange(9)[None, None, :] - 4) * np.asarray(DILATIONS)[:, None, None])  # (D, L, 9)
        out = np.empty((n, C * len(DILATIONS) * 84), dtype=np.float32)
        for a in range(0, n, batch):
            x = np.pad(ch[a:a + batch], ((0, 0), (0, 0), (P, P)))
            sh = x[:, :, idx]  # (b, C, D, L, 9)
            y = (sh.reshape(-1, 9) @ KERNELS.T).reshape(*sh.shape[:4], 84)
            ppv = np.count_nonzero(y > self.biases[None, :, :, None, :], axis=3) / np.float32(L)
            out[a:a + batch] = ppv.reshape(len(x), -1)
        return out


def fit_rocket(ch: F32, seed: int = SEED) -> Rocket:
    rng = np.random.default_rng(seed)
    C = ch.shape[1]
    biases = np.zeros((C, len(DILATIONS), 84), dtype=np.float32)
    q = 0
    for c in range(C):
        for j, d in enumerate(DILATIONS):
            ex = rng.integers(0, len(ch), size=84)
            y = _conv(ch[ex, c], d)  # (84, L, 84)
            for k in range(84):
                q += 1
                biases[c, j, k] = np.quantile(y[k, :, k], (q * PHI) % 1.0)
    return Rocket(biases)


# --- ridge from sufficient statistics -----------------------------------------------------------
@dataclass
class Stats:
    """Per class (0: daily activity, 1: fall): count, Σx, Σxxᵀ."""

    n: F64  # (2,)
    s1: F64  # (2, p)
    s2: F64  # (2, p, p)

    def __add__(self, o: Stats) -> Stats:
        return Stats(self.n + o.n, self.s1 + o.s1, self.s2 + o.s2)

    def __sub__(self, o: Stats) -> Stats:
        return Stats(self.n - o.n, self.s1 - o.s1, self.s2 - o.s2)


def stats(X: F32, y: I64) -> Stats:
    p = X.shape[1]
    n, s1, s2 = np.zeros(2), np.zeros((2, p)), np.zeros((2, p, p))
    for c in (0, 1):
        Xc = X[y == c].astype(np.float64)
        n[c] = len(Xc)
        s1[c] = Xc.sum(axis=0)
        s2[c] = Xc.T @ Xc
    return Stats(n, s1, s2)


@dataclass(frozen=True)
class Ridge:
    w: F64
    b: float

    def score(self, X: F32) -> F64:
        out: F64 = X.astype(np.float64) @ self.w + self.b
        return out


def ridge_path(st: Stats, alphas: tuple[float, ...]) -> list[Ridge]:
    a, b = 0.5 / max(st.n[1], 1.0), 0.5 / max(st.n[0], 1.0)
    mu = a * st.s1[1] + b * st.s1[0]
    C = a * st.s2[1] + b * st.s2[0] - np.outer(mu, mu)
    sd = np.sqrt(np.maximum(np.diag(C), 0.0)) + 1e-6
    R = C / np.outer(sd, sd)
    ybar = a * st.n[1] - b * st.n[0]
    r = (a * st.s1[1] - b * st.s1[0] - mu * ybar) / sd
    ev, V = np.linalg.eigh(R)
    Vr = V.T @ r
    out = []
    for al in alphas:
        bz = V @ (Vr / (np.maximum(ev, 0.0) + al))
        w = bz / sd
        out.append(Ridge(w, float(ybar - mu @ w)))
    return out


# --- data ---------------------------------------------------------------------------------------
@dataclass
class Part:
    """One set (as recorded + copies) as one table of candidates."""

    S: SetFeatures  # combined
    rec: B  # candidate comes from the recording as it is
    ch: F32  # (n, 4, 221)
    subj: NDArray[np.str_]  # per candidate
    fall: B  # per trial
    kind: list[str]  # per trial: activity
    n_rec: int  # trials as recorded (the first n_rec of S.trials)


def load(data: Path, cache: Path) -> dict[str, Part]:
    out = {}
    for name, folder in find_sets(data).items():
        Ss, chs, recs = [], [], []
        for c, S in training_parts(name, folder, cache, progress=False):
            vn = c.name
            w = np.load(cache / f"windows-{name}-{vn}.npz")
            assert len(w["xyz"]) == len(S.X)
            Ss.append(S)
            chs.append(channels(w["xyz"], w["peak"]))
            recs.append(np.full(len(S.X), vn == "rec"))
        n_rec = len(Ss[0].trials)
        S = combine(Ss)
        subj = np.array([t.subject for t in S.trials])[S.trial_of]
        out[name] = Part(S, np.concatenate(recs), np.concatenate(chs), subj,
                         np.array([t.fall for t in S.trials]), [t.activity for t in S.trials], n_rec)
    return out


def rows_labels(P: Part, keep: B) -> tuple[I64, I64]:
    """The recipe's training rows among the candidates `keep` (top candidate of a fall trial, all ADL)."""
    rows, y = fall_train.training_rows(P.fall, P.S.X, P.S.trial_of)
    m = keep[rows]
    return rows[m], y[m]


NONE = -1e9  # the score of a trial without a candidate


def trial_max(p: F64, trial_of: I64, n: int) -> F64:
    """Highest candidate score per trial (NONE without any; NaN scores ignored)."""
    out = np.full(n, NONE)
    ok = np.isfinite(p)
    np.maximum.at(out, trial_of[ok], p[ok])
    return out


def auc(s: F64, y: B) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, s))


# --- models -------------------------------------------------------------------------------------
def tree_fit(X: F64, y: I64, w: F64 | None = None) -> Any:
    if w is None:
        return fall_train._fit(X, y)
    from sklearn.ensemble import HistGradientBoostingClassifier
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        clf = HistGradientBoostingClassifier(**fall_train.PARAMS)
        clf.fit(X, y, sample_weight=w)
    return clf


def kind_weights(P: Part, rows: I64, y: I64) -> F64:
    """Each activity kind (within each class) the same total weight; classes ½ each."""
    kinds = np.array(P.kind)[P.S.trial_of[rows]]
    w = np.zeros(len(rows))
    for c in (0, 1):
        m = y == c
        ks = Counter(kinds[m].tolist())
        w[m] = np.array([1.0 / ks[k] for k in kinds[m]]) / len(ks) * 0.5
    return w * len(rows)


class Scorers:
    """Fits every scorer on a set of candidates (training rows chosen by `keep`) with grouped folds."""

    def __init__(self, P: Part, feats: dict[str, F32], X22: F64) -> None:
        self.P, self.feats, self.X22 = P, feats, X22

    def fit(self, keep: B, folds: int) -> tuple[dict[str, Any], dict[str, F64], dict[str, float], str]:
        """(models, oof candidate scores per scorer, thresholds, note) on the candidates in `keep`."""
        P = self.P
        rows, y = rows_labels(P, keep)
        subjects = sorted(set(P.subj[keep].tolist()))
        tkeep = np.isin(np.array([t.subject for t in P.S.trials]), subjects)
        k = min(folds, len(subjects))
        fold_of = {s: i % k for i, s in enumerate(subjects)}
        cf = np.array([fold_of.get(s, -1) for s in P.subj])
        cf[~keep] = -1
        rf = cf[rows]
        oof: dict[str, F64] = {}
        models: dict[str, Any] = {}
        note = []
        # trees (shipped recipe) and the kind-weighted variant
        for nm, kw in (("trees", False), ("trees kindw", True)):
            o = np.full(len(P.rec), np.nan)
            for f in range(k):
                tr = rf != f
                w = kind_weights(P, rows[tr], y[tr]) if kw else None
                clf = tree_fit(self.X22[rows[tr]], y[tr], w)
                te = np.flatnonzero(cf == f)
                o[te] = clf.predict_proba(self.X22[te])[:, 1]
            w = kind_weights(P, rows, y) if kw else None
            models[nm] = tree_fit(self.X22[rows], y, w)
            oof[nm] = o
        # ridge on rocket features: per-fold statistics, α by pooled OOF trial AUC
        tof = P.S.trial_of
        for nm, X in self.feats.items():
            fs = [stats(X[rows[rf == f]], y[rf == f]) for f in range(k)]
            tot = fs[0]
            for s in fs[1:]:
                tot = tot + s
            per_alpha = [np.full(len(P.rec), np.nan) for _ in ALPHAS]
            for f in range(k):
                te = np.flatnonzero(cf == f)
                for j, m in enumerate(ridge_path(tot - fs[f], ALPHAS)):
                    per_alpha[j][te] = m.score(X[te])
            aucs = [auc(trial_max(np.where(keep, o, np.nan), tof, len(P.fall))[tkeep], P.fall[tkeep])
                    for o in per_alpha]
            j = int(np.argmax(aucs))
            note.append(f"{nm} α {ALPHAS[j]:.0e} (oof AUC {aucs[j]:.3f})")
            oof[nm] = per_alpha[j]
            models[nm] = ridge_path(tot, (ALPHAS[j],))[0]
        # thresholds and the ensemble references
        ths: dict[str, float] = {}
        ref: dict[str, F64] = {}
        adl_trials = np.flatnonzero(~P.fall & tkeep)
        for nm, o in list(oof.items()):
            ts = trial_max(np.where(keep, o, np.nan), tof, len(P.fall))
            ref[nm] = np.sort(ts[adl_trials])
            ths[nm] = float(np.quantile(ref[nm], fall_train.ADL_QUANTILE))
        for en, parts in ENSEMBLES.items():
            if any(m not in oof for m in parts):
                continue
            o = np.mean([rank(ref[m], oof[m]) for m in parts], axis=0)
            oof[en] = o
            ts = trial_max(np.where(keep, o, np.nan), tof, len(P.fall))
            ths[en] = float(np.quantile(ts[adl_trials], fall_train.ADL_QUANTILE))
        models["ref"] = ref
        return models, oof, ths, "; ".join(note)


ENSEMBLES = {"ens trees+rocket": ("trees", "rocket"), "ens trees+rocket22": ("trees", "rocket+22")}


def rank(ref: F64, s: F64) -> F64:
    """Empirical CDF of `ref` (sorted) at s, linear between points."""
    n = len(ref)
    out: F64 = np.interp(s, ref, (np.arange(n) + 1.0) / n, left=0.0, right=1.0)
    return out


def score_all(models: dict[str, Any], X22: F64, feats: dict[str, F32]) -> dict[str, F64]:
    out: dict[str, F64] = {}
    for nm in ("trees", "trees kindw"):
        out[nm] = models[nm].predict_proba(X22)[:, 1]
    for nm, X in feats.items():
        out[nm] = models[nm].score(X)
    for en, parts in ENSEMBLES.items():
        if any(m not in out for m in parts):
            continue
        out[en] = np.mean([rank(models["ref"][m], out[m]) for m in parts], axis=0)
    return out


def rank22(ref: F64, X: F64) -> F32:
    """Each of the 22 features as its rank within the bias set's candidates (NaN → ½)."""
    out = np.full(X.shape, 0.5)
    for j in range(X.shape[1]):
        r = np.sort(ref[:, j][np.isfinite(ref[:, j])])
        ok = np.isfinite(X[:, j])
        if len(r):
            out[ok, j] = np.searchsorted(r, X[ok, j], side="right") / len(r)
    return out.astype(np.float32)


def line(tag: str, s: F64, y: B, th: float, acts: list[str]) -> str:
    q90, q95 = np.quantile(s[~y], 0.90), np.quantile(s[~y], 0.95)
    det = s >= th
    sens, spec = float(np.mean(det[y])), float(np.mean(~det[~y]))
    worst = Counter(a for a, d, f in zip(acts, det.tolist(), y.tolist(), strict=True) if d and not f)
    return (f"    {tag:20s} AUC {auc(s, y):.3f}  s@.90 {np.mean(s[y] > q90):.3f}  s@.95 {np.mean(s[y] > q95):.3f}  "
            f"q90 {sens:.3f}/{spec:.3f} (sum {sens + spec:.3f})  | " + ", ".join(f"{k} {v}" for k, v in worst.most_common(4)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--cache", type=Path, required=True)
    ap.add_argument("--no-loso", action="store_true")
    ap.add_argument("--no-cross", action="store_true")
    ap.add_argument("--trees-only", action="store_true", help="only the trees and the kind-weighted trees (fast)")
    ap.add_argument("--loso-sets", default="", help="comma-separated sets for leave-one-subject-out (default all)")
    ap.add_argument("--outer", type=int, default=0,
                    help="hold out groups of subjects (K folds, round robin in sorted order) instead of one at a time")
    a = ap.parse_args(argv)
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    t0 = time.perf_counter()
    parts = load(a.data, a.cache)
    names = sorted(parts)
    print(f"loaded {', '.join(f'{n} {len(parts[n].rec)} candidates' for n in names)}; "
          f"{time.perf_counter() - t0:.0f} s", flush=True)
    # one transform per bias set
    rockets = {n: fit_rocket(parts[n].ch) for n in names}
    feats: dict[tuple[str, str], dict[str, F32]] = {}  # (set, bias set) → features
    for n in names:
        for bn in names:
            if a.trees_only:
                feats[(n, bn)] = {}
                continue
            R = rockets[bn].transform(parts[n].ch)
            X22r = rank22(parts[bn].S.X[parts[bn].rec], parts[n].S.X)
            feats[(n, bn)] = {"rocket": R, "rocket+22": np.hstack([R, X22r])}
            print(f"  features of {n} with {bn}'s biases: {R.shape}; {time.perf_counter() - t0:.0f} s", flush=True)
    for an in names:
        for bn in names:
            if an == bn or a.no_cross:
                continue
            A, Bp = parts[an], parts[bn]
            models, _oof, ths, note = Scorers(A, feats[(an, an)], A.S.X).fit(np.ones(len(A.rec), bool), 4)
            sc = score_all(models, Bp.S.X[Bp.rec], {k: v[Bp.rec] for k, v in feats[(bn, an)].items()})
            tof = Bp.S.trial_of[Bp.rec]
            nt = Bp.n_rec
            y = Bp.fall[:nt]
            print(f"  {an} → {bn}: {note}; {time.perf_counter() - t0:.0f} s", flush=True)
            for nm, s in sc.items():
                print(line(f"{nm} (th {ths[nm]:.2f})", trial_max(s, tof, nt), y, ths[nm], Bp.kind[:nt]), flush=True)
    if a.no_loso:
        return 0
    for n in names:
        if a.loso_sets and n not in a.loso_sets.split(","):
            continue
        other = next(b for b in names if b != n)
        P = parts[n]
        nt = P.n_rec
        pooled: dict[str, F64] = {}
        thr: dict[str, F64] = {}
        tsubj = np.array([t.subject for t in P.S.trials])[:nt]
        subjects = sorted(set(P.subj[P.rec].tolist()))
        k = a.outer if a.outer else len(subjects)
        for f in range(k):
            held_s = subjects[f::k]
            s = ",".join(held_s)
            keep = ~np.isin(P.subj, held_s)
            models, _oof, ths, _note = Scorers(P, feats[(n, other)], P.S.X).fit(keep, 3)
            held = (~keep) & P.rec
            sc = score_all(models, P.S.X[held], {k: v[held] for k, v in feats[(n, other)].items()})
            for nm, v in sc.items():
                ts = trial_max(v, P.S.trial_of[held], nt)
                got = np.isin(tsubj, held_s)
                pooled.setdefault(nm, np.full(nt, np.nan))[got] = ts[got]
                thr.setdefault(nm, np.full(nt, np.nan))[got] = ths[nm]
            print(f"    LOSO {n}: {s} done; {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
        y = P.fall[:nt]
        how = f"{k} subject-grouped outer folds" if a.outer else "leave-one-subject-out"
        print(f"  {how} {n} (biases from {other}, pooled AUC):", flush=True)
        for nm, v in pooled.items():
            ok = np.isfinite(thr[nm])
            det = v >= thr[nm]
            sens, spec = float(np.mean(det[y & ok])), float(np.mean(~det[~y & ok]))
            print(f"    {nm:20s} AUC {auc(v[ok], y[ok]):.3f}  thresholds {np.nanmin(thr[nm]):.2f}–{np.nanmax(thr[nm]):.2f}  "
                  f"{sens:.3f}/{spec:.3f} (sum {sens + spec:.3f})", flush=True)
    print(f"took {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
