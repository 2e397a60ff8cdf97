"""falls-15's variant: leaving out the features that identify the subject among daily activities."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from chumphae.detect import fall_train
from chumphae.detect.fall_data import set_features
from chumphae.detect.fall_features import FEATURES
from tests.detect.test_fall_train import labelled_synthetic_set


def test_average_ranks_are_scipys() -> None:
    from scipy.stats import rankdata

    rng = np.random.default_rng(5)
    for _ in range(20):
        v = np.round(rng.normal(size=int(rng.integers(1, 60))), 1)  # many ties
        assert fall_train.average_ranks(v) == pytest.approx(rankdata(v))


def test_a_per_subject_offset_identifies_the_subject_and_an_activity_effect_does_not() -> None:
    rng = np.random.default_rng(0)
    n = 600
    subjects = np.array([f"S{i}" for i in rng.integers(0, 6, n)])
    activities = np.array([f"A{i}" for i in rng.integers(0, 4, n)])
    offset = {f"S{i}": 0.8 * i for i in range(6)}
    effect = {f"A{i}": 2.0 * i for i in range(4)}
    noise = rng.normal(size=(n, 4))
    X = np.column_stack([
        noise[:, 0] + [offset[s] for s in subjects],  # the wearer (or their watch)
        noise[:, 1] + [effect[a] for a in activities],  # the movement
        noise[:, 2],  # nothing
        np.zeros(n),  # constant
    ])
    X[rng.random(n) < 0.1, 0] = np.nan  # missing values are left out, not ranked
    e = fall_train.subject_identity(X, subjects, activities)
    assert e[0] > 0.5 and e[1] < 0.05 and e[2] < 0.05 and e[3] == 0.0
    assert fall_train.identity_order(X, subjects, activities)[0] == 0


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str], list[str]]:
    data = labelled_synthetic_set(Path(tmp_path_factory.mktemp("subjinv")) / "synthset")
    S = set_features("synthset", data, progress=False)
    fall = np.array([t.fall for t in S.trials])
    return S.X, S.trial_of, fall, [t.subject for t in S.trials], [t.activity for t in S.trials]


def test_without_drop_ks_the_model_is_the_shipped_recipes(synth: tuple) -> None:  # type: ignore[type-arg]
    """drop_ks (0,) chooses k = 0: the same trees and threshold as the shipped recipe, byte for byte."""
    X, of, fall, groups, acts = synth
    _, plain = fall_train.fit_model(X, of, fall, groups, {}, folds=3)
    _, zero = fall_train.fit_model(X, of, fall, groups, {}, folds=3, activities=acts, drop_ks=(0,))
    assert zero["meta"]["dropped_features"] == []
    zero["meta"] = plain["meta"]
    assert fall_train.dumps(zero) == fall_train.dumps(plain)


def _table(seed: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str], list[str]]:
    """A feature table of 8 subjects' trials, one candidate each: columns 0-2 carry a per-subject offset (the
    wearer), every column also carries the label, so a tree would split on any of them."""
    rng = np.random.default_rng(seed)
    n = 480
    subj = rng.integers(0, 8, n)
    fall = rng.random(n) < 0.3
    acts = [("fall" if f else f"A{i % 3}") for f, i in zip(fall.tolist(), range(n), strict=True)]
    X = rng.normal(size=(n, len(FEATURES))) + 1.5 * fall[:, None]
    X[:, :3] += 3.0 * subj[:, None]
    return X, np.arange(n, dtype=np.int64), fall, [f"S{s}" for s in subj.tolist()], acts


def test_the_left_out_features_are_the_most_identifying_and_no_tree_splits_on_them() -> None:
    X, of, fall, groups, acts = _table()
    g, a = np.asarray(groups), np.asarray(acts)
    adl = ~fall[of]
    top = fall_train.identity_order(X[adl], g[of][adl], a[of][adl])[:3]
    assert sorted(top) == [0, 1, 2]
    model, d = fall_train.fit_model(X, of, fall, groups, {}, folds=3, activities=acts, drop_ks=(3,))
    assert d["meta"]["dropped_features"] == [FEATURES[j] for j in top]
    used = {f for t in model.trees for f, leaf in zip(t.feature.tolist(), t.leaf.tolist(), strict=True) if not leaf}
    assert used and not used & set(top)
    assert set(d["meta"]["drop_choice"]) == {"3"}
    plain, _ = fall_train.fit_model(X, of, fall, groups, {}, folds=3)
    assert {f for t in plain.trees for f in t.feature[~t.leaf].tolist()} & set(top)  # the drop is what removes them
    json.dumps(d)  # the file stays plain JSON


def test_k_is_chosen_by_the_out_of_fold_ranking_and_ties_go_to_the_smaller_k(
        synth: tuple, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[type-arg]
    X, of, fall, groups, acts = synth
    g, a = np.asarray(groups), np.asarray(acts)
    rows, y = fall_train.training_rows(fall, X, of)
    k, fold_of = fall_train.subject_folds(groups, 3)
    cand_fold = np.array([fold_of[s] for s in g[of]])
    figures = {0: (0.5, 0.5), 3: (0.7, 0.4), 6: (0.6, 0.5)}  # sums 1.0, 1.1, 1.1: k = 3
    seen: list[int] = []

    def fake_ranking(scores: np.ndarray, f: np.ndarray) -> tuple[float, float]:
        return figures[(0, 3, 6)[len(seen) - 1]]

    real_oof = fall_train._oof

    def spy(*args, **kw):  # type: ignore[no-untyped-def]
        seen.append(len(args[7](0)))  # the number of columns fold 0 leaves out
        return real_oof(*args, **kw)

    calls: list[set[str]] = []
    real_order = fall_train.identity_order

    def order_spy(Xa: np.ndarray, subj: np.ndarray, act: np.ndarray) -> list[int]:
        calls.append(set(subj.tolist()))
        return real_order(Xa, subj, act)

    monkeypatch.setattr(fall_train, "goal_ranking", fake_ranking)
    monkeypatch.setattr(fall_train, "_oof", spy)
    monkeypatch.setattr(fall_train, "identity_order", order_spy)
    drop, _, table = fall_train.choose_drop(X, rows, y, of, fall, g, a, cand_fold, k, (0, 3, 6))
    assert seen == [0, 3, 6] and table == figures and len(drop) == 3
    # each fold ranks the features on its own training subjects only; the final choice on all of them
    assert len(calls) == k + 1 and calls[-1] == set(groups)
    for f in range(k):
        assert calls[f] == {s for s in groups if fold_of[s] != f}


def test_subject_weights_give_every_subject_the_same_total_within_each_class() -> None:
    rng = np.random.default_rng(2)
    subj = np.array([f"S{i}" for i in rng.integers(0, 5, 300)])
    y = (rng.random(300) < 0.25).astype(np.int64)
    w = fall_train.subject_weights(subj, y)
    for s in set(subj.tolist()):
        for c in (0, 1):
            m = (subj == s) & (y == c)
            if m.any():
                assert w[m].sum() == pytest.approx(1.0)
                assert np.ptp(w[m]) == 0.0


def test_subject_weights_change_the_fit_and_without_them_it_is_the_shipped_recipes() -> None:
    X, of, fall, groups, _ = _table(seed=3)
    groups = [("S0" if i % 2 else s) for i, s in enumerate(groups)]  # one subject with far more trials
    _, plain = fall_train.fit_model(X, of, fall, groups, {}, folds=3)
    _, off = fall_train.fit_model(X, of, fall, groups, {}, folds=3, subject_weight=False)
    _, on = fall_train.fit_model(X, of, fall, groups, {}, folds=3, subject_weight=True)
    assert fall_train.dumps(off) == fall_train.dumps(plain)
    assert fall_train.dumps(on) != fall_train.dumps(plain)
