"""The track's motion model (gateway/track.py): each particle keeps walking or keeps still for a spell,
so a cloud with nothing to go on spreads as walkers would (a walk out of the zone is a minute of
walking one way, not a step and a stop every other second), never faster than a person walks, and
about `STILL_SHARE` of it is still whatever the resampling does."""

from __future__ import annotations

import math

import numpy as np

from gateway import track


def _flat() -> track.Stack:
    """One live receiver 10 km away that did not hear the band: a likelihood flat over the search box."""
    return track.stack([1], np.array([10_000.0]), np.array([0.0]), np.array([-59.0]), np.array([2.2]),
                       np.array([2], dtype=np.int8), np.array([0.0]), np.array([5.0]), np.array([math.inf]),
                       -100.0, [(-5.0, 5.0, -5.0, 5.0)])


def _run(seconds: int, seed: int) -> track.Track:
    ev, rng = _flat(), np.random.default_rng(seed)
    tr = track.start(ev, 0.0, rng)
    for t in range(1, seconds + 1):
        tr = track.step(tr, ev, float(t), rng)
    return tr


def test_a_cloud_with_nothing_to_go_on_spreads_as_walkers_would() -> None:
    for seed in (1, 2, 3):
        tr = _run(60, seed)
        d = np.hypot(tr.px - tr.px.mean(), tr.py - tr.py.mean())
        # a particle that stops every other second diffuses ~10 m in a minute (the tenth furthest);
        # walking spells carry a tenth of the cloud 15 m or more out
        assert np.quantile(d, 0.9) >= 15.0
        assert d.max() <= track.V_MAX * 60 + 10.0  # never further than a walk from the start box
        assert np.all(np.hypot(tr.vx, tr.vy) <= track.V_MAX + 1e-9)


def test_walking_and_still_particles_keep_their_shares_and_their_modes() -> None:
    tr = _run(120, 7)
    assert tr.walking is not None
    share = float(np.mean(tr.walking))
    assert abs(share - (1.0 - track.STILL_SHARE)) < 0.12
    # still particles barely move; walking ones move at walking speeds
    speed = np.hypot(tr.vx, tr.vy)
    assert float(np.median(speed[~tr.walking])) < 0.3
    assert float(np.median(speed[tr.walking])) > 0.5
    # a mode lasts a spell: after one more second most particles are in the mode they were in
    nxt = track.step(tr, _flat(), 121.0, np.random.default_rng(8))
    assert nxt.walking is not None
    assert float(np.mean(nxt.walking == tr.walking)) > 0.9
