#!/usr/bin/env python3
"""Operating-point rules for the fall model, compared cross-set (train A → test B, both ways).

    .venv/bin/python scripts/threshold_rules_falls.py --data ../shared/data/falls --cache DIR

Every rule picks the threshold from the TRAINING set only: its subject-grouped
out-of-fold trial scores (the same 4 folds as `fall_train.fit_model`). Each
rule is applied to two scorers: the model fitted on the whole training set
(what `train_falls.py` ships) and the mean of the 4 fold models (the models
the out-of-fold scores came from). Cross-set only (a few minutes on cached
features); no leave-subjects-out. Needs scikit-learn.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from chumphae.detect import fall_train
from chumphae.detect.fall_data import find_sets, set_features, training_set
from chumphae.detect.fall_features import FEATURES

F64 = NDArray[np.float64]
B = NDArray[np.bool_]


def objective_best(s: F64, y: B, w: float) -> tuple[float, float]:
    """(threshold, objective) maximising w·sens + spec on the 0.05…0.95 grid (fit_model's rule for w = 1.5)."""
    best, best_t = -1.0, 0.5
    for th in np.round(np.arange(0.05, 0.96, 0.01), 2):
        v = w * float(np.mean(s[y] >= th)) + float(np.mean(s[~y] < th))
        if v > best + 1e-12:
            best, best_t = v, float(th)
    return best_t, best


def plateau_mid(s: F64, y: B, w: float, tol: float) -> float:
    """Median of the thresholds whose objective is within `tol` of the best (a flat optimum's middle)."""
    ths = np.round(np.arange(0.05, 0.96, 0.01), 2)
    vals = np.array([w * np.mean(s[y] >= t) + np.mean(s[~y] < t) for t in ths])
    return float(np.median(ths[vals >= vals.max() - tol]))


def platt(s: F64, y: B) -> float:
    """Balanced logistic fit of the label on logit(score): the score where it crosses ½."""
    from sklearn.linear_model import LogisticRegression

    z = np.log(np.clip(s, 1e-6, 1 - 1e-6) / (1 - np.clip(s, 1e-6, 1 - 1e-6))).reshape(-1, 1)
    lr = LogisticRegression(class_weight="balanced").fit(z, y)
    zc = -float(lr.intercept_[0]) / float(lr.coef_[0, 0])
    return float(1 / (1 + np.exp(-zc)))


def rules(s: F64, y: B, fold: NDArray[np.int64]) -> dict[str, float]:
    ks = sorted(set(fold.tolist()))
    per_fold = [objective_best(s[fold == k], y[fold == k], 1.5)[0] for k in ks]
    out = {"1.5·sens+spec (falls-6)": objective_best(s, y, 1.5)[0],
           "sens+spec": objective_best(s, y, 1.0)[0],
           "plateau mid (1.5, ±0.01)": plateau_mid(s, y, 1.5, 0.01),
           "plateau mid (1.5, ±0.03)": plateau_mid(s, y, 1.5, 0.03),
           "fold mean of 1.5·sens+spec": float(np.mean(per_fold)),
           "fold median of 1.5·sens+spec": float(np.median(per_fold)),
           "Platt ½": platt(s, y)}
    for q in (0.85, 0.90, 0.93, 0.95):
        tag = " (shipped)" if q == fall_train.ADL_QUANTILE else ""
        out[f"ADL quantile {q:.2f}{tag}"] = float(np.quantile(s[~y], q))
    for sens in (0.97, 0.98):
        out[f"fall quantile (sens {sens:.2f})"] = float(np.quantile(s[y], 1 - sens))
    return out


def fit_oof(X: F64, trial_of: NDArray[np.int64], fall: B, groups: list[str], folds: int = 4
            ) -> tuple[F64, NDArray[np.int64], Any, list[Any]]:
    """fit_model's out-of-fold scores, each trial's fold, the full model and the fold models."""
    rows, y = fall_train.training_rows(fall, X, trial_of)
    g = np.asarray(groups)
    k, fold_of = fall_train.subject_folds(list(groups), folds)
    cand_fold = np.array([fold_of[s] for s in g[trial_of]])
    oof = np.zeros(len(X))
    fold_models = []
    for f in range(k):
        tr_rows = rows[cand_fold[rows] != f]
        clf = fall_train._fit(X[tr_rows], fall[trial_of[tr_rows]].astype(np.int64))
        fold_models.append(clf)
        te = np.flatnonzero(cand_fold == f)
        if len(te):
            oof[te] = clf.predict_proba(X[te])[:, 1]
    full = fall_train._fit(X[rows], y)
    trial_fold = np.array([fold_of[s] for s in g])
    return fall_train.trial_scores(oof, trial_of, len(fall)), trial_fold, full, fold_models


def report(name: str, ths: dict[str, float], scorers: dict[str, F64], y: B,
           acc: dict[tuple[str, str], list[tuple[float, float]]]) -> None:
    from sklearn.metrics import roc_auc_score

    for sn, s in scorers.items():
        q90, q95 = np.quantile(s[~y], 0.90), np.quantile(s[~y], 0.95)
        print(f"  {name} [{sn}] AUC {roc_auc_score(y, s):.3f} sens@0.90 {np.mean(s[y] > q90):.3f} "
              f"sens@0.95 {np.mean(s[y] > q95):.3f}")
        for rn, th in ths.items():
            sens, spec = float(np.mean(s[y] >= th)), float(np.mean(s[~y] < th))
            acc.setdefault((sn, rn), []).append((sens, spec))
            print(f"    {rn:32s} th {th:.3f}  sens {sens:.3f}  spec {spec:.3f}  sum {sens + spec:.3f}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--cache", type=Path, default=None)
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    sets = find_sets(a.data)
    feats = {n: set_features(n, f, a.cache) for n, f in sets.items()}
    train = {n: training_set(n, f, a.cache) for n, f in sets.items()}
    print(f"features: {len(FEATURES)}; {time.perf_counter() - t0:.0f} s", flush=True)
    acc: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for an, T in train.items():
        for bn, Bs in feats.items():
            if an == bn:
                continue
            print(f"  training on {an} …", file=sys.stderr, flush=True)
            fall = np.array([t.fall for t in T.trials])
            oof, tf, full, fms = fit_oof(T.X, T.trial_of, fall, [t.subject for t in T.trials])
            ths = rules(oof, fall, tf)
            y = np.array([t.fall for t in Bs.trials])

            def score(p: F64, Bs: Any = Bs) -> F64:
                return fall_train.trial_scores(p, Bs.trial_of, len(Bs.trials))

            scorers = {"full": score(full.predict_proba(Bs.X)[:, 1]),
                       "fold mean": score(np.mean([m.predict_proba(Bs.X)[:, 1] for m in fms], axis=0))}
            report(f"{an} → {bn}", ths, scorers, y, acc)
    print("summary (sens/spec per column: cross-set, in the order above)")
    for (sn, rn), v in acc.items():
        print(f"  [{sn:9s}] {rn:32s} " + "  ".join(f"{s:.3f}/{p:.3f}" for s, p in v)
              + f"  min sens {min(s for s, _ in v):.3f}")
    print(f"took {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
