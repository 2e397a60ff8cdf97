"""Fitting the fall model (needs scikit-learn: `pip install .[train]`; not used at run time).

Labels are per trial, not per moment: neither public set marks when in the
trial the fall happens. So in a fall trial the candidate with the highest
impact (smoothed |a| + raw peak) is the positive and its other candidates
are left out of training; every candidate of a daily-activity trial is a
negative. At run time a trial (or a stream) raises a fall when any
candidate's probability reaches the threshold.

The threshold is chosen on the training data only, from out-of-fold
trial scores (folds grouped by subject): the `ADL_QUANTILE` (0.90) quantile
of the daily-activity trials' scores, i.e. the threshold that would have
left 90 % of the training set's daily activities silent when their subjects
were held out. The earlier rule (`pick_threshold`: maximise sensitivity +
specificity with sensitivity counted `SENS_WEIGHT` times) chased a flat,
erratic optimum on a set with few kinds of fall (UMAFall: 0.06–0.44 across
near-identical models); the quantile of the daily activities depends on
their scores only and carried better across sets and subjects
(docs/fall-detection.md, "falls-7").
Everything is seeded and single-threaded: same data → same file.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from chumphae.detect.fall_features import FEATURES
from chumphae.detect.fall_model import FallModel, from_dict

SENS_WEIGHT = 1.5  # pick_threshold's weight (the rule before falls-7; kept for comparison scripts)
ADL_QUANTILE = 0.90  # the shipped rule: this quantile of the daily activities' out-of-fold scores
PARAMS: dict[str, Any] = dict(max_iter=150, learning_rate=0.06, max_leaf_nodes=12, min_samples_leaf=20,
                              l2_regularization=1.0, early_stopping=False, random_state=0)


def training_rows(fall: NDArray[np.bool_], X: NDArray[np.float64], trial_of: NDArray[np.int64],
                  score: NDArray[np.float64] | None = None) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """(row indices, labels): the top candidate of each fall trial, every candidate of the others.

    `score` ranks a fall trial's candidates (default: the raw features' smoothed + raw impact height)."""
    if score is None:
        score = np.nan_to_num(X[:, FEATURES.index("peak_s")]) + np.nan_to_num(X[:, FEATURES.index("peak_raw")])
    best: dict[int, int] = {}
    for r, k in enumerate(trial_of.tolist()):
        if fall[k] and (k not in best or score[r] > score[best[k]]):
            best[k] = r
    rows = [r for r, k in enumerate(trial_of.tolist()) if not fall[k] or best.get(k) == r]
    idx = np.asarray(rows, dtype=np.int64)
    return idx, fall[trial_of[idx]].astype(np.int64)


def _fit(X: NDArray[np.float64], y: NDArray[np.int64], weight: NDArray[np.float64] | None = None) -> Any:
    """One tree model, classes balanced; `weight` (a bag's subject multiplicities) on top of the balancing."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        clf = HistGradientBoostingClassifier(**PARAMS)
        weight = np.ones(len(y)) if weight is None else weight
        pos, neg = float(weight[y == 1].sum()), float(weight[y == 0].sum())
        w = weight * np.where(y == 1, 0.5 / max(1e-9, pos), 0.5 / max(1e-9, neg)) * float(weight.sum())
        clf.fit(X, y, sample_weight=w)
    return clf


BAG_SEED = 14  # bag k draws its subjects with numpy default_rng(BAG_SEED + k)


def _fit_bagged(X: NDArray[np.float64], y: NDArray[np.int64], row_groups: NDArray[np.str_], bags: int) -> list[Any]:
    """`bags` models, each on a bootstrap of the subjects (drawn with replacement; a subject drawn j times weighs
    its rows j times; falls-14, not shipped unless docs/fall-detection.md says so)."""
    subjects = sorted(set(row_groups.tolist()))
    index = {s: i for i, s in enumerate(subjects)}
    of_row = np.array([index[s] for s in row_groups.tolist()], dtype=np.int64)
    out = []
    for k in range(bags):
        draw = np.random.default_rng(BAG_SEED + k).integers(0, len(subjects), len(subjects))
        w = np.bincount(draw, minlength=len(subjects)).astype(np.float64)[of_row]
        keep = w > 0
        out.append(_fit(X[keep], y[keep], w[keep]))
    return out


def _proba(clfs: list[Any], X: NDArray[np.float64]) -> NDArray[np.float64]:
    """The models' log-odds averaged, as a probability (what the exported file computes)."""
    raw = np.mean([c.decision_function(X) for c in clfs], axis=0)
    out: NDArray[np.float64] = 1.0 / (1.0 + np.exp(-raw))
    return out


def export(clf: Any, threshold: float, meta: dict[str, Any], features: tuple[str, ...] = FEATURES) -> dict[str, Any]:
    trees = []
    for (pred,) in clf._predictors:
        nd = pred.nodes
        trees.append({
            "feature": nd["feature_idx"].astype(int).tolist(),
            "threshold": [float(v) for v in nd["num_threshold"]],
            "left": nd["left"].astype(int).tolist(),
            "right": nd["right"].astype(int).tolist(),
            "missing_left": [int(v) for v in nd["missing_go_to_left"]],
            "leaf": [int(v) for v in nd["is_leaf"]],
            "value": [float(v) for v in nd["value"]],
            "depth": int(nd["depth"].max()),
        })
    return {"format": "chumphae-fall-trees/1", "features": list(features),
            "baseline": round(float(np.ravel(clf._baseline_prediction)[0]), 9),
            "threshold": round(float(threshold), 6), "meta": meta, "trees": trees}


def export_bagged(clfs: list[Any], threshold: float, meta: dict[str, Any],
                  features: tuple[str, ...] = FEATURES) -> dict[str, Any]:
    """Several models as one file of the same format: every tree, its leaf values divided by the number of
    models, the baselines averaged (so the file's log-odds are the models' mean)."""
    parts = [export(c, threshold, meta, features) for c in clfs]
    d = parts[0]
    d["baseline"] = round(float(np.mean([float(np.ravel(c._baseline_prediction)[0]) for c in clfs])), 9)
    d["trees"] = [dict(t, value=[v / len(clfs) for v in t["value"]]) for p in parts for t in p["trees"]]
    return d


def dumps(model: dict[str, Any]) -> str:
    return json.dumps(model, separators=(",", ":"), sort_keys=True) + "\n"


def trial_scores(p: NDArray[np.float64], trial_of: NDArray[np.int64], n_trials: int) -> NDArray[np.float64]:
    """Highest candidate probability per trial (0 for a trial without candidates)."""
    out = np.zeros(n_trials)
    np.maximum.at(out, trial_of, p)
    return out


def pick_threshold(scores: NDArray[np.float64], fall: NDArray[np.bool_]) -> float:
    best, best_t = -1.0, 0.5
    for th in np.round(np.arange(0.05, 0.96, 0.01), 2):
        sens = float(np.mean(scores[fall] >= th)) if fall.any() else 0.0
        spec = float(np.mean(scores[~fall] < th)) if (~fall).any() else 0.0
        v = SENS_WEIGHT * sens + spec
        if v > best + 1e-12:
            best, best_t = v, float(th)
    return best_t


def adl_quantile_threshold(scores: NDArray[np.float64], fall: NDArray[np.bool_]) -> float:
    """The shipped rule: the ADL_QUANTILE quantile of the daily-activity trials' scores (0.5 without any)."""
    if not (~fall).any():
        return 0.5
    return float(np.quantile(scores[~fall], ADL_QUANTILE))


def subject_folds(groups: Sequence[str], folds: int) -> tuple[int, dict[str, int]]:
    """The number of folds (at most one per subject) and each subject's fold: subjects in sorted order, round
    robin (deterministic, no shuffling)."""
    subjects = sorted(set(groups))
    k = min(folds, len(subjects))
    return k, {s: i % k for i, s in enumerate(subjects)} if k else {}


def fit_model(X: NDArray[np.float64], trial_of: NDArray[np.int64], fall: NDArray[np.bool_],
              groups: Sequence[str], meta: dict[str, Any], folds: int = 4, features: tuple[str, ...] = FEATURES,
              score: NDArray[np.float64] | None = None, bags: int = 0) -> tuple[FallModel, dict[str, Any]]:
    """Fit on all rows; the threshold from grouped out-of-fold trial scores. Returns (model, json dict).

    `features` / `score`: another model's columns and its ranking of a fall trial's candidates (training_rows).
    `bags` > 0: that many models on bootstraps of the subjects, log-odds averaged (`_fit_bagged`), out of fold
    too (falls-14's variant)."""
    rows, y = training_rows(fall, X, trial_of, score)
    g = np.asarray(groups)
    k, fold_of = subject_folds(list(groups), folds)
    oof = np.zeros(len(X))
    if k >= 2:
        cand_fold = np.array([fold_of[s] for s in g[trial_of]])
        for f in range(k):
            tr_rows = rows[cand_fold[rows] != f]
            y_f = fall[trial_of[tr_rows]].astype(np.int64)
            clfs = _fit_bagged(X[tr_rows], y_f, g[trial_of[tr_rows]], bags) if bags else [_fit(X[tr_rows], y_f)]
            te = np.flatnonzero(cand_fold == f)
            if len(te):
                oof[te] = _proba(clfs, X[te]) if bags else clfs[0].predict_proba(X[te])[:, 1]
        threshold = adl_quantile_threshold(trial_scores(oof, trial_of, len(fall)), fall)
    else:
        threshold = 0.5
    if bags:
        d = export_bagged(_fit_bagged(X[rows], y, g[trial_of[rows]], bags), threshold, meta, features)
    else:
        d = export(_fit(X[rows], y), threshold, meta, features)
    return from_dict(json.loads(dumps(d)), features), d
