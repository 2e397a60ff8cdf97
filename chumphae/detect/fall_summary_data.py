"""Labelled sets as per-second summaries, for training and evaluating the summary model.

Each trial (and each of fall_data.TRAINING_COPIES: as recorded, clipped at
±2 g, as another watch) is made into the summaries a band would advertise
(fall_summary_features.summarise, after the same 15 s padding), and every
candidate second gets its features. Cached per set and copy in a `.npz`
keyed like fall_data's feature cache.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from chumphae.detect import fall_data
from chumphae.detect import fall_summary_features as sf
from chumphae.detect.fall_data import Copy, SetFeatures, Trial, read_labels, trial_signal

SUMMARY_VERSION = "2"  # 2: rounded as an advert carries them
AS_RECORDED = fall_data.TRAINING_COPIES[0]  # the trials as recorded


def trial_features(tr: Trial, copy: Copy = AS_RECORDED) -> tuple[NDArray[np.float64], NDArray[np.float64],
                                                                NDArray[np.float64]]:
    """(features, candidate times, decision times) of one trial's summaries (padded), as `copy` sees it."""
    t, xyz, hz = trial_signal(tr, True, copy.clip_g, copy.other_watch)
    return sf.recording_features(*sf.summarise(t, xyz, hz))


def set_features(name: str, folder: Path, cache_dir: Path | None = None, limit: list[str] | None = None,
                 progress: bool = True, copy: Copy = AS_RECORDED, units: str = "g") -> SetFeatures:
    """Every summary candidate of every trial of a set, as `copy` sees it (cached in `cache_dir` when given)."""
    trials = read_labels(name, folder, units)
    if limit is not None:
        keep = set(limit)
        trials = [t for t in trials if t.name in keep]
    h = hashlib.sha256(f"{SUMMARY_VERSION}:{fall_data.FEATURE_VERSION}:{sf.FEATURES}:{copy}".encode())
    for tr in trials:
        st = tr.path.stat()
        h.update(f"{tr.name}:{tr.fall}:{st.st_size}:{st.st_mtime_ns}".encode() + (b":" + tr.units.encode() if tr.units != "g" else b""))
    cache = cache_dir / f"summary-{name}-{copy.name}-{h.hexdigest()[:16]}.npz" if cache_dir else None
    if cache is not None and cache.is_file():
        z = np.load(cache)
        return SetFeatures(trials, z["X"], z["trial_of"], z["t"], z["decided_at"])
    Xs: list[NDArray[np.float64]] = []
    of: list[NDArray[np.int64]] = []
    ts: list[NDArray[np.float64]] = []
    ds: list[NDArray[np.float64]] = []
    for k, tr in enumerate(trials):
        X, t, d = trial_features(tr, copy)
        Xs.append(X)
        of.append(np.full(len(X), k, dtype=np.int64))
        ts.append(t)
        ds.append(d)
        if progress and (k + 1) % 500 == 0:
            print(f"  {name} ({copy.name}): summaries of {k + 1}/{len(trials)} trials", file=sys.stderr, flush=True)
    out = SetFeatures(trials, np.vstack(Xs) if Xs else np.zeros((0, len(sf.FEATURES))),
                      np.concatenate(of) if of else np.zeros(0, dtype=np.int64),
                      np.concatenate(ts) if ts else np.zeros(0), np.concatenate(ds) if ds else np.zeros(0))
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, X=out.X, trial_of=out.trial_of, t=out.t, decided_at=out.decided_at)
    return out


def training_set(name: str, folder: Path, cache_dir: Path | None = None, limit: list[str] | None = None,
                 progress: bool = True, units: str = "g") -> SetFeatures:
    """A set as the summary model is trained on it: each of fall_data.TRAINING_COPIES, summarised, as one."""
    return fall_data.combine([set_features(name, folder, cache_dir, limit, progress, c, units)
                              for c in fall_data.TRAINING_COPIES])


def top_score(X: NDArray[np.float64]) -> NDArray[np.float64]:
    """Which candidate of a fall trial is its fall (fall_train.training_rows): the loudest second."""
    return np.nan_to_num(X[:, sf.FEATURES.index("peak_g")])
