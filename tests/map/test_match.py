"""The match step against hand-computed cases on a tiny map, and batch = scalar on the Chumphae map."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pytest

from chumphae.map.layers import MapLayers
from chumphae.map.match import Matcher, classify
from chumphae.map.zones import NightRule, ZoneSpec, build_zone
from chumphae.values import Position, ZoneStatus
from tests.map.conftest import lonlat

NOON_BKK = datetime(2026, 3, 1, 5, 0, tzinfo=UTC)  # 12:00 in Bangkok
NIGHT_BKK = datetime(2026, 3, 1, 16, 0, tzinfo=UTC)  # 23:00 in Bangkok


def pos(x: float, y: float, r: float, t: datetime = NOON_BKK) -> Position:
    lon, lat = lonlat(x, y)
    return Position(address="C0:CA:FE:00:00:01", t=t, lat=lat, lon=lon, uncertainty_m=r)


@pytest.fixture
def home_zone(tiny_layers: MapLayers):  # type: ignore[no-untyped-def]
    """Exactly the 40 × 40 m home parcel: no margin, no routes, no night rule."""
    return build_zone(tiny_layers, ZoneSpec(home_parcel_code="01A001", margin_m=0, night=None), version=3)


@pytest.mark.parametrize(("x", "y", "r", "status", "signed"), [
    (20, 20, 5, ZoneStatus.INSIDE, -20.0),       # centre of the parcel
    (20, 37, 5, ZoneStatus.UNCERTAIN, -3.0),     # inside, but the disc crosses the north edge
    (20, 43, 5, ZoneStatus.UNCERTAIN, 3.0),      # outside, disc reaches back in
    (20, 50, 5, ZoneStatus.OUTSIDE, 10.0),       # disc clear of the edge
    (43, 44, 4.9, ZoneStatus.OUTSIDE, 5.0),      # off the NE corner: √(3² + 4²) = 5 m
    (43, 44, 5.1, ZoneStatus.UNCERTAIN, 5.0),    # same point, a disc just big enough to touch
    (35, 35, 5, ZoneStatus.INSIDE, -5.0),        # near the corner inside: nearest edge 5 m away
    (35, 35, 6, ZoneStatus.UNCERTAIN, -5.0),
    (20, 40, 0, ZoneStatus.INSIDE, 0.0),         # exactly on the fence with no uncertainty counts as home
    (-10, 20, 0, ZoneStatus.OUTSIDE, 10.0),
])
def test_disc_against_home_parcel(tiny_layers: MapLayers, home_zone, x, y, r, status, signed) -> None:  # type: ignore[no-untyped-def]
    m = Matcher(tiny_layers).match(pos(x, y, r), home_zone)
    assert m.status is status
    assert m.distance_to_boundary_m == pytest.approx(signed, abs=1e-3)
    assert m.zone_version == 3


def test_route_corridor_and_its_round_end(tiny_layers: MapLayers) -> None:
    zone = build_zone(tiny_layers, ZoneSpec(home_parcel_code="01A001", margin_m=0, route_codes=("R1",),
                                            tolerance_m=10, night=None))
    matcher = Matcher(tiny_layers)
    on_path = matcher.match(pos(140, 20, 5), zone)
    assert on_path.status is ZoneStatus.INSIDE and on_path.distance_to_boundary_m == pytest.approx(-10, abs=1e-3)
    assert on_path.distance_to_route_m == pytest.approx(0, abs=1e-3)
    beside = matcher.match(pos(140, 36, 5), zone)  # 16 m from the path, corridor is ±10 m
    assert beside.status is ZoneStatus.OUTSIDE
    assert beside.distance_to_boundary_m == pytest.approx(6, abs=1e-3)
    assert beside.distance_to_route_m == pytest.approx(16, abs=1e-3)
    # Past the end of the path: the buffer's round cap (radius 10 around (240, 20)).
    beyond = matcher.match(pos(240 + 6, 20 + 8, 1), zone)  # 10 m from the end: on the cap
    assert beyond.status is ZoneStatus.UNCERTAIN
    assert abs(beyond.distance_to_boundary_m) < 0.05  # type: ignore[arg-type]
    far = matcher.match(pos(240 + 12, 20 + 16, 2), zone)  # 20 m from the end
    assert far.status is ZoneStatus.OUTSIDE and far.distance_to_boundary_m == pytest.approx(10, abs=0.05)


def test_night_only_the_home_counts(tiny_layers: MapLayers) -> None:
    zone = build_zone(tiny_layers, ZoneSpec(home_parcel_code="01A001", margin_m=0, route_codes=("R1",),
                                            tolerance_m=10, night=NightRule()))
    matcher = Matcher(tiny_layers)
    assert matcher.match(pos(140, 20, 5, NOON_BKK), zone).status is ZoneStatus.INSIDE
    at_night = matcher.match(pos(140, 20, 5, NIGHT_BKK), zone)
    assert at_night.status is ZoneStatus.OUTSIDE
    assert at_night.distance_to_boundary_m == pytest.approx(100, abs=1e-3)  # to the parcel's east edge x = 40
    assert matcher.match(pos(20, 20, 5, NIGHT_BKK), zone).status is ZoneStatus.INSIDE


def test_place_under_the_point_and_description(tiny_layers: MapLayers, home_zone) -> None:  # type: ignore[no-untyped-def]
    m = Matcher(tiny_layers).match(pos(15, 15, 3), home_zone)
    assert m.place.parcel_code == "01A001" and m.place.building_code == "01A001-B001"
    away = Matcher(tiny_layers).match(pos(0, 80, 3), home_zone)
    assert away.place.parcel_code is None and away.place.building_code is None
    assert away.place.landmark == "LM1"
    assert away.place.description_th == "ห่างจากวัดทดสอบ 120 ม. ทางทิศใต้"
    assert away.place.description_en == "120 m south of Wat Thotsop"
    north = Matcher(tiny_layers).place(*lonlat(0, 320))
    assert north.description_en == "120 m north of Wat Thotsop"


def test_no_zone_still_names_the_place(tiny_layers: MapLayers) -> None:
    m = Matcher(tiny_layers).match(pos(15, 15, 3), None)
    assert m.status is ZoneStatus.NO_ZONE and m.distance_to_boundary_m is None and m.zone_version is None
    assert m.place.building_code == "01A001-B001"


def test_classify_edges() -> None:
    assert classify(-5, 5) is ZoneStatus.INSIDE
    assert classify(5, 5) is ZoneStatus.OUTSIDE
    assert classify(4.99, 5) is ZoneStatus.UNCERTAIN
    assert classify(3, -1) is ZoneStatus.OUTSIDE  # a negative radius is treated as none


def test_batch_equals_scalar_on_the_chumphae_map(chumphae_layers: MapLayers) -> None:
    from chumphae.map.demo import demo_homes

    homes = demo_homes(chumphae_layers, 12, seed=7)
    zones = [build_zone(chumphae_layers, h.zone_spec(), patient_id=i, version=1) for i, h in enumerate(homes)]
    rng = np.random.default_rng(1)
    positions, zone_of = [], []
    for k in range(300):
        h = homes[k % len(homes)]
        d, a = rng.uniform(0, 400), rng.uniform(0, 2 * math.pi)
        lat = h.lat + d * math.cos(a) / 111_000
        lon = h.lon + d * math.sin(a) / (111_000 * math.cos(math.radians(h.lat)))
        t = NOON_BKK if k % 3 else NIGHT_BKK
        positions.append(Position("AA", t, lat, lon, float(rng.uniform(0, 60))))
        zone_of.append(zones[k % len(zones)] if k % 10 else None)
    matcher = Matcher(chumphae_layers)
    batch = matcher.match_many(positions, zone_of)
    scalar = [matcher.match(p, z) for p, z in zip(positions, zone_of, strict=True)]
    assert batch == scalar
    statuses = {m.status for m in batch}
    assert statuses == {ZoneStatus.INSIDE, ZoneStatus.OUTSIDE, ZoneStatus.UNCERTAIN, ZoneStatus.NO_ZONE}
    assert sum(m.place.parcel_code is not None for m in batch) > 100  # most points fall on a parcel


def test_the_probability_outside_weighs_the_regions_cells(tiny_layers: MapLayers, home_zone) -> None:  # type: ignore[no-untyped-def]
    """Three of five region cells lie outside the parcel, but they hold little of the probability: the
    share of cells says 0.6, the weights say 0.25 / 0.95; without weights the probability is unknown."""
    cells = [(20, 20), (20, 30), (20, 50), (20, 60), (20, 70)]  # 40 × 40 m parcel: two in, three out
    region = tuple((lat, lon) for lon, lat in (lonlat(x, y) for x, y in cells))
    weights = (0.4, 0.3, 0.1, 0.1, 0.05)
    base = pos(20, 45, 30)
    p = Position(base.address, base.t, base.lat, base.lon, 30.0, region=region, region_cell_m=5.0,
                 region_weights=weights)
    matcher = Matcher(tiny_layers)
    m = matcher.match(p, home_zone)
    assert m.status is ZoneStatus.UNCERTAIN
    assert m.outside_share == pytest.approx(0.6)
    assert m.outside_p == pytest.approx(0.25 / 0.95)
    assert matcher.match_many([p], [home_zone]) == [m]
    unweighted = matcher.match(Position(base.address, base.t, base.lat, base.lon, 30.0, region=region,
                                        region_cell_m=5.0), home_zone)
    assert unweighted.outside_share == pytest.approx(0.6) and unweighted.outside_p is None
    # the disc alone decides: certain either way
    assert matcher.match(pos(20, 80, 5), home_zone).outside_p == 1.0
    assert matcher.match(pos(20, 20, 5), home_zone).outside_p == 0.0
    # every cell out (the disc still touches the parcel): the whole probability is outside
    far = tuple((lat, lon) for lon, lat in (lonlat(x, y) for x, y in [(20, 60), (20, 70)]))
    out = matcher.match(Position(base.address, base.t, base.lat, base.lon, 30.0, region=far, region_cell_m=5.0,
                                 region_weights=(0.5, 0.45)), home_zone)
    assert out.status is ZoneStatus.OUTSIDE and out.outside_p == pytest.approx(1.0)


def test_a_region_run_ahead_of_its_centre_does_not_call_the_patient_outside(tiny_layers: MapLayers,
                                                                           home_zone) -> None:  # type: ignore[no-untyped-def]
    """Every cell clears the parcel, but the region's weighted mean lies ~45 m from the centre, which sits
    inside the parcel: the cloud jumped ahead of where a walking patient can be (the locate step's centre
    moves at walking pace). Uncertain, its probability outside still said; the same cells around a centre
    that followed them decide "outside"."""
    far = tuple((lat, lon) for lon, lat in (lonlat(x, y) for x, y in [(20, 60), (20, 70)]))
    matcher = Matcher(tiny_layers)
    for cy, status in ((20, ZoneStatus.UNCERTAIN), (50, ZoneStatus.OUTSIDE)):
        base = pos(20, cy, 50)
        p = Position(base.address, base.t, base.lat, base.lon, 50.0, region=far, region_cell_m=5.0,
                     region_weights=(0.5, 0.45))
        m = matcher.match(p, home_zone)
        assert m.status is status and m.outside_p == pytest.approx(1.0)
        assert (m.clearance_m is None) == (status is ZoneStatus.UNCERTAIN)
        assert matcher.match_many([p], [home_zone]) == [m]


def test_the_gateways_fallback_matcher_shares_the_lead_guard_and_says_the_probability_outside(
        tiny_layers: MapLayers, home_zone) -> None:  # type: ignore[no-untyped-def]
    """`gateway.basic.ZoneMatcher` (the gateway's own matcher, zones from the site config) judges a region
    by the same rule (`region_clears`, `lead_m`, `outside_p`): the region run ahead of a centre inside the
    parcel stays uncertain, the same cells around a centre that followed them decide "outside", and both
    carry the probability outside; a region straddling the edge carries its weight outside."""
    from shapely.geometry import box, mapping

    from gateway import siteconfig
    from gateway.basic import ZoneMatcher
    from tests.map.conftest import to_wgs

    parcel = mapping(to_wgs(box(0, 0, 40, 40)))
    cfg = siteconfig.parse({"site_id": "s", "version": 1, "receivers": [], "bands": [],
                            "zones": [{"patient_id": 1, "version": 3, "dwell_s": 60, "geometry": parcel}]})
    fallback = ZoneMatcher(cfg, night=lambda _pid, _t: False)
    far = tuple((lat, lon) for lon, lat in (lonlat(x, y) for x, y in [(20, 60), (20, 70)]))
    for cy, status in ((20, ZoneStatus.UNCERTAIN), (50, ZoneStatus.OUTSIDE)):
        base = pos(20, cy, 50)
        p = Position(base.address, base.t, base.lat, base.lon, 50.0, region=far, region_cell_m=5.0,
                     region_weights=(0.5, 0.45))
        m = fallback(p, 1)
        assert m is not None and m.status is status and m.outside_p == pytest.approx(1.0)
        exact = Matcher(tiny_layers).match(p, home_zone)
        assert m.status is exact.status
        if status is ZoneStatus.OUTSIDE:  # the nearest cell (y = 60) clears the edge by 20 m − half a cell;
            # the fallback's degrees → metres is the local approximation, within a couple of metres here
            assert exact.clearance_m == pytest.approx(20 - 5 * 0.7072, abs=0.1)
            assert m.clearance_m == pytest.approx(exact.clearance_m, abs=2.0)
    straddle = tuple((lat, lon) for lon, lat in (lonlat(x, y) for x, y in [(20, 30), (20, 50)]))
    base = pos(20, 40, 30)
    p = Position(base.address, base.t, base.lat, base.lon, 30.0, region=straddle, region_cell_m=5.0,
                 region_weights=(0.2, 0.6))
    m = fallback(p, 1)
    assert m is not None and m.status is ZoneStatus.UNCERTAIN and m.outside_p == pytest.approx(0.75)
    assert m.outside_p == Matcher(tiny_layers).match(p, home_zone).outside_p


def test_places_from_many_threads_with_a_cache_that_keeps_clearing(chumphae_layers: MapLayers) -> None:
    """One matcher serves the backend's threads (ingest, the status API): a cache cleared by one caller must not
    empty under another's reads, a clear must not lose the hits of the call that cleared it (a KeyError before,
    once the cache filled), and every answer is the place a fresh lookup gives."""
    from concurrent.futures import ThreadPoolExecutor

    from chumphae.map.demo import demo_homes

    h = demo_homes(chumphae_layers, 1, seed=7)[0]
    rng = np.random.default_rng(3)
    lats = (h.lat + rng.uniform(-0.003, 0.003, 400)).tolist()
    lons = (h.lon + rng.uniform(-0.003, 0.003, 400)).tolist()
    matcher = Matcher(chumphae_layers)
    matcher.PLACE_CACHE = 16  # every call clears it
    fresh = Matcher(chumphae_layers).places(lons, lats)

    def names(k: int) -> list[object]:
        return [p.parcel_code for p in matcher.places(lons[k % 7::7], lats[k % 7::7])]

    with ThreadPoolExecutor(max_workers=8) as pool:
        got = list(pool.map(names, range(64)))
    for k, codes in enumerate(got):
        assert codes == [p.parcel_code for p in fresh[k % 7::7]]
