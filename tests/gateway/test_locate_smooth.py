"""The track's smoothed past (gateway/track.py, wander-15): a fixed-lag smoother by genealogy dates a slow
walker's exit from the zone closer to the truth than the filtered centre's crossing, and the wander
detector dates the excursion by it (never later than without it). Real locator, real particle filter,
real detector; the RSSI from the same radio model as test_locate_region."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import timedelta

import pytest
from shapely.geometry import Point

from chumphae.detect.runner import Detectors
from chumphae.detect.thresholds import thresholds_for
from chumphae.values import AlertType
from gateway import track
from gateway.locate import Locator
from tests.gateway.builders import T0
from tests.gateway.test_locate_region import xy
from tests.gateway.test_locate_track import ROAD_ON, ZONE, _match, feed

SPEED = 0.5  # m/s: a slow walker, out along the road past the zone's end (x = 420 m)
X0 = 370.0


def _walk(seed: int, smoothed: bool, monkeypatch: pytest.MonkeyPatch) -> tuple[float, float, float]:
    """(true exit, filtered centre's first crossing, the wander alert's `outside_since`), seconds."""
    monkeypatch.setattr(track, "GENEALOGY", smoothed)
    rnd, shadow = random.Random(seed), {}
    loc = Locator(ROAD_ON, seed=seed)
    det = Detectors()
    th = thresholds_for(8, 2)  # a wanderer: 120 s dwell by day
    det.set_thresholds(1, th)
    day0 = T0.replace(hour=3)  # 10:00 Asia/Bangkok
    exit_s = cross = since = None
    for i in range(60 + 500):
        x = X0 + max(0.0, (i - 60) * SPEED)
        if exit_s is None and not ZONE.intersects(Point(x, 0.0)):
            exit_s = float(i)
        p = feed(loc, rnd, shadow, x, 0.0, float(i))
        t = day0 + timedelta(seconds=i)
        found = []
        if p is not None:
            p = replace(p, t=t)
            if cross is None and not ZONE.contains(Point(*xy(p.lat, p.lon))):
                cross = float(i)
            found += det.on_position(p, _match(p), 1)
        found += det.tick(t)
        for d in found:
            if d.type == AlertType.WANDER and since is None:
                since = (d.t - timedelta(seconds=float(d.details["outside_for_s"])) - day0).total_seconds()  # type: ignore[arg-type]
    assert exit_s is not None and cross is not None and since is not None
    return exit_s, cross, since


def test_the_smoothed_past_dates_a_slow_exit_nearer_the_truth(monkeypatch: pytest.MonkeyPatch) -> None:
    late_filtered, late_smoothed = [], []
    for seed in range(1, 5):
        exit_s, cross, plain = _walk(seed, False, monkeypatch)
        _e, _c, smoothed = _walk(seed, True, monkeypatch)
        assert cross > exit_s + 10.0  # the filtered centre crosses the edge late
        assert smoothed <= plain + 1.0  # the smoothed past only ever dates earlier
        assert smoothed >= exit_s - 10.0  # …and not before the patient left
        late_filtered.append(plain - exit_s)
        late_smoothed.append(smoothed - exit_s)
    assert sum(late_smoothed) <= sum(late_filtered) - 4 * 5.0  # on average at least 5 s nearer the exit


def test_a_cloud_that_stays_put_says_it_passed_its_centre_now() -> None:
    rnd, shadow = random.Random(5), {}
    loc = Locator(ROAD_ON, seed=5)
    p = None
    for i in range(240):  # standing at the zone's end for four minutes
        p = feed(loc, rnd, shadow, 410.0, 0.0, float(i))
    assert p is not None
    tr = loc._bands[p.address].track
    assert tr is not None and tr.genealogy is not None and len(tr.genealogy.t) == track.CHECKS  # it keeps its past
    assert all(passed <= age for age, passed in p.passages)  # no walk: nothing dated earlier
