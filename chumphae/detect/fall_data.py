"""Labelled sets of wrist recordings for training and evaluating the fall model.

A set is a folder of CSV recordings (`t,ax,ay,az`, g) with a `labels.csv`
(`name, kind (fall|adl), activity, subject, age, hz`), the shape of
`../shared/data/falls/*/`. A folder of such folders is several sets.

Each trial is followed by `PAD_S` = 15 s of stillness at its last
orientation (a band keeps streaming after a fall; the trials stop), with a
little sensor noise seeded from the trial's name, so every run sees the same
bytes. For training, each trial is also seen clipped at ±2 g (consumer
watches often clip there; neither set does), as another trial of the same
subject, so grouped folds keep it with its original. Features of every candidate are cached per set in a `.npz` keyed by
the feature code's version and the files' sizes and times.
"""

from __future__ import annotations

import csv
import hashlib
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from chumphae.detect import fall_features as ff
from chumphae.detect.recordings import read_recording

PAD_S = 15.0
CLIP_AUGMENT_G = (2.0,)  # training also sees each trial as a ±2 g watch would have recorded it
FEATURE_VERSION = "1"


@dataclass(frozen=True, slots=True)
class Trial:
    set: str
    name: str
    path: Path
    fall: bool
    activity: str
    subject: str
    hz: float


@dataclass(frozen=True, slots=True)
class SetFeatures:
    """Every candidate of every trial of one set."""

    trials: list[Trial]
    X: NDArray[np.float64]  # (n_candidates, n_features)
    trial_of: NDArray[np.int64]  # (n_candidates,) index into trials
    t: NDArray[np.float64]  # candidate time, s
    decided_at: NDArray[np.float64]


def find_sets(root: Path) -> dict[str, Path]:
    """`root` itself if it has a labels.csv, else each sub-folder that has one."""
    if (root / "labels.csv").is_file():
        return {root.name: root}
    found = {p.parent.name: p.parent for p in sorted(root.glob("*/labels.csv"))}
    if not found:
        raise FileNotFoundError(f"{root}: no labels.csv in it or in its sub-folders")
    return found


def read_labels(name: str, folder: Path) -> list[Trial]:
    out = []
    with (folder / "labels.csv").open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            out.append(Trial(name, row["name"], folder / f"{row['name']}.csv", row["kind"] == "fall",
                             row["activity"], f"{name}:{row['subject']}", float(row["hz"] or 50)))
    return out


def pad_still(t: NDArray[np.float64], xyz: NDArray[np.float64], hz: float, seconds: float = PAD_S,
              seed: int = 0) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The trial followed by `seconds` of stillness at its last orientation (1 g, light noise)."""
    if len(t) == 0:
        return t, xyz
    n = int(seconds * hz)
    last = xyz[-1] / max(1e-6, float(np.linalg.norm(xyz[-1])))
    rng = np.random.default_rng(seed)
    tail = last + rng.normal(0.0, 0.004, (n, 3))
    return (np.r_[t, float(np.max(t)) + np.arange(1, n + 1) / hz], np.vstack([xyz, tail]))


def trial_seed(name: str) -> int:
    return zlib.crc32(name.encode())


def trial_candidates(tr: Trial, pad: bool = True, clip_g: float | None = None) -> list[ff.Candidate]:
    """Candidates of one trial (padded); `clip_g` first clips every axis at ±clip_g (a smaller watch)."""
    rec = read_recording(tr.path, "g")
    t, xyz = rec.t, rec.xyz
    if clip_g is not None:
        xyz = np.clip(xyz, -clip_g, clip_g)
    if pad:
        t, xyz = pad_still(t, xyz, tr.hz, seed=trial_seed(tr.name))
    _, ss = ff.streams(t, xyz, tr.hz)
    return [c for s in ss for c in ff.stream_candidates(s)]


def _cache_key(trials: list[Trial]) -> str:
    h = hashlib.sha256(FEATURE_VERSION.encode() + repr(ff.FEATURES).encode())
    for tr in trials:
        st = tr.path.stat()
        h.update(f"{tr.name}:{tr.fall}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def set_features(name: str, folder: Path, cache_dir: Path | None = None, limit: list[str] | None = None,
                 progress: bool = True, clip_g: float | None = None) -> SetFeatures:
    """Features of every candidate in a set (cached in `cache_dir` when given).

    `clip_g`: as if recorded by a watch whose axes clip at ±clip_g (training augmentation).
    """
    trials = read_labels(name, folder)
    if limit is not None:
        keep = set(limit)
        trials = [t for t in trials if t.name in keep]
    key = _cache_key(trials) + (f"-clip{clip_g:g}" if clip_g is not None else "")
    cache = cache_dir / f"falls-{name}-{key}.npz" if cache_dir else None
    if cache is not None and cache.is_file():
        z = np.load(cache)
        return SetFeatures(trials, z["X"], z["trial_of"], z["t"], z["decided_at"])
    rows: list[NDArray[np.float64]] = []
    of: list[int] = []
    tt: list[float] = []
    dec: list[float] = []
    for k, tr in enumerate(trials):
        for c in trial_candidates(tr, clip_g=clip_g):
            rows.append(c.features)
            of.append(k)
            tt.append(c.t)
            dec.append(c.decided_at)
        if progress and (k + 1) % 250 == 0:
            print(f"  {name}: features of {k + 1}/{len(trials)} trials", file=sys.stderr, flush=True)
    X = np.vstack(rows) if rows else np.zeros((0, len(ff.FEATURES)))
    out = SetFeatures(trials, X, np.asarray(of, dtype=np.int64), np.asarray(tt), np.asarray(dec))
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, X=out.X, trial_of=out.trial_of, t=out.t, decided_at=out.decided_at)
    return out


def combine(parts: list[SetFeatures]) -> SetFeatures:
    """Several sets' candidates as one (trial indices shifted)."""
    trials: list[Trial] = []
    Xs, ofs, ts, ds = [], [], [], []
    for S in parts:
        Xs.append(S.X)
        ofs.append(S.trial_of + len(trials))
        ts.append(S.t)
        ds.append(S.decided_at)
        trials += S.trials
    return SetFeatures(trials, np.vstack(Xs), np.concatenate(ofs), np.concatenate(ts), np.concatenate(ds))


def training_set(name: str, folder: Path, cache_dir: Path | None = None, limit: list[str] | None = None,
                 progress: bool = True) -> SetFeatures:
    """A set as the model is trained on it: the trials as recorded, plus a copy clipped at ±CLIP_AUGMENT_G."""
    parts = [set_features(name, folder, cache_dir, limit, progress)]
    for g in CLIP_AUGMENT_G:
        parts.append(set_features(name, folder, cache_dir, limit, progress, clip_g=g))
    return combine(parts)
