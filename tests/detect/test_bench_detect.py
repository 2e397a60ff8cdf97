"""scripts/bench_detect.py on a tiny setting: structural facts of the benchmark, not its figures.

Runs the real pipeline (simulated band bytes → decode → locate → tax-map match → detect) for a
couple of patient-days; takes seconds. Not timed.
"""

from __future__ import annotations

import dataclasses
import random
import re

import shapely

from chumphae.map.demo import demo_homes
from chumphae.map.layers import MapLayers
from chumphae.values import AlertType
from tests.detect.conftest import START, load_bench

bench = load_bench()


def _site(layers: MapLayers, k: int = 0, spacing: float = 100.0) -> bench.Site:
    home = demo_homes(layers, 4, seed=5)[k]
    return bench.build_site(layers, home, 1, random.Random(1), spacing)


def test_walks_stay_inside_and_wander_paths_leave(layers: MapLayers) -> None:
    site = _site(layers)
    rng = random.Random(3)
    for _ in range(20):
        walk = bench.normal_walk(site, rng)
        assert site.zone.day.covers(shapely.segmentize(shapely.LineString(walk), 2.0))
    out = bench.wander_path(site, rng, night=False)
    assert not site.zone.day.intersects(shapely.Point(out[-1]))
    assert shapely.Point(out[-1]).distance(site.zone.day) > 80


def test_a_zone_with_no_way_out_plans_no_wander_and_keeps_the_day(layers: MapLayers) -> None:
    """Some seeds draw a home whose zone no walk can leave (seed 106 stopped the bench here):
    that day gets no wander episode, and its walks and falls are still planned."""
    site = _site(layers)
    big = site.zone.day.buffer(5000.0)
    site.zone = dataclasses.replace(site.zone, day=big, night=big)
    assert bench.wander_path(site, random.Random(3), night=False) is None
    acts, _, episodes = bench.plan_days(site, random.Random(4), 3, p_wander=1.0, p_fall=1.0, slaps=0)
    kinds = {a.kind for a in acts}
    assert episodes == 0 and "wander" not in kinds
    assert {"walk", "fall"} <= kinds


def test_route_walks_alone_raise_no_wander(layers: MapLayers) -> None:
    """A day of walks along the assigned routes (no episodes), dense receivers: no wander alert."""
    site = _site(layers, spacing=60.0)
    run = bench.run_patient(site, 1, 11, START, p_wander=0.0, p_fall=0.0, slaps=0, quiet_share=0.0)
    assert run.walks >= 2 and run.excursions == []
    day = [x for x in run.raised if x.type == AlertType.WANDER and not x.night]
    assert day == []


def test_injected_episodes_are_caught_and_scored(layers: MapLayers) -> None:
    """Two days, an episode each: every true episode is caught (wander or left coverage) after the
    true exit; the falls are found; the summary line parses."""
    site = _site(layers)
    runs = [bench.run_patient(site, 2, 7, START, p_wander=1.0, p_fall=1.0, slaps=2, quiet_share=0.0)]
    rep = bench.score(runs, 0.0)
    assert rep.wander.episodes == runs[0].planned_episodes == 2
    assert rep.caught.detected == rep.caught.episodes
    assert all(d > 0 for d in rep.caught.delays)  # never before the true exit
    assert rep.falls == 2 and rep.falls_found == 2
    assert rep.base.detected == 2 and rep.base.false_active + rep.base.false_quiet > 0
    last = bench.lines(rep)[-1]
    fields = dict(kv.split("=") for kv in re.findall(r"\w+=\S+", last))
    assert last.startswith("SUMMARY") and int(fields["patient_days"]) == 2 and int(fields["episodes"]) == 2
    assert float(fields["fall_sensitivity"]) == 1.0
