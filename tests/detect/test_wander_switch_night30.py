"""night30: an excursion that the 20:00 zone switch creates is dated no earlier than the switch.

At 20:00 (Asia/Bangkok) the zone becomes the home only: a wearer standing on an assigned route was inside at
19:59 and is outside at 20:00. The smoothed past (`Position.passages`, wander-15) may date the run leaning
outside up to `SMOOTHED_LEAD_S` (60 s) earlier, i.e. into the day schedule, when the wearer was inside the zone
then in force: the 30 s night dwell was then due at the first confirming fix and `outside_for_s` counted time
that was no excursion. An excursion already running at the switch (outside the day zone too) keeps its date."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from chumphae.detect import PatientState, detect, thresholds_for, tick
from chumphae.values import AlertType, Match, ZoneStatus
from tests.detect.builders import match

TH = thresholds_for(adl_score=15, nhso_group=2)  # a wanderer: 120 s by day, 30 s at night
SWITCH = datetime(2025, 6, 1, 13, 0, 0, tzinfo=UTC)  # 20:00 in Bangkok: the night zone takes over
# the smoothed path passed each fix's place 100 s before the centre got there (a walk that ended on the route)
PASSAGES = tuple((float(a), float(a) + 100.0) for a in range(0, 90))


def _at(s: float) -> datetime:
    return SWITCH + timedelta(seconds=s)


def _route_then_night(out_from_s: float) -> list[Match]:
    """Fixes every 5 s from 19:58:00: inside the day zone until `out_from_s` (seconds from 20:00), then held
    30 m outside (the centre out, `outside_p` 0.97, the region touching the zone), under the schedule in force."""
    fixes = []
    for s in range(-120, 120, 5):
        sched = "night" if s >= 0 else "day"
        if s < out_from_s:
            fixes.append(match(_at(s), ZoneStatus.INSIDE, -15.0, unc=10.0, schedule=sched))
            continue
        m = match(_at(s), ZoneStatus.UNCERTAIN, 30.0, unc=50.0, schedule=sched, share=0.9, p=0.97)
        fixes.append(replace(m, position=replace(m.position, passages=PASSAGES)))
    return fixes


def _wander(fixes: list[Match], switch: datetime = SWITCH) -> tuple[float, float]:
    """(when the wander was raised, seconds from the switch (20:00 by default); its outside_for_s)."""
    state = PatientState(patient_id=3)
    for m in fixes:
        state, found = detect(state, m, TH, m.position.t)
        state, more = tick(state, TH, m.position.t)
        for d in found + more:
            if d.type == AlertType.WANDER:
                return (d.t - switch).total_seconds(), float(d.details["outside_for_s"])  # type: ignore[arg-type]
    raise AssertionError("no wander")


def test_an_excursion_the_switch_creates_is_dated_from_the_switch() -> None:
    # outside only because the night zone took over: held 20 s at 20:00:20 confirms it; dated from 20:00:00
    # (not 19:59:00 by the smoothed past), so the 30 s night dwell is due at 20:00:30
    assert _wander(_route_then_night(out_from_s=0.0)) == (30.0, 30.0)


def test_an_excursion_running_before_the_switch_keeps_its_date() -> None:
    # held outside the day zone from 19:59:00 (confirmed 19:59:20, dated by the smoothed past to 19:58:00; the
    # 120 s day dwell not yet due); at 20:00 the 30 s night dwell is: raised at once, outside for 120 s
    assert _wander(_route_then_night(out_from_s=-60.0)) == (0.0, 120.0)
