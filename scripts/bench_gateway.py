#!/usr/bin/env python3
"""Gateway throughput: simulated band bytes in, positions out, on one core.

Builds a busy site (many bands, five receivers, each payload repeated three
times a second as real bands do) with the scenario simulator, then times the
gateway's decode + locate path over the same adverts:

* pipeline: `Decoders.decode` (AES-CCM verify, replay guard) → `Locator.observe`
  per advert, `Locator.estimate` once per heard band per second (what
  gateway.pipeline does);
* baseline: the naive shape — a new AES context per frame and a position
  estimate after every advert.

Prints medians of several runs and the ratio; the last line is a one-line summary.
Usage: .venv/bin/python scripts/bench_gateway.py [--bands 60] [--seconds 60] [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from chumphae.values import Advert  # noqa: E402
from gateway.decode import chumphae_band, default_decoders  # noqa: E402
from gateway.locate import Locator  # noqa: E402
from gateway.simulate.scenario import PatientPlan, Radio, Scenario  # noqa: E402
from gateway.simulate.source import SimSource  # noqa: E402
from gateway.siteconfig import SiteConfig, parse  # noqa: E402

LAT, LON = 16.5442, 102.0997


def build(bands: int, seconds: int) -> tuple[SiteConfig, list[Advert | None]]:
    dx = 0.0006
    rx = [{"id": f"rx{i}", "lat": LAT + a * dx, "lon": LON + b * dx, "p1m_dbm": -59, "path_loss_n": 2.0}
          for i, (a, b) in enumerate([(0, 0), (1, 1), (1, -1), (-1, 1), (-1, -1)])]
    bl = [{"address": f"C0:FF:EE:00:{i // 256:02X}:{i % 256:02X}", "key_hex": os.urandom(16).hex(), "patient_id": i + 1}
          for i in range(bands)]
    site = parse({"site_id": "bench", "receivers": rx, "bands": bl})
    plans = tuple(
        PatientPlan(band=i, at=(LAT + (i % 7 - 3) * 0.0002, LON + (i % 5 - 2) * 0.0002),
                    route=((LAT, LON), (LAT + 0.0005, LON + 0.0004)), speed_mps=0.8)
        for i in range(bands)
    )
    scen = Scenario("bench", 1, float(seconds), plans, Radio(path_loss_n=2.0, drop_rate=0.1, repeats=3, sensitivity_dbm=-100))
    return site, list(SimSource(scen, site, speed=0).frames())


def run_pipeline(site: SiteConfig, items: list[Advert | None]) -> tuple[float, int]:
    dec = default_decoders(site.key_for)
    loc = Locator(site.receivers)
    heard: set[str] = set()
    positions = 0
    t0 = time.perf_counter()
    now = 0.0
    for a in items:
        if a is None:
            for addr in heard:
                if loc.estimate(addr, now) is not None:
                    positions += 1
            heard.clear()
            continue
        now = a.monotonic
        r = dec.decode(a)
        if r is not None and loc.observe(r.address, r.receiver, r.rssi, r.t, a.monotonic):
            heard.add(r.address)
    return time.perf_counter() - t0, positions


def run_baseline(site: SiteConfig, items: list[Advert | None]) -> tuple[float, int]:
    guard = chumphae_band.ReplayGuard()
    loc = Locator(site.receivers)
    positions = 0
    t0 = time.perf_counter()
    for a in items:
        if a is None:
            continue
        payload = a.manufacturer_data.get(chumphae_band.COMPANY_ID)
        key = site.key_for(a.address)
        if payload is None or key is None:
            continue
        s = chumphae_band.decode_frame(a.address, key, payload)  # new AES context each frame
        guard.check(a.address, s.seq, a.monotonic)
        loc.observe(a.address, a.receiver, a.rssi, a.t, a.monotonic)
        if loc.estimate(a.address, a.monotonic) is not None:  # estimate per advert
            positions += 1
    return time.perf_counter() - t0, positions


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bands", type=int, default=60)
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core
    site, items = build(args.bands, args.seconds)
    n = sum(1 for a in items if a is not None)
    print(f"site: {args.bands} bands, {len(site.receivers)} receivers, {args.seconds} simulated s, {n} adverts")
    ours, base = [], []
    pos_ours = pos_base = 0
    for i in range(args.runs):
        t, pos_ours = run_pipeline(site, items)
        ours.append(n / t)
        t, pos_base = run_baseline(site, items)
        base.append(n / t)
        print(f"run {i + 1}: pipeline {ours[-1]:,.0f} adverts/s   baseline {base[-1]:,.0f} adverts/s")
    mo, mb = statistics.median(ours), statistics.median(base)
    print(f"positions out: pipeline {pos_ours} (one per band per second), baseline {pos_base} (one per advert)")
    print(f"median: pipeline {mo:,.0f} adverts/s, baseline {mb:,.0f} adverts/s, ratio {mo / mb:.2f}x")
    print(f"SUMMARY bench_gateway: {mo:,.0f} adverts/s decode+locate on one core "
          f"({args.bands} bands x {len(site.receivers)} receivers), {mo / mb:.2f}x the per-advert baseline ({mb:,.0f}/s)")


if __name__ == "__main__":
    main()
