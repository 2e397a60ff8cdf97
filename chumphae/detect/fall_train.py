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
from collections.abc import Callable, Sequence
from functools import partial
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
              score: NDArray[np.float64] | None = None, bags: int = 0, activities: Sequence[str] | None = None,
              drop_ks: Sequence[int] = (), subject_weight: bool = False,
              subject_power: float = 1.0, subject_powers: Sequence[float] = ()) -> tuple[FallModel, dict[str, Any]]:
    """Fit on all rows; the threshold from grouped out-of-fold trial scores. Returns (model, json dict).

    `features` / `score`: another model's columns and its ranking of a fall trial's candidates (training_rows).
    `bags` > 0: that many models on bootstraps of the subjects, log-odds averaged (`_fit_bagged`), out of fold
    too (falls-14's variant).
    `drop_ks` (falls-15's variant; needs each trial's `activities`): leave out the k features that most identify
    the subject among daily activities (`identity_order`), k chosen among `drop_ks` by the goal's ranking of
    the grouped out-of-fold scores (`choose_drop`); the threshold then comes from the chosen k's scores.
    `subject_weight` (falls-15's second variant): every subject's rows weigh the same in total within each class
    (`subject_weights`), in every fit; `subject_power` (falls-16's "subjhalf": 0.5) raises these weights to that
    power, so a subject with n rows in a class weighs n ** (1 - power) in total (0: the shipped weights).
    `subject_powers` (falls-17's "subjauto"): the power chosen among these inside the training set by the goal's
    ranking of the grouped out-of-fold scores (`choose_power`); the final fit uses it and the threshold comes
    from its out-of-fold scores (overrides `subject_weight` / `subject_power`)."""
    rows, y = training_rows(fall, X, trial_of, score)
    g = np.asarray(groups)
    k, fold_of = subject_folds(list(groups), folds)
    cand_fold = np.array([fold_of[s] for s in g[trial_of]]) if k >= 2 else np.zeros(len(X), dtype=np.int64)
    drop: list[int] = []
    if drop_ks:
        if activities is None:
            raise ValueError("drop_ks needs the trials' activities")
        drop, oof, table = choose_drop(X, rows, y, trial_of, fall, g, np.asarray(activities), cand_fold, k, drop_ks)
        meta = dict(meta, dropped_features=[features[j] for j in drop],
                    drop_choice={str(n): [round(a, 4), round(b, 4)] for n, (a, b) in table.items()})
    elif subject_powers and k >= 2:
        subject_power, oof, ptable = choose_power(X, rows, y, trial_of, fall, g, cand_fold, k, subject_powers)
        subject_weight = subject_power != 0
        meta = dict(meta, subject_power=subject_power,
                    power_choice={str(p): [round(a, 4), round(b, 4)] for p, (a, b) in ptable.items()})
    elif k >= 2:
        oof = _oof(X, rows, y, g[trial_of], cand_fold, k, bags, lambda f: [], subject_weight, subject_power)
    Xd = blank(X, drop)
    threshold = adl_quantile_threshold(trial_scores(oof, trial_of, len(fall)), fall) if k >= 2 else 0.5
    if bags:
        d = export_bagged(_fit_bagged(Xd[rows], y, g[trial_of[rows]], bags), threshold, meta, features)
    else:
        w = subject_weights(g[trial_of[rows]], y, subject_power) if subject_weight else None
        d = export(_fit(Xd[rows], y, w), threshold, meta, features)
    return from_dict(json.loads(dumps(d)), features), d


def _oof(X: NDArray[np.float64], rows: NDArray[np.int64], y: NDArray[np.int64], cand_groups: NDArray[np.str_],
         cand_fold: NDArray[np.int64], k: int, bags: int, drop_of: Callable[[int], list[int]],
         subject_weight: bool = False, subject_power: float = 1.0) -> NDArray[np.float64]:
    """Every candidate's probability by the model fitted on the other folds' training rows (`drop_of(f)`: the
    columns fold f's model leaves out)."""
    oof = np.zeros(len(X))
    pos = np.zeros(len(X), dtype=np.int64)
    pos[rows] = np.arange(len(rows))
    for f in range(k):
        tr_rows = rows[cand_fold[rows] != f]
        Xf = blank(X, drop_of(f))
        y_f = y[pos[tr_rows]]
        w = subject_weights(cand_groups[tr_rows], y_f, subject_power) if subject_weight else None
        clfs = _fit_bagged(Xf[tr_rows], y_f, cand_groups[tr_rows], bags) if bags else [_fit(Xf[tr_rows], y_f, w)]
        te = np.flatnonzero(cand_fold == f)
        if len(te):
            oof[te] = _proba(clfs, Xf[te]) if bags else clfs[0].predict_proba(Xf[te])[:, 1]
    return oof


def subject_weights(subjects: NDArray[np.str_], y: NDArray[np.int64], power: float = 1.0) -> NDArray[np.float64]:
    """Row weights under which every subject's rows of each class weigh 1 in total (falls-15's "subjw"), raised
    to `power`: a subject with n rows in a class then weighs n ** (1 - power) in total (falls-16's "subjhalf":
    0.5; power 0: every row 1, the shipped weights). `_fit` then balances the classes as usual."""
    key = np.char.add(subjects.astype(str), np.where(y == 1, "|1", "|0"))
    _, inv, counts = np.unique(key, return_inverse=True, return_counts=True)
    out: NDArray[np.float64] = counts[inv].astype(np.float64) ** -float(power)
    return out


# --- falls-17: the subject-balance power chosen inside the training set ------------------------------------
SUBJECT_POWERS = (0.0, 0.5, 1.0)  # the powers `choose_power` tries (0: shipped, 0.5: subjhalf, 1: subjw)


def choose_power(X: NDArray[np.float64], rows: NDArray[np.int64], y: NDArray[np.int64], trial_of: NDArray[np.int64],
                 fall: NDArray[np.bool_], groups: NDArray[np.str_], cand_fold: NDArray[np.int64], k: int,
                 powers: Sequence[float]) -> tuple[float, NDArray[np.float64], dict[float, tuple[float, float]]]:
    """(chosen power, its out-of-fold probabilities, each power's ranking of its own out-of-fold scores).

    For each power p, every one of the k subject-grouped folds is fitted with `subject_weights(..., p)` (p = 0:
    no weights, the shipped fit) and scores its held-out subjects; p is the one whose pooled out-of-fold trial
    scores have the highest sensitivity at specificity 0.95 plus specificity at sensitivity 0.96 (ties: the
    smaller p, `powers` being tried in increasing order). Only the training set's subjects are used."""
    cg = groups[trial_of]
    table: dict[float, tuple[float, float]] = {}
    best, best_oof, best_val = float(sorted(powers)[0]), np.zeros(len(X)), -np.inf
    for p in sorted(float(v) for v in powers):
        oof = _oof(X, rows, y, cg, cand_fold, k, 0, lambda f: [], p != 0, p)
        table[p] = goal_ranking(trial_scores(oof, trial_of, len(fall)), fall)
        if sum(table[p]) > best_val + 1e-12:
            best, best_oof, best_val = p, oof, sum(table[p])
    return best, best_oof, table


# --- falls-15: features that identify the wearer -----------------------------------------------------------
DROP_KS = (0, 3, 6)  # the numbers of most subject-identifying features `choose_drop` tries leaving out


def blank(X: NDArray[np.float64], cols: Sequence[int]) -> NDArray[np.float64]:
    """X with the columns `cols` set to 0 (a constant column is never split on: the trees then leave them out,
    and the model keeps its 22 inputs, so the file's format does not change)."""
    if not len(cols):
        return X
    out = X.copy()
    out[:, list(cols)] = 0.0
    return out


def average_ranks(v: NDArray[np.float64]) -> NDArray[np.float64]:
    """Ranks 1..n of `v`, ties given their mean rank."""
    order = np.argsort(v, kind="mergesort")
    sv = v[order]
    new = np.r_[True, sv[1:] != sv[:-1]]
    dense = np.cumsum(new)
    ends = np.r_[np.flatnonzero(new), len(v)]
    r = np.empty(len(v))
    r[order] = 0.5 * (ends[dense] + ends[dense - 1] + 1)
    return r


def subject_identity(X: NDArray[np.float64], subjects: NDArray[np.str_], activities: NDArray[np.str_]
                     ) -> NDArray[np.float64]:
    """Per column, how much its value tells the subject apart once the activity is known: the share of the
    variance of its ranks (missing values left out) explained by the subject, after each activity's mean rank
    is taken away (eta-squared of subject on activity-centred ranks; 0 for a constant column). Fed daily
    activities only, a high value means the feature describes the wearer, the watch on them or the session,
    not the movement."""
    out = np.zeros(X.shape[1])
    for j in range(X.shape[1]):
        ok = np.isfinite(X[:, j])
        if ok.sum() < 3:
            continue
        r = average_ranks(X[ok, j])
        r = r - _group_means(r, activities[ok])
        total = float(np.sum(r ** 2))
        out[j] = float(np.sum(_group_means(r, subjects[ok]) ** 2)) / total if total > 1e-12 else 0.0
    return out


def _group_means(v: NDArray[np.float64], labels: NDArray[np.str_]) -> NDArray[np.float64]:
    """Each element's group mean of `v`."""
    _, inv = np.unique(labels, return_inverse=True)
    means: NDArray[np.float64] = np.bincount(inv, v) / np.bincount(inv)
    return means[inv]


def identity_order(X: NDArray[np.float64], subjects: NDArray[np.str_], activities: NDArray[np.str_]) -> list[int]:
    """The columns, most subject-identifying first (`subject_identity`; ties by column order)."""
    e = subject_identity(X, subjects, activities)
    return [int(j) for j in np.argsort(-e, kind="stable")]


def goal_ranking(scores: NDArray[np.float64], fall: NDArray[np.bool_], spec_goal: float = 0.95,
                 sens_goal: float = 0.96) -> tuple[float, float]:
    """(sensitivity at specificity `spec_goal`, specificity at sensitivity `sens_goal`), the threshold swept on
    these very scores (the goal's two figures for a ranking)."""
    adl, fl = np.sort(scores[~fall])[::-1], np.sort(scores[fall])
    if not len(adl) or not len(fl):
        return float("nan"), float("nan")
    a = adl[int(np.floor((1.0 - spec_goal) * len(adl) + 1e-9))]  # ring strictly above it: ≤ 5 % of ADL ring
    th = fl[int(np.floor((1.0 - sens_goal) * len(fl) + 1e-9))]  # ring at or above it: ≤ 4 % of falls missed
    return float(np.mean(fl > a)), float(np.mean(adl < th))


def _top(orders: list[list[int]], n: int, f: int) -> list[int]:
    return orders[f][:n]


def choose_drop(X: NDArray[np.float64], rows: NDArray[np.int64], y: NDArray[np.int64], trial_of: NDArray[np.int64],
                fall: NDArray[np.bool_], groups: NDArray[np.str_], activities: NDArray[np.str_],
                cand_fold: NDArray[np.int64], k: int, drop_ks: Sequence[int]
                ) -> tuple[list[int], NDArray[np.float64], dict[int, tuple[float, float]]]:
    """(columns to leave out, the chosen k's out-of-fold probabilities, each k's ranking of them).

    For each k in `drop_ks`, each of the k subject-grouped folds ranks the columns on its own training
    subjects' daily-activity candidates (`identity_order`), leaves out its top k and scores the held-out
    subjects; k is the one whose pooled out-of-fold trial scores have the highest sensitivity at specificity
    0.95 plus specificity at sensitivity 0.96 (ties: the smaller k). The columns left out are then the top k
    on every training subject. No held-out subject's data shapes its fold's choice of columns."""
    adl = ~fall[trial_of]
    cg, ca = groups[trial_of], activities[trial_of]

    def order(mask: NDArray[np.bool_]) -> list[int]:
        m = mask & adl
        return identity_order(X[m], cg[m], ca[m])

    orders = [order(cand_fold != f) for f in range(k)] if k >= 2 else []
    table: dict[int, tuple[float, float]] = {}
    best, best_oof, best_val = int(drop_ks[0]), np.zeros(len(X)), -np.inf
    for n in drop_ks:
        if k < 2:
            break
        oof = _oof(X, rows, y, cg, cand_fold, k, 0, partial(_top, orders, int(n)))
        table[int(n)] = goal_ranking(trial_scores(oof, trial_of, len(fall)), fall)
        if sum(table[int(n)]) > best_val + 1e-12:
            best, best_oof, best_val = int(n), oof, sum(table[int(n)])
    return order(np.ones(len(X), dtype=bool))[:best], best_oof, table
