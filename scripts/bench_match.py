"""How many positions per second the match step handles, scalar and batch, against a naive baseline.

Chumphae layer (mapdata/chumphae.gpkg), 2,000 patients with zones built from
the map (home parcel + nearest routes + a safe place), one position each near
home with an uncertainty disc. The naive baseline does the same work the
obvious way: unprepared `Polygon.contains` per point, every parcel and
building tried in turn, every route and landmark measured. Its answers are
checked against the matcher's on the sample it runs. All figures are medians
of repeated runs in this process; the last line is the summary.

    .venv/bin/python scripts/bench_match.py [--patients 2000] [--baseline-sample 100]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from datetime import UTC, datetime

import numpy as np
import shapely
from shapely.geometry import Point

from chumphae.map.demo import demo_homes
from chumphae.map.describe import describe
from chumphae.map.layers import MapLayers
from chumphae.map.match import Matcher, classify
from chumphae.map.store import DEFAULT_MAP
from chumphae.map.zones import Zone, build_zone
from chumphae.values import Position, ZoneStatus

NOON_BKK = datetime(2026, 3, 1, 5, 0, tzinfo=UTC)


def positions_near(homes: list, seed: int) -> list[Position]:  # type: ignore[type-arg]
    rng = np.random.default_rng(seed)
    out = []
    for h in homes:
        d, a = rng.exponential(60.0), rng.uniform(0, 2 * math.pi)  # mostly near home, some wander far
        lat = h.lat + d * math.cos(a) / 111_000
        lon = h.lon + d * math.sin(a) / (111_000 * math.cos(math.radians(h.lat)))
        out.append(Position("C0:CA:FE:00:00:01", NOON_BKK, lat, lon, float(rng.uniform(5, 50))))
    return out


class Naive:
    """The baseline: no STRtree, no prepared geometry, no vectorisation."""

    def __init__(self, layers: MapLayers) -> None:
        fresh = lambda arr: list(shapely.from_wkb(shapely.to_wkb(arr)))  # noqa: E731  (unprepared copies)
        self.metric = layers.metric
        self.parcels = list(zip(layers.parcels.codes, fresh(layers.parcels.geoms), strict=True))
        self.buildings = list(zip(layers.buildings.codes, fresh(layers.buildings.geoms), strict=True))
        self.routes = fresh(layers.routes.geoms)
        self.landmarks = list(zip(fresh(layers.landmarks.geoms), layers.landmarks.names_th,
                                  layers.landmarks.names_en, layers.landmarks.codes, strict=True))

    def match(self, p: Position, zone_geom: shapely.Geometry) -> tuple:  # type: ignore[type-arg]
        x, y = (float(v) for v in self.metric.xy(p.lon, p.lat))
        pt = Point(x, y)
        inside = zone_geom.contains(pt) or zone_geom.boundary.contains(pt)
        d = zone_geom.boundary.distance(pt)
        signed = -d if inside else d
        parcel = next((c for c, g in self.parcels if g.contains(pt) or g.touches(pt)), None)
        building = next((c for c, g in self.buildings if g.contains(pt) or g.touches(pt)), None)
        route_d = min(g.distance(pt) for g in self.routes)
        lm = min(self.landmarks, key=lambda t: t[0].distance(pt))
        th, _ = describe(x - lm[0].x, y - lm[0].y, lm[1], lm[2])
        return classify(signed, p.uncertainty_m), signed, parcel, building, route_d, th


def median_time(fn, repeats: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=2000)
    ap.add_argument("--baseline-sample", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    t0 = time.perf_counter()
    layers = MapLayers.from_file(DEFAULT_MAP)
    counts = layers.counts()
    print(f"layer: {DEFAULT_MAP.name} {counts} in EPSG:{layers.metric.epsg}, "
          f"loaded in {time.perf_counter() - t0:.2f} s")
    t0 = time.perf_counter()
    homes = demo_homes(layers, args.patients, seed=2024)
    zones: list[Zone] = [build_zone(layers, h.zone_spec(), patient_id=i, version=1) for i, h in enumerate(homes)]
    positions = positions_near(homes, seed=1)
    print(f"{len(zones)} patients with zones built from the map in {time.perf_counter() - t0:.2f} s")

    matcher = Matcher(layers)
    n = len(positions)
    scalar_s = median_time(lambda: [matcher.match(p, z) for p, z in zip(positions, zones, strict=True)],
                           args.repeats)
    batch_s = median_time(lambda: matcher.match_many(positions, zones), max(args.repeats, 5))
    results = matcher.match_many(positions, zones)

    naive = Naive(layers)
    sample = range(0, n, max(1, n // args.baseline_sample))
    naive_zones = {i: shapely.from_wkb(shapely.to_wkb(zones[i].day)) for i in sample}
    base_s = median_time(lambda: [naive.match(positions[i], naive_zones[i]) for i in sample], args.repeats)
    disagree = 0
    for i in sample:
        status, signed, parcel, building, route_d, th = naive.match(positions[i], naive_zones[i])
        m = results[i]
        same = (status is m.status and abs(signed - m.distance_to_boundary_m) < 1e-6  # type: ignore[operator]
                and parcel == m.place.parcel_code and building == m.place.building_code
                and abs(route_d - m.distance_to_route_m) < 1e-6 and th == m.place.description_th)  # type: ignore[operator]
        disagree += not same
    statuses = {s.value: sum(m.status is s for m in results) for s in ZoneStatus}

    scalar_rate, batch_rate, base_rate = n / scalar_s, n / batch_s, len(sample) / base_s
    print(f"statuses over {n} positions: {statuses}")
    print(f"naive baseline: {len(sample)} positions, median {base_s * 1000:.0f} ms → {base_rate:,.0f} positions/s; "
          f"disagreements with the matcher: {disagree}")
    print(f"scalar match(): {n} positions, median {scalar_s * 1000:.0f} ms → {scalar_rate:,.0f} positions/s")
    print(f"batch match_many(): {n} positions, median {batch_s * 1000:.0f} ms → {batch_rate:,.0f} positions/s")
    print(f"SUMMARY {n} patients on the Chumphae layer: scalar {scalar_rate:,.0f}/s "
          f"({scalar_rate / base_rate:,.0f}× naive), batch {batch_rate:,.0f}/s ({batch_rate / base_rate:,.0f}× naive), "
          f"naive {base_rate:,.1f}/s; {disagree} disagreements; patients={n} scalar_per_s={scalar_rate:.0f} "
          f"batch_per_s={batch_rate:.0f} naive_per_s={base_rate:.1f} disagreements={disagree}")


if __name__ == "__main__":
    main()
