"""wander-17: the run of fixes leaning outside (what dates a confirmed excursion) survives short dips.

Off the road a slow walker is heard faintly by the road's receivers; the locate step's cloud keeps part of
its weight on the road, its centre stays inside the zone and the region's share outside hovers about
`OUT_SHARE` for a minute or more (dev seed 246 patient 10). A single fix dipping under it used to restart
the run, so the excursion was dated (and the wander raised) up to 100 s late."""

from __future__ import annotations

import pytest

from chumphae.detect import PatientState, detect, thresholds_for, tick, wander
from chumphae.values import AlertType, Match, ZoneStatus
from tests.detect.builders import at, match

TH = thresholds_for(adl_score=8)  # homebound: 300 s by day
S0 = PatientState(patient_id=7)


def _lean(s: float, share: float) -> Match:  # the centre 20 m inside, part of the region outside
    return match(at(s), ZoneStatus.UNCERTAIN, -20.0, unc=120.0, share=share, p=share - 0.05)


def _faint_out(s: float) -> Match:  # heard faintly by every receiver, almost all the weight outside
    return match(at(s), ZoneStatus.UNCERTAIN, -10.0, unc=350.0, share=0.97, p=0.98)


def _walk(dips: list[float]) -> list[Match]:
    """Leaning fixes every 5 s from 0 s (share 0.7), fixes at `dips` not leaning (share 0.5), a faint fix
    confirming the excursion at 130 s and such fixes every 5 s after it."""
    fixes = [_lean(s, 0.5 if s in dips else 0.7) for s in range(0, 130, 5)]
    return fixes + [_faint_out(s) for s in range(130, 500, 5)]


def _alert(fixes: list[Match]) -> tuple[float, float]:
    """(when the wander was raised, its outside_for_s), seconds."""
    state = S0
    for m in fixes:
        state, found = detect(state, m, TH, m.position.t)
        state, more = tick(state, TH, m.position.t)
        for d in found + more:
            if d.type == AlertType.WANDER:
                return (d.t - at(0)).total_seconds(), float(d.details["outside_for_s"])  # type: ignore[arg-type]
    raise AssertionError("no wander")


def test_a_short_dip_keeps_the_leaning_run(monkeypatch: pytest.MonkeyPatch) -> None:
    fixes = _walk(dips=[20.0, 25.0, 70.0])  # dips of 10 s (two fixes) and 5 s
    monkeypatch.setattr(wander, "LEAN_GAP_S", 0.0)  # main's rule: each dip restarts the run (from 75 s)
    assert _alert(fixes) == (375.0, 300.0)
    monkeypatch.setattr(wander, "LEAN_GAP_S", 20.0)
    assert _alert(fixes) == (300.0, 300.0)  # dated from the first leaning fix


def test_a_long_dip_still_restarts_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    fixes = _walk(dips=[20.0, 25.0, 30.0, 35.0, 40.0])  # 25 s without a leaning fix (last one at 15 s)
    monkeypatch.setattr(wander, "LEAN_GAP_S", 20.0)
    assert _alert(fixes) == (345.0, 300.0)  # dated from 45 s, as with the rule off
    monkeypatch.setattr(wander, "LEAN_GAP_S", 0.0)
    assert _alert(fixes) == (345.0, 300.0)


def test_dips_alone_never_start_an_excursion(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wander, "LEAN_GAP_S", 20.0)
    state = S0
    for s in range(0, 900, 5):  # leaning on and off, never confirmed: no alert, however long
        m = _lean(float(s), 0.7 if s % 10 == 0 else 0.5)
        state, found = detect(state, m, TH, m.position.t)
        state, more = tick(state, TH, m.position.t)
        assert found == [] and more == []
    assert state.wander.outside_since is None and state.wander.centre_out_since == at(0)
