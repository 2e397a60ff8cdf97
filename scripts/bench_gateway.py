#!/usr/bin/env python3
"""Gateway throughput: the whole pipeline (decode with authentication → locate → match → detect) on one core.

The site is a real one from the tax map (`mapdata/chumphae.gpkg`): a demo home, a receiver in the
house and receivers every 100 m along its two assigned routes (as `scripts/bench_detect.py` builds
them), and `--bands` bands, each a patient with that home's tax-map safe zone: half walk along the
routes, half stay at home. The scenario simulator makes the exact band frames (AES-CCM with each
band's key) every receiver would hear, each payload repeated three times a second as real bands do.
Then, over the very same adverts:

* pipeline: `gateway.pipeline.Pipeline` with the real steps (`gateway.steps.MapMatcher` on the tax
  map, `chumphae.detect.runner.Detectors`): `feed` per advert, as the gateway's scan loop calls it
  (decode with the cached AES context and replay guard, feed the locator, readings to the
  detectors; a repeat of a frame already handled only feeds the locator), `tick` once per simulated second
  (one locate estimate per heard band with its region, the due bands' tracks stepped in one batch,
  match, detect); no outbox (nothing written);
* baseline: the per-advert shape: a new AES context per frame, then locate (estimate with its
  region: a batch of one band), match and detect after every advert. It runs on the first `--baseline-seconds` of the
  same adverts (its rate is per advert, so a prefix measures it; the whole would take minutes).

Each run times both, by the process's CPU time (`time.process_time`: adverts per CPU-second on one
core, which a machine shared with other jobs does not distort) and by the wall clock; the figures
are medians over `--runs` runs, and the ratio is pipeline/baseline.
Memory per tracked band: tracemalloc's traced bytes after a full pass (locator tracks, detector
state, dedupe and sent-position books) minus before, divided by the bands (a separate, untimed pass).
The last line is `SUMMARY ...`.

Usage: .venv/bin/python scripts/bench_gateway.py [--bands 60] [--seconds 60] [--runs 5]
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import random
import statistics
import sys
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from chumphae.detect.runner import Detectors
from chumphae.detect.thresholds import thresholds_for
from chumphae.map.demo import demo_homes
from chumphae.map.layers import MapLayers
from chumphae.map.zones import Zone, build_zone
from chumphae.values import Advert
from gateway.decode import chumphae_band
from gateway.locate import Locator
from gateway.pipeline import Pipeline
from gateway.simulate.scenario import PatientPlan, Radio, Scenario
from gateway.simulate.source import SimSource
from gateway.siteconfig import SiteConfig, parse
from gateway.steps import MapMatcher

ROOT = Path(__file__).resolve().parents[1]
MAP = ROOT / "mapdata" / "chumphae.gpkg"
START = datetime(2025, 6, 2, 3, 0, tzinfo=UTC)  # 10:00 in Asia/Bangkok: the day zone


def build(layers: MapLayers, bands: int, seconds: int, spacing_m: float = 100.0,
          seed: int = 5) -> tuple[SiteConfig, Zone, list[Advert | None]]:
    """The site (receivers from the map), the patients' zone, and every advert of the scenario."""
    rng = random.Random(seed)
    home = demo_homes(layers, 1, seed=seed)[0]
    spec = home.zone_spec()
    zone = build_zone(layers, spec, patient_id=1, version=1)
    hx, hy = layers.metric.xy(home.lon, home.lat)
    pts: list[tuple[str, float, float]] = [("rx-home", float(hx), float(hy))]
    routes = [layers.routes.geoms[layers.routes.by_code[c]] for c in spec.route_codes]
    for code, line in zip(spec.route_codes, routes, strict=True):
        n = max(2, int(line.length // spacing_m) + 2)
        for k in range(n):
            p = line.interpolate(k * line.length / (n - 1))
            if all((p.x - x) ** 2 + (p.y - y) ** 2 > (spacing_m / 3) ** 2 for _i, x, y in pts):
                pts.append((f"rx-{code}-{k}", float(p.x), float(p.y)))
    lon, lat = layers.metric.lonlat([x for _i, x, _y in pts], [y for _i, _x, y in pts])
    rx = [{"id": i, "lat": float(la), "lon": float(lo), "p1m_dbm": -59.0, "path_loss_n": 2.2}
          for (i, _x, _y), la, lo in zip(pts, lat, lon, strict=True)]
    bl = [{"address": f"C0:FF:EE:00:{i // 256:02X}:{i % 256:02X}", "key_hex": rng.randbytes(16).hex(),
           "patient_id": i + 1} for i in range(bands)]
    site = parse({"site_id": "bench", "gateway_id": "gw-bench", "receivers": rx, "bands": bl,
                  "patients": [{"id": i + 1, "home": {"lat": home.lat, "lon": home.lon}} for i in range(bands)]})
    line = routes[0]
    walk = [line.interpolate(f * line.length) for f in (0.1, 0.4, 0.7, 0.9)]
    wlon, wlat = layers.metric.lonlat([p.x for p in walk], [p.y for p in walk])
    route = tuple((float(a), float(b)) for a, b in zip(wlat, wlon, strict=True))
    plans = tuple(
        PatientPlan(band=i, route=route, speed_mps=rng.uniform(0.6, 1.0)) if i % 2 else
        PatientPlan(band=i, at=(home.lat + rng.uniform(-5e-5, 5e-5), home.lon + rng.uniform(-5e-5, 5e-5)))
        for i in range(bands))
    scen = Scenario("bench", seed, float(seconds), plans,
                    Radio(path_loss_n=2.2, noise_db=4.0, shadowing_db=3.0, drop_rate=0.15, repeats=3))
    return site, zone, list(SimSource(scen, site, speed=0, start=START).frames())


def _steps(layers: MapLayers, site: SiteConfig, zone: Zone) -> tuple[MapMatcher, Detectors]:
    detectors = Detectors()
    pids = [b.patient_id for b in site.bands if b.patient_id is not None]
    for pid in pids:
        detectors.set_thresholds(pid, thresholds_for(8, 2))
    return MapMatcher(layers, {pid: zone for pid in pids}), detectors


def run_pipeline(layers: MapLayers, site: SiteConfig, zone: Zone,
                 items: list[Advert | None]) -> tuple[float, float, int]:
    matcher, detectors = _steps(layers, site, zone)
    pipe = Pipeline(site, None, matcher, detectors)
    now = 0.0
    c0, t0 = time.process_time(), time.perf_counter()
    for a in items:
        if a is None:
            now = float(int(now) + 1)
            pipe.tick(now, START + timedelta(seconds=now))
            continue
        now = a.monotonic
        pipe.feed(a)
    return time.process_time() - c0, time.perf_counter() - t0, pipe.stats.positions


def run_baseline(layers: MapLayers, site: SiteConfig, zone: Zone,
                 items: list[Advert | None]) -> tuple[float, float, int]:
    matcher, detectors = _steps(layers, site, zone)
    guard = chumphae_band.ReplayGuard()
    loc = Locator(site.receivers)
    positions = 0
    c0, t0 = time.process_time(), time.perf_counter()
    for a in items:
        if a is None:
            continue
        payload = a.manufacturer_data.get(chumphae_band.COMPANY_ID)
        key = site.key_for(a.address)
        if payload is None or key is None:
            continue
        s = chumphae_band.decode_frame(a.address, key, payload)  # a new AES context each frame
        guard.check(a.address, s.seq, a.monotonic)
        loc.observe(a.address, a.receiver, a.rssi, a.t, a.monotonic)
        pos = loc.estimate(a.address, a.monotonic)  # locate, match, detect after every advert
        if pos is not None:
            positions += 1
            pid = site.patient_for(a.address)
            detectors.on_position(pos, matcher(pos, pid), pid)
    return time.process_time() - c0, time.perf_counter() - t0, positions


def memory_per_band(layers: MapLayers, site: SiteConfig, zone: Zone, items: list[Advert | None],
                    bands: int) -> float:
    matcher, detectors = _steps(layers, site, zone)
    pipe = Pipeline(site, None, matcher, detectors)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    now = 0.0
    for a in items:
        if a is None:
            now = float(int(now) + 1)
            pipe.tick(now, START + timedelta(seconds=now))
        else:
            now = a.monotonic
            pipe.feed(a)
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return (after - before) / bands


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bands", type=int, default=60)
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--baseline-seconds", type=int, default=10)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--rx-spacing", type=float, default=100.0,
                    help="metres between receivers along the routes (50: the documented deployment, README)")
    a = ap.parse_args(argv)
    logging.getLogger("gateway.pipeline").setLevel(logging.ERROR)  # alerts are counted, not logged
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core
    layers = MapLayers.from_file(MAP)
    site, zone, items = build(layers, a.bands, a.seconds, a.rx_spacing)
    n = sum(1 for x in items if x is not None)
    cut, secs = len(items), 0
    for i, x in enumerate(items):
        if x is None:
            secs += 1
            if secs == a.baseline_seconds:
                cut = i + 1
                break
    prefix = items[:cut]
    nb = sum(1 for x in prefix if x is not None)
    print(f"site: {a.bands} bands, {len(site.receivers)} receivers (tax-map routes), {a.seconds} simulated s, "
          f"{n:,} adverts; baseline on the first {a.baseline_seconds} s ({nb:,} adverts)")
    ours, base, ours_wall, base_wall = [], [], [], []
    pos_ours = pos_base = 0
    for i in range(a.runs):
        c, t, pos_ours = run_pipeline(layers, site, zone, items)
        ours.append(n / c)
        ours_wall.append(n / t)
        c, t, pos_base = run_baseline(layers, site, zone, prefix)
        base.append(nb / c)
        base_wall.append(nb / t)
        print(f"run {i + 1}: pipeline {ours[-1]:,.0f} adverts/CPU-s ({ours_wall[-1]:,.0f}/s wall)   "
              f"baseline {base[-1]:,.0f} adverts/CPU-s ({base_wall[-1]:,.0f}/s wall)", flush=True)
    mo, mb = statistics.median(ours), statistics.median(base)
    mow, mbw = statistics.median(ours_wall), statistics.median(base_wall)
    mem = memory_per_band(layers, site, zone, items, a.bands)
    print(f"positions out: pipeline {pos_ours} (one per heard band per second), baseline {pos_base} (one per advert)")
    print(f"median: pipeline {mo:,.0f} adverts/CPU-s, baseline {mb:,.0f} adverts/CPU-s, ratio {mo / mb:.1f}x "
          f"(wall clock: {mow:,.0f}/s vs {mbw:,.0f}/s, {mow / mbw:.1f}x)")
    print(f"memory per tracked band: {mem / 1024:.1f} KiB (tracemalloc, after {a.seconds} s)")
    # adverts/CPU-s compares pipelines on the same site; across sites (--rx-spacing) more receivers hear each
    # packet, so the cost that matters is CPU per band per simulated second (how many bands one core carries)
    per_band_ms = 1000 * n / (mo * a.bands * a.seconds)
    print(f"CPU per band per simulated second: {per_band_ms:.2f} ms (one core carries ~{1000 / per_band_ms:,.0f} bands)")
    print(f"SUMMARY bench_gateway: {mo:,.0f} adverts/CPU-s decode(auth)+locate+match+detect on one core "
          f"({a.bands} bands x {len(site.receivers)} receivers), {mo / mb:.1f}x the per-advert baseline "
          f"({mb:,.0f}/s); {mem / 1024:.1f} KiB per tracked band; adverts_per_cpu_s={mo:.0f} "
          f"baseline_per_cpu_s={mb:.0f} adverts_per_wall_s={mow:.0f} kib_per_band={mem / 1024:.1f}")


if __name__ == "__main__":
    main()
