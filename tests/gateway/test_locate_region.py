"""Locate regions: a band far off the route, heard now and then by one receiver at low RSSI, is
placed far from the receivers (wholly outside a route corridor), and a band at home under RSSI
noise stays inside its home zone all night."""

from __future__ import annotations

import math
import random
from datetime import timedelta

import shapely
from shapely.geometry import LineString, Point

from chumphae.detect.runner import Detectors
from chumphae.detect.thresholds import thresholds_for
from chumphae.values import AlertType, Match, Place, Position, ZoneStatus
from gateway.locate import Locator
from gateway.siteconfig import Receiver
from tests.gateway.builders import T0

LAT0, LON0 = 16.5442, 102.0997
M_LAT = 110_574.0
M_LON = M_LAT * math.cos(math.radians(LAT0))
P1M, N, SENS = -59.0, 2.2, -100.0


def rx(rid: str, x: float, y: float) -> Receiver:
    return Receiver(rid, LAT0 + y / M_LAT, LON0 + x / M_LON, P1M, N)


def xy(lat: float, lon: float) -> tuple[float, float]:
    return (lon - LON0) * M_LON, (lat - LAT0) * M_LAT


# a home receiver at (0, 0) and receivers every 100 m along a route on y = 0
RECEIVERS = [rx("home", 0, 0)] + [rx(f"r{k}", 100.0 * k, 0) for k in range(1, 5)]
CORRIDOR = LineString([(0, 0), (400, 0)]).buffer(20.0)  # the day zone: the route ± 20 m
HOME = Point(0, 0).buffer(30.0)  # the night zone: home parcel + margin


def heard(rnd: random.Random, shadow: dict[str, float], x: float, y: float) -> list[tuple[str, float]]:
    """One advert: per receiver, log-distance + slow shadowing (3 dB) + packet noise (4 dB), drops, sensitivity."""
    out = []
    for r in RECEIVERS:
        s = 0.9 * shadow.get(r.id, 0.0) + math.sqrt(1 - 0.81) * rnd.gauss(0, 3.0)
        shadow[r.id] = s
        rxx, rxy = xy(r.lat, r.lon)
        v = P1M - 10 * N * math.log10(max(0.5, math.hypot(x - rxx, y - rxy))) + s + rnd.gauss(0, 4.0)
        if v >= SENS and rnd.random() > 0.15:
            out.append((r.id, round(v)))
    return out


def region_status(p: Position, zone: shapely.Geometry) -> ZoneStatus:
    pts = [Point(*xy(lat, lon)) for lat, lon in p.region]
    half = p.region_cell_m * 0.7072
    if all(not zone.intersects(q) and zone.distance(q) >= half for q in pts):
        return ZoneStatus.OUTSIDE
    if all(zone.contains(q) and zone.exterior.distance(q) >= half for q in pts):
        return ZoneStatus.INSIDE
    return ZoneStatus.UNCERTAIN


def walk_then_stand(loc: Locator, rnd: random.Random, x: float, y: float, t0: float, secs: int) -> list[Position]:
    shadow: dict[str, float] = {}
    out = []
    for i in range(secs):
        now = t0 + i
        for rid, v in heard(rnd, shadow, x, y):
            loc.observe("AA:00:00:00:00:09", rid, v, T0 + timedelta(seconds=now), now)
        p = loc.estimate("AA:00:00:00:00:09", now)
        if p is not None:
            out.append(p)
    return out


def test_band_150_m_off_the_route_heard_faintly_is_confirmed_outside() -> None:
    rnd = random.Random(11)
    loc = Locator(RECEIVERS)
    walk_then_stand(loc, rnd, 150, 0, 0.0, 120)  # on the route first: the locator learns the packet rate
    far = walk_then_stand(loc, rnd, 150, 150, 120.0, 300)  # then 150 m off it, beside receiver r1/r2
    assert far, "the band is still heard now and then"
    statuses = [region_status(p, CORRIDOR) for p in far[30:]]
    assert all(s != ZoneStatus.INSIDE for s in statuses)
    # UNCERTAIN neither starts nor stops the dwell clock, INSIDE would: most fixes outside, none inside
    assert statuses.count(ZoneStatus.OUTSIDE) >= 0.5 * len(statuses)
    # the old answer ("near receiver X ± d") touched the corridor every time: the region does not
    assert all(p.region for p in far)
    # each cell carries its share of the probability (the matcher's `outside_p`): one weight per cell,
    # heaviest first, together the region's 95 %
    for p in far:
        assert len(p.region_weights) == len(p.region)
        assert list(p.region_weights) == sorted(p.region_weights, reverse=True)
        assert 0.949 <= sum(p.region_weights) <= 1.0 + 1e-6  # rounded to 1e-5 each


def test_region_holds_the_true_position_most_of_the_time() -> None:
    rnd = random.Random(12)
    loc = Locator(RECEIVERS)
    hits = total = 0
    for x, y in [(0, 5), (50, 10), (120, -15), (250, 40), (330, 90), (60, 70)]:
        ps = walk_then_stand(loc, rnd, x, y, 1000.0 * (hits + total + 1), 60)
        for p in ps[15:]:
            total += 1
            d = min(math.hypot(px - x, py - y) for px, py in (xy(a, b) for a, b in p.region))
            hits += d <= p.region_cell_m
    assert hits / total >= 0.85, hits / total


def test_patient_at_home_at_night_under_noise_raises_nothing() -> None:
    """A night (10 h) at home: RSSI noise must not put the whole region outside home + margin."""
    rnd = random.Random(13)
    loc = Locator(RECEIVERS)
    det = Detectors()
    det.set_thresholds(1, thresholds_for(8, 2))  # a wanderer: 30 s night dwell, the strictest
    night0 = T0.replace(hour=14)  # 21:00 Asia/Bangkok
    shadow: dict[str, float] = {}
    found = []
    for i in range(10 * 3600):
        now = float(i)
        t = night0 + timedelta(seconds=i)
        for rid, v in heard(rnd, shadow, 4.0, 3.0):
            loc.observe("AA:00:00:00:00:0A", rid, v, t, now)
        if i % 5:
            continue  # a fix every 5 s is plenty for a sleeping patient (and keeps the test quick)
        p = loc.estimate("AA:00:00:00:00:0A", now)
        assert p is not None
        st = region_status(p, HOME)
        px, py = xy(p.lat, p.lon)
        signed = HOME.exterior.distance(Point(px, py)) * (-1 if HOME.contains(Point(px, py)) else 1)
        m = Match(p, st, 1, signed, None, Place(None, None, None, "", ""), schedule="night",
                  clearance_m=0.0 if st == ZoneStatus.OUTSIDE else None)
        found += det.on_position(p, m, 1) + det.tick(t)
    assert [d for d in found if d.type in (AlertType.WANDER, AlertType.LEFT_COVERAGE)] == []
