"""The shipped fall model: a small tree ensemble read from JSON and run with numpy.

The file (`fall_model.json`, written by `scripts/train_falls.py`) holds
gradient-boosted trees exported from scikit-learn's
HistGradientBoostingClassifier as flat arrays, so the package needs neither
scikit-learn nor pickle at run time and the file is the same bytes for the
same data. A sample goes left when its feature is ≤ the threshold, or when
it is missing (NaN) and the node says missing values go left.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from chumphae.detect.fall_features import FEATURES

MODEL_FILE = "fall_model.json"


class ModelError(ValueError):
    """The model file is missing, malformed or made for other features."""


@dataclass(frozen=True, slots=True)
class Tree:
    feature: NDArray[np.int64]
    threshold: NDArray[np.float64]
    left: NDArray[np.int64]
    right: NDArray[np.int64]
    missing_left: NDArray[np.bool_]
    leaf: NDArray[np.bool_]
    value: NDArray[np.float64]
    depth: int


@dataclass(frozen=True, slots=True)
class FallModel:
    features: tuple[str, ...]
    baseline: float
    trees: tuple[Tree, ...]
    threshold: float  # report a fall when the probability reaches this
    meta: dict[str, Any]

    def proba(self, X: NDArray[np.float64]) -> NDArray[np.float64]:
        """Probability of a fall for each row of X (columns in `features` order)."""
        X = np.asarray(X, dtype=np.float64).reshape(-1, len(self.features))
        raw = np.full(len(X), self.baseline)
        rows = np.arange(len(X))
        for tr in self.trees:
            node = np.zeros(len(X), dtype=np.int64)
            for _ in range(tr.depth + 1):
                active = ~tr.leaf[node]
                if not active.any():
                    break
                f = tr.feature[node]
                x = X[rows, f]
                go_left = np.where(np.isnan(x), tr.missing_left[node], x <= tr.threshold[node])
                nxt = np.where(go_left, tr.left[node], tr.right[node])
                node = np.where(active, nxt, node)
            raw += tr.value[node]
        prob: NDArray[np.float64] = 1.0 / (1.0 + np.exp(-raw))
        return prob


def _tree(d: dict[str, Any]) -> Tree:
    return Tree(np.asarray(d["feature"], dtype=np.int64), np.asarray(d["threshold"], dtype=np.float64),
                np.asarray(d["left"], dtype=np.int64), np.asarray(d["right"], dtype=np.int64),
                np.asarray(d["missing_left"], dtype=bool), np.asarray(d["leaf"], dtype=bool),
                np.asarray(d["value"], dtype=np.float64), int(d["depth"]))


def from_dict(d: dict[str, Any], features: tuple[str, ...] = FEATURES) -> FallModel:
    """The model in `d`, which must be made for `features` (the raw-stream ones unless another model's given)."""
    expected = features
    try:
        features = tuple(d["features"])
        if features != expected:
            raise ModelError(f"model made for features {features}, this code computes {expected}")
        return FallModel(features, float(d["baseline"]), tuple(_tree(t) for t in d["trees"]),
                         float(d["threshold"]), dict(d.get("meta", {})))
    except (KeyError, TypeError, ValueError) as e:
        if isinstance(e, ModelError):
            raise
        raise ModelError(f"malformed fall model: {e}") from None


def load(path: str | Path | None = None, file: str = MODEL_FILE, features: tuple[str, ...] = FEATURES) -> FallModel:
    """The model at `path`, or the one shipped in the package as `file` (another model of the same format, e.g.
    the per-second summary model, gives its own file name and features)."""
    try:
        if path is None:
            text = resources.files("chumphae.detect").joinpath(file).read_text(encoding="utf-8")
        else:
            text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise ModelError(f"cannot read the fall model: {e}") from None
    return from_dict(json.loads(text), features)


@lru_cache(maxsize=1)
def shipped() -> FallModel:
    return load(None)
