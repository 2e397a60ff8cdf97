"""The shipped per-second summary fall model (`fall_summary_model.json`), in fall_model.py's format.

Boosted trees over fall_summary_features.FEATURES, trained by
`scripts/train_falls.py --summary` on summaries made from the real
recordings; loaded and run by fall_model.py's code (flat arrays, numpy).
fall_summary.py uses it when the package ships it, else the summary rule.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path

from chumphae.detect import fall_model
from chumphae.detect.fall_model import FallModel
from chumphae.detect.fall_summary_features import FEATURES

MODEL_FILE = "fall_summary_model.json"


def load(path: str | Path | None = None) -> FallModel:
    """The summary model at `path`, or the one shipped in the package (fall_model.ModelError if none)."""
    return fall_model.load(path, MODEL_FILE, FEATURES)


@lru_cache(maxsize=1)
def shipped() -> FallModel | None:
    """The shipped summary model, or None when the package has none (the summary rule decides)."""
    if not resources.files("chumphae.detect").joinpath(MODEL_FILE).is_file():
        return None
    return load(None)
