"""falls-17's variant "subjauto": the subject-balance power chosen among (0, 0.5, 1) inside the training set."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from chumphae.detect import fall_train
from chumphae.detect.fall_data import RECIPE_SUBJECT_POWERS, RECIPE_SUBJECT_WEIGHT, RECIPES, TRAINING_COPIES
from tests.detect.test_fall_subjhalf import eval_fit_kwargs
from tests.detect.test_fall_subjinv import _table

ROOT = Path(__file__).resolve().parents[2]
POWERS = (0.0, 0.5, 1.0)


def _uneven(seed: int) -> tuple[Any, Any, Any, list[str]]:
    X, of, fall, groups, _ = _table(seed=seed)
    return X, of, fall, [("S0" if i % 2 else s) for i, s in enumerate(groups)]  # one subject with many trials


def _rigged(monkeypatch: pytest.MonkeyPatch, winner: int | None) -> list[int]:
    """goal_ranking made to rank the `winner`-th power tried best (None: all tied); returns the calls seen."""
    calls: list[int] = []

    def fake(scores: np.ndarray, fall: np.ndarray, *a: Any) -> tuple[float, float]:
        calls.append(len(calls))
        return (0.9, 0.9) if winner is not None and len(calls) - 1 == winner else (0.5, 0.5)

    monkeypatch.setattr(fall_train, "goal_ranking", fake)
    return calls


@pytest.mark.parametrize("winner", [0, 1, 2])
def test_the_final_model_and_its_threshold_are_those_of_the_chosen_power(
        monkeypatch: pytest.MonkeyPatch, winner: int) -> None:
    X, of, fall, groups = _uneven(3)
    p = POWERS[winner]
    _, fixed = fall_train.fit_model(X, of, fall, groups, {}, folds=3, subject_weight=p != 0, subject_power=p)
    calls = _rigged(monkeypatch, winner)
    _, auto = fall_train.fit_model(X, of, fall, groups, {}, folds=3, subject_powers=POWERS)
    assert len(calls) == 3  # each power's out-of-fold scores ranked once
    assert auto["meta"]["subject_power"] == p
    assert auto["threshold"] == fixed["threshold"]  # from the chosen power's out-of-fold scores
    auto["meta"], fixed["meta"] = {}, {}
    assert fall_train.dumps(auto) == fall_train.dumps(fixed)


def test_a_tie_goes_to_the_smaller_power_which_at_zero_is_the_shipped_model(monkeypatch: pytest.MonkeyPatch) -> None:
    X, of, fall, groups = _uneven(4)
    _, plain = fall_train.fit_model(X, of, fall, groups, {}, folds=3)
    _rigged(monkeypatch, None)
    _, auto = fall_train.fit_model(X, of, fall, groups, {}, folds=3, subject_powers=(1.0, 0.5, 0.0))
    assert auto["meta"]["subject_power"] == 0.0
    auto["meta"] = {}
    assert fall_train.dumps(auto) == fall_train.dumps(plain)


def test_the_choice_is_the_best_of_each_powers_own_out_of_fold_ranking() -> None:
    X, of, fall, groups = _uneven(5)
    _, auto = fall_train.fit_model(X, of, fall, groups, {}, folds=3, subject_powers=POWERS)
    table = {float(k): sum(v) for k, v in auto["meta"]["power_choice"].items()}
    assert set(table) == set(POWERS)
    best = max(table.values())
    assert auto["meta"]["subject_power"] == min(p for p, v in table.items() if v >= best - 1e-3)
    # each entry is that power's own pooled out-of-fold ranking, as a fixed-power run computes it
    rows, y = fall_train.training_rows(fall, X, of)
    g = np.asarray(groups)
    k, fold_of = fall_train.subject_folds(groups, 3)
    cand_fold = np.array([fold_of[s] for s in g[of]])
    for p in POWERS:
        oof = fall_train._oof(X, rows, y, g[of], cand_fold, k, 0, lambda f: [], p != 0, p)
        want = fall_train.goal_ranking(fall_train.trial_scores(oof, of, len(fall)), fall)
        assert auto["meta"]["power_choice"][str(p)] == [round(want[0], 4), round(want[1], 4)]


def test_the_recipe_is_the_shipped_copies_and_eval_falls_passes_the_powers(monkeypatch: pytest.MonkeyPatch) -> None:
    assert RECIPES["subjauto"] == TRAINING_COPIES
    assert RECIPE_SUBJECT_POWERS == {"subjauto": POWERS} and "subjauto" not in RECIPE_SUBJECT_WEIGHT
    got = eval_fit_kwargs(monkeypatch, subject_powers=RECIPE_SUBJECT_POWERS["subjauto"])
    assert got["subject_powers"] == POWERS
