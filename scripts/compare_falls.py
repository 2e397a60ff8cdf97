"""Quick cross-set comparison of fall-model variants (a few minutes; no leave-subjects-out).

    .venv/bin/python scripts/compare_falls.py --data ../shared/data/falls --cache DIR \\
        [--drop NAME,NAME] [--neg-weight W]

For exploring features and training recipes before a full
scripts/eval_falls.py run: fits by train_falls.py's procedure on one set
(with its clipped and other-watch copies) and scores the other, both ways.
Prints per direction the area under the ROC curve, sensitivity at 0.90 and
0.95 specificity (trial score = highest candidate probability), the
threshold chosen on the training set and sensitivity / specificity there,
and the daily-activity kinds with most false alarms. `--drop` leaves
features out (their column is set to 0, so no tree splits on it: add a new
feature to FEATURES, then compare with and without it); `--neg-weight`
multiplies the weight of daily-activity candidates (1 = balanced classes).
No figure comes from data a model was fitted to. Needs scikit-learn.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from chumphae.detect import fall_train
from chumphae.detect.fall_data import find_sets, set_features, training_set
from chumphae.detect.fall_features import FEATURES


def sens_at(s: NDArray[np.float64], y: NDArray[np.bool_], spec: float) -> float:
    """Sensitivity with the threshold that leaves `spec` of the daily activities below it."""
    return float(np.mean(s[y] > np.quantile(s[~y], spec)))


def weighted_fit(neg_weight: float) -> Any:
    def _fit(X: NDArray[np.float64], y: NDArray[np.int64]) -> Any:
        from sklearn.ensemble import HistGradientBoostingClassifier
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1):
            clf = HistGradientBoostingClassifier(**fall_train.PARAMS)
            w = np.where(y == 1, 0.5 / max(1, int(y.sum())),
                         neg_weight * 0.5 / max(1, int((1 - y).sum()))) * len(y)
            clf.fit(X, y, sample_weight=w)
        return clf
    return _fit


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--cache", type=Path, default=None)
    ap.add_argument("--drop", default="", help="comma-separated feature names to leave out")
    ap.add_argument("--neg-weight", type=float, default=1.0)
    a = ap.parse_args(argv)
    from sklearn.metrics import roc_auc_score

    drop = [FEATURES.index(n) for n in a.drop.split(",") if n]
    fall_train._fit = weighted_fit(a.neg_weight)
    t0 = time.perf_counter()
    sets = find_sets(a.data)
    feats = {n: set_features(n, f, a.cache) for n, f in sets.items()}
    train = {n: training_set(n, f, a.cache) for n, f in sets.items()}
    print(f"features: {len(FEATURES) - len(drop)} of {len(FEATURES)} (dropped: {a.drop or 'none'}), "
          f"negative weight {a.neg_weight:g}")
    for an, T in train.items():
        for bn, B in feats.items():
            if an == bn:
                continue
            print(f"  training on {an} …", file=sys.stderr, flush=True)
            TX, BX = T.X.copy(), B.X.copy()
            TX[:, drop] = 0.0
            BX[:, drop] = 0.0
            fall = np.array([t.fall for t in T.trials])
            m, _ = fall_train.fit_model(TX, T.trial_of, fall, [t.subject for t in T.trials], {})
            s = fall_train.trial_scores(m.proba(BX), B.trial_of, len(B.trials))
            y = np.array([t.fall for t in B.trials])
            sens, spec = np.mean(s[y] >= m.threshold), np.mean(s[~y] < m.threshold)
            print(f"  {an} → {bn}: AUC {roc_auc_score(y, s):.3f}  sens@0.90 {sens_at(s, y, 0.90):.3f}  "
                  f"sens@0.95 {sens_at(s, y, 0.95):.3f}  threshold {m.threshold:.2f}: "
                  f"sens {sens:.3f} spec {spec:.3f}")
            worst = Counter(t.activity for t, sc in zip(B.trials, s, strict=True)
                            if not t.fall and sc >= m.threshold)
            print("    worst ADL kinds: " + ", ".join(f"{k} {v}" for k, v in worst.most_common(5)))
    print(f"took {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
