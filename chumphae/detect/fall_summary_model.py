"""The shipped per-second summary fall model (`fall_summary_model.json`), in fall_model.py's format.

Boosted trees over fall_summary_features.FEATURES, trained by
`scripts/train_falls.py --summary` on summaries made from the real
recordings; loaded and run by fall_model.py's code (flat arrays, numpy).
fall_summary.py uses it when the package ships it, else the summary rule.
`SummaryModel` is that model with physics' last word (falls-12): a candidate
after which the wearer walks on steadily (fall_summary_features.walks_on)
scores 0, offline (scripts/eval_falls.py) and live alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from chumphae.detect import fall_model
from chumphae.detect.fall_model import FallModel
from chumphae.detect.fall_summary_features import FEATURES, walks_on

MODEL_FILE = "fall_summary_model.json"


@dataclass(frozen=True, slots=True)
class SummaryModel(FallModel):
    """The trees' probability, 0 where the wearer walks on after the candidate (`walks_on`)."""

    def proba(self, X: NDArray[np.float64]) -> NDArray[np.float64]:
        X = np.asarray(X, dtype=np.float64).reshape(-1, len(self.features))
        p = FallModel.proba(self, X)
        out: NDArray[np.float64] = np.where(walks_on(X), 0.0, p)
        return out


def vetoing(m: FallModel) -> SummaryModel:
    """`m`'s trees with the walking-on veto (a SummaryModel stays as it is)."""
    return m if isinstance(m, SummaryModel) else SummaryModel(m.features, m.baseline, m.trees, m.threshold, m.meta)


def load(path: str | Path | None = None) -> SummaryModel:
    """The summary model at `path`, or the one shipped in the package (fall_model.ModelError if none)."""
    return vetoing(fall_model.load(path, MODEL_FILE, FEATURES))


@lru_cache(maxsize=1)
def shipped() -> SummaryModel | None:
    """The shipped summary model, or None when the package has none (the summary rule decides)."""
    if not resources.files("chumphae.detect").joinpath(MODEL_FILE).is_file():
        return None
    return load(None)
