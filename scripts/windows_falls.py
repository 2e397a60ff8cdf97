#!/usr/bin/env python3
"""Build the feature cache and save the 20 Hz window around every candidate (for screening new features).

    .venv/bin/python scripts/windows_falls.py --data ../shared/data/falls --cache DIR

Runs `fall_data.set_features` for each set as recorded, clipped at ±2 g and
as another watch (what training and evaluation read), writing the usual
feature cache, and beside it `windows-<set>-<variant>.npz`: for every
candidate (same order as the cache's rows) the 20 Hz stream from PRE_S
before to POST_S after it (smoothed xyz, raw peak, clipped flag), so a new
feature can be screened in seconds (`scripts/features_falls.py`) without
reading and resampling the recordings again. Experiment tooling only.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from chumphae.detect import fall_features as ff
from chumphae.detect.fall_data import TRAINING_COPIES, find_sets, set_features

LO = int(round(ff.PRE_S * ff.RATE_HZ))
HI = int(round(ff.POST_S * ff.RATE_HZ)) + 1
WIN = LO + HI  # samples; the candidate sits at index LO

_captured: list[tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.bool_]]] = []
_orig = ff.features_at


def _capture(s: ff.Stream20, i: int) -> NDArray[np.float64]:
    xyz = np.full((WIN, 3), np.nan)
    peak = np.full(WIN, np.nan)
    clipped = np.zeros(WIN, dtype=bool)
    a, b = max(0, i - LO), min(len(s.t), i + HI)
    xyz[a - (i - LO):b - (i - LO)] = s.xyz[a:b]
    peak[a - (i - LO):b - (i - LO)] = s.peak[a:b]
    clipped[a - (i - LO):b - (i - LO)] = s.clipped[a:b]
    _captured.append((xyz, peak, clipped))
    return _orig(s, i)


def window_stream(xyz: NDArray[np.float64], peak: NDArray[np.float64], clipped: NDArray[np.bool_]
                  ) -> tuple[ff.Stream20, int]:
    """A saved window back as a Stream20 (only its valid part) and the candidate's index in it."""
    ok = np.flatnonzero(np.isfinite(peak))
    a, b = int(ok[0]), int(ok[-1]) + 1
    x = xyz[a:b]
    t = (np.arange(a, b) - LO) / ff.RATE_HZ
    return ff.Stream20(t, x, np.linalg.norm(x, axis=1), peak[a:b], clipped[a:b]), LO - a


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--cache", type=Path, required=True)
    ap.add_argument("--only", default="", help="comma-separated SET:VARIANT (e.g. fallalld:rec,umafall:clip2) "
                    "to build only those (run several processes in parallel)")
    a = ap.parse_args(argv)
    only = set(filter(None, a.only.split(",")))
    ff.features_at = _capture  # type: ignore[assignment]
    t0 = time.perf_counter()
    for name, folder in find_sets(a.data).items():
        for copy in TRAINING_COPIES:
            vname = copy.name
            if only and f"{name}:{vname}" not in only:
                continue
            out = a.cache / f"windows-{name}-{vname}.npz"
            _captured.clear()
            S = set_features(name, folder, a.cache, clip_g=copy.clip_g, other_watch=copy.other_watch)
            if not _captured:
                print(f"{name} {vname}: features were cached already; delete the cache to capture windows",
                      file=sys.stderr)
                continue
            assert len(_captured) == len(S.X)
            np.savez(out, xyz=np.stack([c[0] for c in _captured]), peak=np.stack([c[1] for c in _captured]),
                     clipped=np.stack([c[2] for c in _captured]))
            print(f"{name} {vname}: {len(S.X)} windows, {time.perf_counter() - t0:.0f} s", file=sys.stderr,
                  flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
