"""wander-25: a run of fixes with the centre well outside confirms an excursion at lower confidence (`FAR_M`).

A band well off the road is heard by a few receivers on one side: the cloud's centre sits 36–83 m outside the
zone for minutes while a tail back on the road keeps `outside_p` at 0.78–0.93, under the `P_OUT` (0.96) that
`held_out` needs, and main waited a minute for a faint fix (wander-24's trace of seed 9 p3). With `FAR_M` > 0
an unbroken run of `HOLD_S` (20 s) of fixes with the centre `FAR_M` out and `FAR_P` (0.8) of the weight outside
confirms, dated as main dates it. These tests drive the real `detect` / `tick`."""

from __future__ import annotations

import pytest

from chumphae.detect import wander
from chumphae.values import Match, ZoneStatus
from tests.detect.builders import at, match
from tests.detect.test_wander22_hold import _run  # a wanderer (120 s by day), its state and the detect/tick loop


@pytest.fixture
def far_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wander, "FAR_M", 30.0)
    monkeypatch.setattr(wander, "FAR_P", 0.8)


def _fix(s: float, d: float, p: float) -> Match:
    """Uncertain (the region touches the zone), not faint (unc 250 m < `FAINT_M`), the region mostly outside."""
    return match(at(s), ZoneStatus.UNCERTAIN, d, unc=250.0, share=0.8, p=p)


def _track(until: float, d: float = 40.0, p: float = 0.85) -> list[Match]:
    return [_fix(float(s), d, p) for s in range(0, int(until) + 1, 2)]


def test_main_never_confirms_a_centre_far_out_at_085(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wander, "FAR_M", 0.0)  # main's rule (the default)
    state, alerts = _run(_track(300))
    assert alerts == [] and state.wander.outside_since is None and state.wander.far_since is None


@pytest.mark.usefixtures("far_on")
def test_20_s_with_the_centre_40_m_out_at_085_confirms() -> None:
    state, _alerts = _run(_track(18))  # 18 s of the run: not yet
    assert state.wander.outside_since is None and state.wander.far_since == at(0)
    state, _alerts = _run(_track(20))  # 20 s: confirmed, dated from the first fix leaning out
    assert state.wander.outside_since == at(0)
    state, alerts = _run(_track(300))
    assert alerts == [(120.0, 120.0)]  # the dwell (120 s by day) from the dated start, then kept by STILL_OUT_M


@pytest.mark.usefixtures("far_on")
def test_a_centre_only_20_m_out_does_not() -> None:
    state, alerts = _run(_track(300, d=20.0))
    assert alerts == [] and state.wander.outside_since is None


@pytest.mark.usefixtures("far_on")
def test_a_centre_40_m_out_at_07_does_not() -> None:
    state, alerts = _run(_track(300, p=0.7))
    assert alerts == [] and state.wander.outside_since is None


@pytest.mark.usefixtures("far_on")
def test_10_s_far_out_does_not() -> None:
    # 10 s far out, then the centre 10 m out (leaning out all along, never far): the run is too short
    fixes = _track(10) + [_fix(float(s), 10.0, 0.85) for s in range(12, 301, 2)]
    state, alerts = _run(fixes)
    assert alerts == [] and state.wander.outside_since is None
    # bursts of 10 s far out broken by one fix 20 m out: never 20 s unbroken
    fixes = [_fix(float(s), 20.0 if s % 12 == 10 else 40.0, 0.85) for s in range(0, 301, 2)]
    state, alerts = _run(fixes)
    assert alerts == [] and state.wander.outside_since is None
