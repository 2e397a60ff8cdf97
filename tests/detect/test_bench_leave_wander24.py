"""wander-24: every wander excursion the bench plans really leaves the zone (scripts/bench_detect.py `leaves`).

The old generator checked only that the far part of a path was outside the zone, not by how much: seed 284's
patient 1 (`--days 2 --patients 10`) "wandered" 0.7 m outside a corridor for 14 minutes (wander-23). The rule,
on the truth geometry (the zone in force for the episode): from its first point outside, the path never comes
back in, is LEAVE_M (40 m) from the zone within LEAVE_WITHIN_M (80 m) of path, and stays that far to its end.
Plans only (no simulation): a few seconds.
"""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from shapely.geometry import LineString, box

from chumphae.map.demo import demo_homes
from chumphae.map.layers import MapLayers
from tests.detect.conftest import START, load_bench

bench = load_bench()
ZONE = box(0.0, -20.0, 400.0, 20.0)  # a 40 m corridor along y = 0, as an assigned route's


def _site(layers: MapLayers, seed: int, patients: int, pid: int) -> bench.Site:
    """Patient `pid`'s site exactly as the bench builds it (the sites share one rng, built in order)."""
    homes = demo_homes(layers, patients, seed=seed)
    rng = random.Random(seed)
    sites = [bench.build_site(layers, h, i + 1, rng, 100.0) for i, h in enumerate(homes[:pid])]
    return sites[-1]


def _wanders(layers: MapLayers, site: bench.Site, seed: int, days: int) -> list[bench.Action]:
    acts, _busy, _n = bench.plan_days(site, random.Random(seed * 1000 + site.pid - 1), days, 0.6, 0.4, 3)
    return [a for a in acts if a.kind == "wander"]


def _metric(layers: MapLayers, path: list[bench.LatLon]) -> bench.XYPath:
    xs, ys = layers.metric.xy([lon for _la, lon in path], [lat for lat, _lo in path])
    return [(float(x), float(y)) for x, y in zip(xs, ys, strict=True)]


def test_the_rule_on_a_corridor() -> None:
    up = [(200.0, 0.0), (200.0, 19.0)] + [(200.0, 20.0 + d) for d in range(5, 200, 5)]
    assert bench.leaves(ZONE, up)
    assert not bench.leaves(ZONE, [(200.0, 0.0), (200.0, 20.7), (360.0, 20.7)])  # 0.7 m out: 284 p1's kind
    assert not bench.leaves(ZONE, up + [(200.0, 10.0)])  # back into the zone before the planned return
    assert not bench.leaves(ZONE, up + [(200.0, 50.0)])  # out 219 m, then lingers 30 m from the zone
    slow = [(200.0, 0.0)] + [(200.0 + 5.0 * k, 20.0 + 2.5 * k) for k in range(1, 40)]  # 40 m out after 89 m
    assert not bench.leaves(ZONE, slow)
    assert bench.leaves(ZONE, slow, within_m=90.0)
    assert not bench.leaves(ZONE, [(200.0, 30.0), (200.0, 200.0)])  # does not start inside


@pytest.mark.parametrize(("seed", "days", "patients", "pid"), [
    (284, 2, 10, 1),  # 0.7 m outside a corridor for 14 min (wander-23)
    (0, 5, 20, 18),  # a report seed: never more than 11 m from the zone
    (0, 5, 20, 19),  # a report seed: 74 m out, then lingering 8 m from the zone
])
def test_planned_excursions_really_leave(layers: MapLayers, seed: int, days: int, patients: int, pid: int) -> None:
    """Each of these patients had an excursion the old generator planned that fails the rule (their seeds
    and patients are the bench's: `--seed S --days D --patients P`); now every planned excursion meets it,
    on the lat/lon path the simulator walks (a 0.1 m allowance for the round trip through lat/lon)."""
    site = _site(layers, seed, patients, pid)
    wanders = _wanders(layers, site, seed, days)
    assert wanders
    for a in wanders:
        zone = site.zone.at(START + timedelta(seconds=a.at))
        assert bench.leaves(zone, _metric(layers, a.path), bench.LEAVE_M - 0.1, bench.LEAVE_WITHIN_M + 0.1)
    assert sum(a.redrawn for a in wanders) == 1


def test_a_redrawn_path_leaves_the_rng_where_the_old_generator_left_it(
        layers: MapLayers, monkeypatch: pytest.MonkeyPatch) -> None:
    """With `leaves` always true the search is the old generator (it takes the first side whose far points
    are outside). 284 p1's first episode: the old path stays within a metre of the zone; the new one is
    another path, and the patient's rng ends in the same state, so the rest of its plan draws the same."""
    site = _site(layers, 284, 10, 1)
    rng = random.Random(284_000)
    rng.random()  # plan_days' first two draws on day 0: "a wander episode?", "at night?"
    night = rng.random() < 0.3
    state = rng.getstate()
    new, redrawn = bench.wander_search(site, rng, night)
    after_new = rng.getstate()
    with monkeypatch.context() as m:
        m.setattr(bench, "leaves", lambda *_a, **_k: True)
        rng.setstate(state)
        old, old_redrawn = bench.wander_search(site, rng, night)
    assert old is not None and new is not None and redrawn and not old_redrawn
    zone = site.zone.day
    assert LineString(old[-40:]).distance(zone) < 1.0  # the old excursion's far part hugs the corridor
    assert not bench.leaves(zone, old) and bench.leaves(zone, new)
    assert rng.getstate() == after_new
