"""falls-16's variant "subjhalf": falls-15's subject-balanced weights raised to the power 0.5."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from chumphae.detect import fall_train
from chumphae.detect.fall_data import RECIPE_SUBJECT_POWER, RECIPE_SUBJECT_WEIGHT, RECIPES, TRAINING_COPIES
from tests.detect.test_fall_subjinv import _table

ROOT = Path(__file__).resolve().parents[2]


def _subjects_and_labels() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    subj = np.array([f"S{i}" for i in rng.integers(0, 6, 400)])
    subj[:120] = "S0"  # one subject with far more rows
    y = (rng.random(400) < 0.3).astype(np.int64)
    return subj, y


@pytest.mark.parametrize("power", [0.0, 0.5, 1.0])
def test_a_subject_with_n_rows_in_a_class_weighs_n_to_the_one_minus_power(power: float) -> None:
    subj, y = _subjects_and_labels()
    w = fall_train.subject_weights(subj, y, power)
    for s in set(subj.tolist()):
        for c in (0, 1):
            m = (subj == s) & (y == c)
            n = int(m.sum())
            if n:
                assert w[m] == pytest.approx(np.full(n, n ** -power))  # every row of it alike
                assert w[m].sum() == pytest.approx(n ** (1.0 - power))  # 0: n (shipped); 0.5: √n; 1: 1 (subjw)


def test_power_half_is_the_square_root_of_subjws_weights_and_power_zero_is_all_ones() -> None:
    subj, y = _subjects_and_labels()
    assert fall_train.subject_weights(subj, y, 0.5) == pytest.approx(np.sqrt(fall_train.subject_weights(subj, y)))
    assert np.array_equal(fall_train.subject_weights(subj, y, 0.0), np.ones(len(y)))


def test_power_zero_gives_the_shipped_bytes_and_half_is_neither_shipped_nor_subjw() -> None:
    X, of, fall, groups, _ = _table(seed=3)
    groups = [("S0" if i % 2 else s) for i, s in enumerate(groups)]  # one subject with far more trials
    _, plain = fall_train.fit_model(X, of, fall, groups, {}, folds=3)
    _, zero = fall_train.fit_model(X, of, fall, groups, {}, folds=3, subject_weight=True, subject_power=0.0)
    _, half = fall_train.fit_model(X, of, fall, groups, {}, folds=3, subject_weight=True, subject_power=0.5)
    _, full = fall_train.fit_model(X, of, fall, groups, {}, folds=3, subject_weight=True)
    assert fall_train.dumps(zero) == fall_train.dumps(plain)
    assert len({fall_train.dumps(plain), fall_train.dumps(half), fall_train.dumps(full)}) == 3


def test_the_power_reaches_every_fit_out_of_fold_and_final(monkeypatch: pytest.MonkeyPatch) -> None:
    X, of, fall, groups, _ = _table(seed=4)
    seen: list[float] = []
    real = fall_train.subject_weights

    def spy(subjects: np.ndarray, y: np.ndarray, power: float = 1.0) -> np.ndarray:
        seen.append(power)
        return real(subjects, y, power)

    monkeypatch.setattr(fall_train, "subject_weights", spy)
    fall_train.fit_model(X, of, fall, groups, {}, folds=3, subject_weight=True, subject_power=0.5)
    assert seen == [0.5] * 4  # three out-of-fold fits and the final one


def test_the_recipe_is_the_shipped_copies_with_power_half_and_eval_falls_passes_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert RECIPES["subjhalf"] == TRAINING_COPIES
    assert "subjhalf" in RECIPE_SUBJECT_WEIGHT and RECIPE_SUBJECT_POWER == {"subjhalf": 0.5}
    got = eval_fit_kwargs(monkeypatch, subject_weight=True, subject_power=RECIPE_SUBJECT_POWER["subjhalf"])
    assert got["subject_weight"] is True and got["subject_power"] == 0.5


def eval_fit_kwargs(monkeypatch: pytest.MonkeyPatch, **kw: Any) -> dict[str, Any]:
    """The keywords `scripts/eval_falls.py`'s `fit` hands to `fall_train.fit_model` when called with `kw`
    (on a small table; the fit itself is stopped at its start)."""
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import eval_falls as ev
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    got: dict[str, Any] = {}

    def fake_fit_model(*args: Any, **kw: Any) -> tuple[Any, dict[str, Any]]:
        got.update(kw)
        raise StopIteration

    monkeypatch.setattr(fall_train, "fit_model", fake_fit_model)
    X, of, fall, groups, acts = _table(seed=5)

    class S:  # the fields eval_falls.fit reads from a SetFeatures
        trials = [type("T", (), {"fall": bool(f), "subject": g, "activity": a})()
                  for f, g, a in zip(fall.tolist(), groups, acts, strict=True)]
        trial_of = of

    S.X = X  # type: ignore[attr-defined]
    with pytest.raises(StopIteration):
        ev.fit(S, np.ones(len(fall), dtype=bool), {}, **kw)  # type: ignore[arg-type]
    return got
