"""wander-23: a long run of fixes leaning outside confirms an excursion (`LONG_S`, off by default).

With receivers along one road, a band off it is heard faintly on both sides of the road (or stands just past
the corridor's edge): the cloud's centre sits on the road, inside the zone, with 0.55–0.9 of its weight
outside for minutes and never the `P_OUT` that `HOLD_S` needs, and the band is heard often enough that left
coverage never comes (check seeds 284 p1 and 286 p8: out 831 s and 648 s, caught by neither alert). What is
left is duration: their runs leaning outside lasted 444 and 499 s, runs not tied to an excursion at most
258 s (seeds 280–289). These tests turn the rule on (360 s) through the real `detect` / `tick`."""

from __future__ import annotations

import pytest

from chumphae.detect import wander
from chumphae.values import Match, ZoneStatus
from tests.detect.builders import at, match
from tests.detect.test_wander22_hold import _run  # a wanderer (120 s by day), its state and the detect/tick loop


@pytest.fixture
def long_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wander, "LONG_S", 360.0)
    monkeypatch.setattr(wander, "LONG_MIN_FIXES", 30)
    monkeypatch.setattr(wander, "LONG_GAP_S", 90.0)
    monkeypatch.setattr(wander, "LONG_P", 0.5)


def _fix(s: float, d: float = -10.0, share: float = 0.7, p: float = 0.7) -> Match:
    """The two-sided cloud: the centre 10 m inside, most of the region and the weight outside (leaning out,
    never held out), uncertain, not faint."""
    return match(at(s), ZoneStatus.UNCERTAIN, d, unc=120.0, share=share, p=p)


def test_main_never_confirms_the_two_sided_cloud(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wander, "LONG_S", 0.0)  # main's rule (the default)
    state, alerts = _run([_fix(float(s)) for s in range(0, 900, 2)])
    assert alerts == [] and state.wander.outside_since is None
    assert state.wander.centre_out_since == at(0)  # leaning out all along


@pytest.mark.usefixtures("long_on")
def test_a_long_lean_confirms_it_dated_from_the_run() -> None:
    state, alerts = _run([_fix(float(s)) for s in range(0, 900, 2)])
    assert alerts == [(360.0, 360.0)]  # confirmed after 360 s of leaning, dated from the first fix leaning out
    assert state.wander.alerted


@pytest.mark.usefixtures("long_on")
def test_a_sparse_faint_lean_confirms_too() -> None:
    # 286 p8's kind: a fix every 6 s or so (61 fixes in 360 s), the weight outside only 0.6
    _state, alerts = _run([_fix(float(s), d=-14.0, share=0.65, p=0.6) for s in range(0, 900, 6)])
    assert alerts == [(360.0, 360.0)]


@pytest.mark.usefixtures("long_on")
def test_a_lean_shorter_than_long_s_does_not() -> None:
    fixes = [_fix(float(s)) for s in range(0, 300, 2)]  # 5 min leaning out (longer than any seen by a walk)...
    fixes += [_fix(float(s), share=0.3, p=0.2) for s in range(300, 320, 2)]  # ...a dip: the run restarts
    fixes += [_fix(float(s)) for s in range(320, 620, 2)]  # ...another 5 min
    state, alerts = _run(fixes)
    assert alerts == [] and state.wander.outside_since is None


@pytest.mark.usefixtures("long_on")
def test_a_gap_sparse_run_or_a_lean_weight_inside_does_not() -> None:
    # a silence of 2 min inside the run (a clock jump, the band unheard) restarts it: 240 s + 240 s
    fixes = [_fix(float(s)) for s in range(0, 240, 2)] + [_fix(float(s)) for s in range(360, 600, 2)]
    _state, alerts = _run(fixes)
    assert alerts == []
    # a fix only every 20 s: 25 fixes in 500 s are too few
    _state, alerts = _run([_fix(float(s)) for s in range(0, 500, 20)])
    assert alerts == []
    # the region leans out (share 0.65) but the cloud's weight outside averages 0.4
    _state, alerts = _run([_fix(float(s), share=0.65, p=0.4) for s in range(0, 900, 2)])
    assert alerts == []
