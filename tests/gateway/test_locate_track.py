"""Locate with a walking person's motion model (gateway/track.py): a walker along a route moves
smoothly (never faster than a person walks), a still patient's region shrinks as evidence
accumulates, and a walk along the route and off it raises wander within the dwell + 60 s, with
the alert saying how long and how far. RSSI from the same radio model as test_locate_region."""

from __future__ import annotations

import math
import random
from datetime import timedelta

from shapely.geometry import Point

from chumphae.detect.runner import Detectors
from chumphae.detect.thresholds import thresholds_for
from chumphae.values import AlertType, Match, Place, Position, ZoneStatus
from gateway.locate import Locator
from gateway.siteconfig import Receiver
from gateway.track import V_MAX
from tests.gateway.builders import T0
from tests.gateway.test_locate_region import (
    CORRIDOR,
    HOME,
    P1M,
    RECEIVERS,
    SENS,
    N,
    region_status,
    rx,
    xy,
)

ADDR = "AA:00:00:00:00:0B"
ZONE = CORRIDOR.union(HOME)  # the route 0–400 m ± 20 m and the home
# the road goes on past the zone's end, with receivers on it (another patient's route, a shop)
ROAD_ON = [*RECEIVERS, rx("r5", 500.0, 0.0), rx("r6", 600.0, 0.0), rx("r7", 700.0, 0.0)]


def heard(receivers: list[Receiver], rnd: random.Random, shadow: dict[str, float], x: float,
          y: float) -> list[tuple[str, float]]:
    """One advert: per receiver, log-distance + slow shadowing (3 dB) + packet noise (4 dB), drops, sensitivity."""
    out = []
    for r in receivers:
        s = 0.9 * shadow.get(r.id, 0.0) + math.sqrt(1 - 0.81) * rnd.gauss(0, 3.0)
        shadow[r.id] = s
        v = P1M - 10 * N * math.log10(max(0.5, math.dist((x, y), xy(r.lat, r.lon)))) + s + rnd.gauss(0, 4.0)
        if v >= SENS and rnd.random() > 0.15:
            out.append((r.id, round(v)))
    return out


def feed(loc: Locator, rnd: random.Random, shadow: dict[str, float], x: float, y: float, now: float) -> Position | None:
    for rid, v in heard(list(loc.receivers.values()), rnd, shadow, x, y):
        loc.observe(ADDR, rid, v, T0 + timedelta(seconds=now), now)
    return loc.estimate(ADDR, now)


def region_area(p: Position) -> float:
    return len(p.region) * p.region_cell_m**2


def test_walker_along_the_route_moves_smoothly_and_is_followed() -> None:
    rnd, shadow = random.Random(21), {}
    loc = Locator(RECEIVERS)
    track: list[tuple[float, Position]] = []
    for i in range(330):  # 30 s at the house, then 300 m along the road at 1 m/s
        x = max(0.0, i - 30.0)
        p = feed(loc, rnd, shadow, x, 0.0, float(i))
        if p is not None:
            track.append((x, p))
    assert len(track) > 300
    steps = [math.dist(xy(a.lat, a.lon), xy(b.lat, b.lon)) for (_x, a), (_y, b) in zip(track, track[1:], strict=False)]
    assert max(steps) <= V_MAX * 1.0 + 1.0 + 1e-6  # never a jump a walking person could not make
    errors = [math.dist(xy(p.lat, p.lon), (x, 0.0)) for x, p in track[60:]]
    assert sorted(errors)[len(errors) // 2] < 25.0  # followed: metres, not the next receiver
    end = xy(track[-1][1].lat, track[-1][1].lon)
    assert math.dist(end, (300.0, 0.0)) < 40.0


def test_a_still_patients_region_shrinks_as_evidence_accumulates() -> None:
    """Over ten noise draws: the region after a minute is well under the first one in most of them
    (one draw is one random stream of the filter and of the radio: a single one can be unlucky)."""
    ratios = []
    for seed in range(20, 30):
        rnd, shadow = random.Random(seed), {}
        loc = Locator(RECEIVERS)
        ps = [feed(loc, rnd, shadow, 160.0, 25.0, float(i)) for i in range(90)]
        areas = [region_area(p) for p in ps if p is not None]
        late = sorted(areas[60:])[len(areas[60:]) // 2]
        ratios.append(late / areas[0])
    assert sum(r < 0.8 for r in ratios) >= 7 and sorted(ratios)[4] < 0.5, ratios


def _match(p: Position) -> Match:
    st = region_status(p, ZONE)
    px, py = xy(p.lat, p.lon)
    d = ZONE.exterior.distance(Point(px, py)) * (-1 if ZONE.contains(Point(px, py)) else 1)
    clearance = None
    if st == ZoneStatus.OUTSIDE:
        cells = [Point(*xy(a, b)) for a, b in p.region]
        clearance = min(ZONE.distance(c) for c in cells) - p.region_cell_m * 0.7072
    return Match(p, st, 1, d, None, Place(None, None, None, "ใกล้วัด", "near the temple"), schedule="day",
                 clearance_m=clearance)


def test_excursion_along_the_route_past_the_zone_raises_wander_within_dwell_plus_60_s() -> None:
    rnd, shadow = random.Random(23), {}
    loc = Locator(ROAD_ON)
    th = thresholds_for(8, 2)  # a wanderer: 120 s dwell by day
    det = Detectors()
    det.set_thresholds(1, th)
    day0 = T0.replace(hour=3)  # 10:00 Asia/Bangkok
    path = [(0.0, 0.0)] * 60 + [(float(x), 0.0) for x in range(650)]  # along the road, 1 m/s, past the zone
    path += [(650.0, 0.0)] * 300  # then stands there, lost
    exit_s = None
    found = []
    for i, (x, y) in enumerate(path):
        if exit_s is None and not ZONE.intersects(Point(x, y)):
            exit_s = i
        p = feed(loc, rnd, shadow, x, y, float(i))
        t = day0 + timedelta(seconds=i)
        if p is not None:
            p = Position(p.address, t, p.lat, p.lon, p.uncertainty_m, p.source, p.receivers, True,
                         region=p.region, region_cell_m=p.region_cell_m)
            found += [(i, d) for d in det.on_position(p, _match(p), 1)]
        found += [(i, d) for d in det.tick(t)]
    wander = [(i, d) for i, d in found if d.type == AlertType.WANDER]
    assert exit_s is not None and wander, "the excursion raised a wander alert"
    i, d = wander[0]
    assert exit_s < i <= exit_s + th.wander_dwell_s + 60, (exit_s, i)
    assert d.details["outside_for_s"] >= th.wander_dwell_s
    assert float(d.details["distance_m"]) > 20.0  # type: ignore[arg-type]
    en, th_text = str(d.details["summary_en"]), str(d.details["summary_th"])
    assert "outside the safe zone for 2 min" in en and f"about {float(d.details['distance_m']):.0f} m from it" in en
    assert "ออกนอกเขตปลอดภัยมา 2 นาที" in th_text and "ห่างจากเขตประมาณ" in th_text
    assert [x for _i, x in found if x.type == AlertType.WANDER and x is not d] == []  # one per excursion
