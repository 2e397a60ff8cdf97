#!/usr/bin/env python3
"""The live raw-stream path on labelled real trials: each trial played as a band through the gateway
pipeline (real band frames for the adverts, real GATT notifications; the rig of gateway/simulate/gattrig.py),
once with the raw path and once with the summary rule alone, beside the file detector (detect_falls).

Prints one JSON line per trial, then per set: falls with exactly one alert (and from which source),
daily activities alerted, summary-rule alerts overruled, and how often the raw-stream alert agrees
with the file detector. The shipped model was trained on FallAllD and UMAFall: on those sets these
are plumbing figures (does the live path say what the file detector says, one alert per fall), not
the model's; those come from scripts/eval_falls.py.

Usage: .venv/bin/python scripts/eval_live_falls.py --data ../shared/data/falls --subjects S02 [--first-take]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import logging
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from chumphae.detect.fall_detector import detect_falls  # noqa: E402
from gateway.simulate import gattrig  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=gattrig.DATA)
    ap.add_argument("--subjects", default="S02", help="comma-separated subject ids (labels.csv `subject`)")
    ap.add_argument("--first-take", action="store_true", help="FallAllD: only each activity's first trial (_T01)")
    a = ap.parse_args(argv)
    logging.disable(logging.CRITICAL)
    subjects = set(a.subjects.split(","))
    rows = []
    for s, hz in (("fallalld", 50), ("umafall", 20)):
        for r in csv.DictReader((a.data / s / "labels.csv").open(encoding="utf-8")):
            if r["subject"] not in subjects or (a.first_take and s == "fallalld" and not r["name"].endswith("_T01")):
                continue
            band = gattrig.recorded(s, r["name"], hz, a.data)
            offline = len(detect_falls(band.t, band.xyz, hz)) > 0
            rig = gattrig.Rig(band, Path(tempfile.mkdtemp()))
            asyncio.run(rig.play())
            alerts = rig.alerts()
            alone = gattrig.Rig(gattrig.recorded(s, r["name"], hz, a.data), Path(tempfile.mkdtemp()))
            alone.pipe.raw = None  # the same adverts, the summary rule alone
            asyncio.run(alone.play())
            row = {"set": s, "name": r["name"], "fall": r["kind"] == "fall", "file_detector": offline,
                   "gateway": [x["details"]["source"] for x in alerts], "summary_alone": len(alone.alerts()),
                   "overruled": rig.raw.gate.overruled, "deduped": rig.raw.gate.duplicates}
            rows.append(row)
            print(json.dumps(row), flush=True)
    for s in ("fallalld", "umafall"):
        rs = [r for r in rows if r["set"] == s]
        if not rs:
            continue
        falls, adl = [r for r in rs if r["fall"]], [r for r in rs if not r["fall"]]
        print(f"{s}: falls {len(falls)}: exactly one alert {sum(len(r['gateway']) == 1 for r in falls)} "
              f"(raw stream {sum(r['gateway'] == ['raw stream'] for r in falls)}), none "
              f"{sum(not r['gateway'] for r in falls)}, summary rule alone {sum(r['summary_alone'] > 0 for r in falls)}; "
              f"daily activities {len(adl)}: alerted {sum(bool(r['gateway']) for r in adl)}, summary rule alone "
              f"{sum(r['summary_alone'] > 0 for r in adl)}, overruled {sum(r['overruled'] for r in adl)}; "
              f"raw-stream alert iff the file detector found a fall: "
              f"{sum(('raw stream' in r['gateway']) == r['file_detector'] for r in rs)}/{len(rs)}")


if __name__ == "__main__":
    main()
