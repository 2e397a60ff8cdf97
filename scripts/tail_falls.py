#!/usr/bin/env python3
"""How much real data follows the moment that decides each trial, and what the model says there (falls-13).

    .venv/bin/python scripts/tail_falls.py --data ../shared/data/falls --cache DIR [--recipes shipped,ownpad]

For each cross-set direction and training recipe (fall_data.RECIPES), the
model is fitted on one set by the shipped procedure and scored on the other
as the evaluation pads it. Each test trial's deciding candidate (its highest
probability) is split by whether less than `POST_S` (8 s) of the trial's own
recording follows it (the rest of its window is the appended stillness),
and per kind the trials ringing at the recipe's threshold are counted in
each part. Descriptive: it chooses nothing. Needs scikit-learn.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from chumphae.detect import fall_features as ff
from chumphae.detect import fall_train
from chumphae.detect.fall_data import RECIPES, find_sets, set_features, training_set
from chumphae.detect.recordings import read_recording


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--cache", type=Path, default=None)
    ap.add_argument("--recipes", default="shipped,ownpad")
    a = ap.parse_args(argv)
    sets = find_sets(a.data)
    test = {n: set_features(n, f, a.cache, progress=False) for n, f in sets.items()}
    ends = {n: np.array([float(np.max(read_recording(t.path, "g").t)) for t in S.trials]) for n, S in test.items()}
    for r in a.recipes.split(","):
        for an, af in sets.items():
            T = training_set(an, af, a.cache, progress=False, copies=RECIPES[r])
            fall = np.array([t.fall for t in T.trials])
            m, _ = fall_train.fit_model(T.X, T.trial_of, fall, [t.subject for t in T.trials], {})
            for bn, S in test.items():
                if bn == an:
                    continue
                p = m.proba(S.X)
                best = np.full(len(S.trials), -1)
                for i, k in enumerate(S.trial_of.tolist()):
                    if best[k] < 0 or p[i] > p[best[k]]:
                        best[k] = i
                count: dict[tuple[str, bool], list[int]] = defaultdict(lambda: [0, 0])
                for k, tr in enumerate(S.trials):
                    if best[k] < 0:
                        continue
                    short = bool(ends[bn][k] - S.t[best[k]] < ff.POST_S)
                    key = ("FALLS" if tr.fall else tr.activity, short)
                    count[key][0] += int(p[best[k]] >= m.threshold)
                    count[key][1] += 1
                print(f"\n{r}: {an} → {bn} (threshold {m.threshold:.2f}); ringing / trials, deciding candidate "
                      f"with < {ff.POST_S:g} s of the recording after it | ≥ {ff.POST_S:g} s")
                kinds = sorted({k for k, _ in count}, key=lambda k: (k != "FALLS", -(count[(k, True)][0]
                                                                                  + count[(k, False)][0]), k))
                for k in kinds[:9]:
                    s, lng = count[(k, True)], count[(k, False)]
                    print(f"  {k:28} {s[0]:4}/{s[1]:<4} | {lng[0]:4}/{lng[1]:<4}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
