"""Evaluate the wrist fall detector on a labelled set of recordings.

    .venv/bin/python scripts/eval_falls.py [--data DIR] [--per-kind 30] [--daily-hours 4] [--seed 1]

Without --data, an honest synthetic set is generated into a temp folder
(scripts/synth_falls.py says what it models and what it cannot). With
--data, DIR must hold a `manifest.json` in the same shape (file, kind, fall,
impacts, hz, units, hours), so real recordings can be scored the same way.

A fall trial counts as detected when a fall is reported within 2 s of the
true impact; any other report is a false alarm. Specificity is over the
non-fall trials (a trial with any report is a false positive). False alarms
per hour come from the long daily-activity traces. The same figures are
printed for a peak-threshold baseline (|a| ≥ 2.5 g, one report per 10 s),
measured in the same run, to show what the extra physics buys.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from chumphae.detect.fall_stream import FallParams, detect_falls, prepare  # noqa: E402
from chumphae.detect.recordings import read_recording  # noqa: E402

TOLERANCE_S = 2.0


def baseline(t: np.ndarray, xyz: np.ndarray, hz: float, thr: float = 2.5) -> list[float]:
    """The naive detector: every |a| peak over `thr`, at most one per 10 s."""
    out: list[float] = []
    for g in prepare(t, xyz, hz).grids:
        for i in np.flatnonzero(g.peak >= thr):
            if not out or g.t[i] > out[-1] + 10.0:
                out.append(float(g.t[i]))
    return out


def score(manifest: list[dict[str, object]], found: dict[str, list[float]]) -> dict[str, object]:
    tp = fn = tn = fp = 0
    fa_daily = 0
    hours = 0.0
    per_kind: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for m in manifest:
        times = found[str(m["file"])]
        impacts = [float(x) for x in m["impacts"]]  # type: ignore[attr-defined]
        kind = str(m["kind"])
        if kind == "daily":
            fa_daily += len(times)
            hours += float(m["hours"])  # type: ignore[arg-type]
            continue
        hit = [any(abs(x - imp) <= TOLERANCE_S for x in times) for imp in impacts]
        stray = [x for x in times if all(abs(x - imp) > TOLERANCE_S for imp in impacts)]
        if m["fall"]:
            tp += sum(hit)
            fn += len(hit) - sum(hit)
            per_kind[kind][0] += sum(hit)
            per_kind[kind][1] += len(hit)
        else:
            ok = not stray
            tn += ok
            fp += not ok
            per_kind[kind][0] += ok
            per_kind[kind][1] += 1
    return {"sensitivity": tp / max(1, tp + fn), "specificity": tn / max(1, tn + fp),
            "false_alarms_per_hour": fa_daily / hours if hours else float("nan"),
            "daily_hours": hours, "falls": tp + fn, "negatives": tn + fp, "per_kind": dict(per_kind)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path)
    ap.add_argument("--per-kind", type=int, default=30)
    ap.add_argument("--daily-hours", type=float, default=4.0)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    tmp = None
    if a.data is None:
        import synth_falls

        tmp = tempfile.TemporaryDirectory(prefix="falls_")
        a.data = Path(tmp.name)
        t0 = time.perf_counter()
        synth_falls.generate(a.data, a.per_kind, a.daily_hours, a.seed)
        print(f"synthesized set in {a.data} ({time.perf_counter() - t0:.1f} s, seed {a.seed})")
    manifest = json.loads((a.data / "manifest.json").read_text())
    ours: dict[str, list[float]] = {}
    base: dict[str, list[float]] = {}
    latency: list[float] = []
    per_hour_s: list[float] = []
    params = FallParams()
    for m in manifest:
        rec = read_recording(a.data / m["file"], m["units"])
        t0 = time.perf_counter()
        falls = detect_falls(rec.t, rec.xyz, float(m["hz"]), params)
        took = time.perf_counter() - t0
        span_h = max(1e-9, float(rec.t.max() - rec.t.min()) / 3600)
        per_hour_s.append(took / span_h)
        ours[m["file"]] = [f.t for f in falls]
        latency += [f.decided_at - f.t for f in falls if m["fall"]]
        base[m["file"]] = baseline(rec.t, rec.xyz, float(m["hz"]))
    so, sb = score(manifest, ours), score(manifest, base)
    print(f"\n{so['falls']} falls, {so['negatives']} hard-negative trials, {so['daily_hours']:.1f} h of daily activity")
    print(f"{'':24}{'detector':>12}{'baseline':>12}")
    for key in ("sensitivity", "specificity", "false_alarms_per_hour"):
        print(f"{key:24}{so[key]:>12.3f}{sb[key]:>12.3f}")
    fa_o, fa_b = so["false_alarms_per_hour"], sb["false_alarms_per_hour"]
    if fa_o:
        print(f"false alarms/hour, baseline ÷ detector: {fa_b / fa_o:.1f}×")
    else:
        print(f"false alarms/hour: detector 0 vs baseline {fa_b:.2f}")
    print("\nper kind (detected falls / correct negatives):")
    for kind, (ok, n) in so["per_kind"].items():  # type: ignore[union-attr]
        bk = sb["per_kind"][kind]  # type: ignore[index]
        print(f"  {kind:16}{ok:>4}/{n:<4} baseline {bk[0]:>4}/{bk[1]}")
    if latency:
        print(f"\ndecision latency after impact: median {statistics.median(latency):.1f} s, max {max(latency):.1f} s")
    print(f"processing: median {statistics.median(per_hour_s):.2f} s of CPU per hour of recording")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
