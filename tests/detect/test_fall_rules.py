"""scripts/threshold_rules_falls.py: each operating-point rule on out-of-fold scores (kept from rotting)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np

from chumphae.detect import fall_train

ROOT = Path(__file__).resolve().parents[2]


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("threshold_rules_falls", ROOT / "scripts" / "threshold_rules_falls.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_rules_pick_thresholds_from_out_of_fold_scores() -> None:
    rng = np.random.default_rng(3)
    y = np.r_[np.ones(60, dtype=bool), np.zeros(240, dtype=bool)]
    s = np.clip(np.where(y, rng.normal(0.75, 0.15, len(y)), rng.normal(0.25, 0.15, len(y))), 0.0, 1.0)
    fold = np.arange(len(y)) % 4
    r = _script().rules(s, y, fold)
    assert r["1.5·sens+spec (falls-6)"] == fall_train.pick_threshold(s, y)  # the falls-6 recipe, exactly
    assert r["ADL quantile 0.90 (shipped)"] == fall_train.adl_quantile_threshold(s, y)  # the shipped one, exactly
    assert r["ADL quantile 0.90 (shipped)"] == float(np.quantile(s[~y], 0.90))
    assert abs(np.mean(s[y] >= r["fall quantile (sens 0.98)"]) - 0.98) <= 2 / 60  # numpy's interpolated quantile
    assert r["ADL quantile 0.85"] < r["ADL quantile 0.90 (shipped)"] < r["ADL quantile 0.95"]
    # well-separated classes: every rule lands between the two bulks
    assert all(0.2 < v < 0.8 for v in r.values()), r
