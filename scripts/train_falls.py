"""Train the shipped wrist fall model on labelled sets of real recordings.

    .venv/bin/python scripts/train_falls.py --data ../shared/data/falls [--units g|ms2] [--out PATH] [--cache DIR]
        [--subset N] [--summary]

--data is one set (a folder with labels.csv) or a folder of sets; the model
is fitted on every trial of every set found, each also as a ±2 g watch
and as another watch (20–60 Hz, rotated, gain, noise, range) would have recorded it (the reported generalisation
figures come from scripts/eval_falls.py's cross-set and leave-subjects-out
runs, never from data a model was fitted to). Writes
chumphae/detect/fall_model.json by default. Deterministic: fixed seeds, one
thread, trials in label order, so the same data gives the same bytes.
--subset N keeps the first N fall and N daily-activity trials of each set
(the tests use it). Needs scikit-learn (`pip install -e .[train]`).
--summary trains the per-second summary model instead (the same copies,
each made into the summaries a band advertises; fall_summary_features),
writing chumphae/detect/fall_summary_model.json by default.

The sets are read as scripts/eval_falls.py reads them (fall_data.read_labels:
kind fall|adl in any case, hz optional, `--units g|ms2` or a units column,
other loggers' headers and ms clocks) and checked before any work: a set in
other units than stated, or with no falls or no daily activities, is refused
with one line and nothing is written. Beside the raw model it writes the
fingerprints of the trials it was trained on (`fall_model.trials.txt` beside
`fall_model.json`; fall_data.write_fingerprints), by which eval_falls.py
leaves them out of the model's own figures.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path

import numpy as np

from chumphae.detect import fall_summary_data, fall_summary_features, fall_summary_model, fall_train
from chumphae.detect.fall_data import (
    CLIP_AUGMENT_G,
    DEVICE_HZ,
    WATCH_COPIES,
    LabelsError,
    Trial,
    check_units,
    find_sets,
    fingerprints_path,
    read_labels,
    training_set,
    write_fingerprints,
)
from chumphae.detect.fall_model import MODEL_FILE
from chumphae.detect.recordings import RecordingError

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "chumphae" / "detect" / MODEL_FILE
SUMMARY_OUT = ROOT / "chumphae" / "detect" / fall_summary_model.MODEL_FILE


def subset_names(name: str, folder: Path, n: int, units: str = "g") -> list[str]:
    trials = read_labels(name, folder, units)
    falls = [t.name for t in trials if t.fall][:n]
    adls = [t.name for t in trials if not t.fall][:n]
    return falls + adls


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=None, help=f"default {DEFAULT_OUT} ({SUMMARY_OUT} with --summary)")
    ap.add_argument("--cache", type=Path, default=None, help="folder for cached features (optional)")
    ap.add_argument("--subset", type=int, default=None)
    ap.add_argument("--units", choices=("g", "ms2"), default="g",
                    help="units of the trials' ax/ay/az (a units column in labels.csv overrides it per trial)")
    ap.add_argument("--summary", action="store_true", help="train the per-second summary model")
    a = ap.parse_args(argv)
    if a.out is None:
        a.out = SUMMARY_OUT if a.summary else DEFAULT_OUT
    t0 = time.perf_counter()
    try:
        sets = find_sets(a.data)
        used: list[Trial] = []
        for name, folder in sets.items():
            trials = read_labels(name, folder, a.units)
            if a.subset:
                keep = set(subset_names(name, folder, a.subset, a.units))
                trials = [t for t in trials if t.name in keep]
            if all(t.fall for t in trials) or not any(t.fall for t in trials):
                raise LabelsError(f"{name}: no {'daily activities' if any(t.fall for t in trials) else 'falls'} "
                                  "among its trials (labels.csv kind: fall or adl); the model needs both")
            for w in check_units(name, trials):
                print(w, file=sys.stderr)
            used += trials
    except (FileNotFoundError, LabelsError, RecordingError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if len({t.subject for t in used}) < 2:
        print("note: one subject only: no subject-grouped folds to choose the threshold by, so it is 0.5 "
              "(fall_train.fit_model)", file=sys.stderr)
    Xs, ofs, falls, groups, names = [], [], [], [], []
    offset = 0
    for name, folder in sets.items():
        limit = subset_names(name, folder, a.subset, a.units) if a.subset else None
        print(f"{name}: extracting features …", file=sys.stderr, flush=True)
        S = (fall_summary_data.training_set(name, folder, a.cache, limit=limit, units=a.units) if a.summary
             else training_set(name, folder, a.cache, limit=limit, units=a.units))
        Xs.append(S.X)
        ofs.append(S.trial_of + offset)
        falls += [t.fall for t in S.trials]
        groups += [t.subject for t in S.trials]
        offset += len(S.trials)
        copies = 1 + len(CLIP_AUGMENT_G) + WATCH_COPIES
        names.append(f"{name} ({sum(t.fall for t in S.trials) // copies} falls, "
                     f"{sum(not t.fall for t in S.trials) // copies} daily activities)")
    X, of, fall = np.vstack(Xs), np.concatenate(ofs), np.asarray(falls)
    print(f"fitting on {len(fall)} trials, {len(X)} candidates …", file=sys.stderr, flush=True)
    meta = {"trained_on": names, "params": fall_train.PARAMS, "threshold_rule": f"daily activities' out-of-fold quantile {fall_train.ADL_QUANTILE:g}",
            "clip_augment_g": list(CLIP_AUGMENT_G), "watch_copies": WATCH_COPIES, "watch_hz": list(DEVICE_HZ)}
    if a.summary:
        meta["model"] = "per-second summaries"
        meta["candidate_g"] = fall_summary_features.CANDIDATE_G
        model, d = fall_train.fit_model(X, of, fall, groups, meta, features=fall_summary_features.FEATURES,
                                        score=fall_summary_data.top_score(X))
    else:
        model, d = fall_train.fit_model(X, of, fall, groups, meta)
    text = fall_train.dumps(d)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(text, encoding="utf-8")
    if not a.summary:
        n = write_fingerprints(fingerprints_path(a.out), used)
        print(f"wrote {fingerprints_path(a.out)}: the fingerprints of its {n} training trials", file=sys.stderr)
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    print(f"wrote {a.out}: {len(text.encode()) / 1024:.0f} KiB, {len(model.trees)} trees, "
          f"threshold {model.threshold:.2f}, sha256 {digest}, {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
