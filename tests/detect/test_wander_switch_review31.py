"""review31: the zone-switch floor (night30) applies only to an excursion the switch creates.

night30 floors a new excursion's date at the first fix after the zone in force switched (`switched_at`). Two
cases it also floored, wrongly:
- a run of fixes leaning outside the DAY zone that began before 20:00 and was confirmed after it: the wearer was
  outside the zone then in force (and the night zone is the home only, inside the day zone), so the switch did
  not create that excursion; it was dated from 20:00 and raised late (the test: 10 s);
- the 06:00 switch to the day zone, which only widens the zone and so creates no excursion: a new excursion's
  smoothed past (wander-15) was cut at 06:00, as at no other time of the day.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from chumphae.detect import thresholds_for
from chumphae.values import Match, ZoneStatus
from tests.detect import test_wander_switch_night30 as night30
from tests.detect.builders import match

TH = thresholds_for(adl_score=15, nhso_group=2)  # a wanderer: 120 s by day, 30 s at night
DUSK = datetime(2025, 6, 1, 13, 0, 0, tzinfo=UTC)  # 20:00 in Bangkok: the night zone (home only) takes over
DAWN = datetime(2025, 6, 1, 23, 0, 0, tzinfo=UTC)  # 06:00 in Bangkok: the day zone (home, routes, places) again
# the smoothed path passed each fix's place 100 s before the centre got there
PASSAGES = tuple((float(a), float(a) + 100.0) for a in range(0, 90))


def _fixes(switch: datetime, out_from_s: float, *, smoothed: bool) -> list[Match]:
    """Fixes every 5 s from 2 min before `switch`: inside the zone in force until `out_from_s` (seconds from the
    switch), then held 30 m outside it (centre out, `outside_p` 0.97), each under the schedule in force."""
    before, after = ("day", "night") if switch == DUSK else ("night", "day")
    fixes = []
    for s in range(-120, 240, 5):
        t = switch + timedelta(seconds=s)
        sched = after if s >= 0 else before
        if s < out_from_s:
            fixes.append(match(t, ZoneStatus.INSIDE, -15.0, unc=10.0, schedule=sched))
            continue
        m = match(t, ZoneStatus.UNCERTAIN, 30.0, unc=50.0, schedule=sched, share=0.9, p=0.97)
        fixes.append(replace(m, position=replace(m.position, passages=PASSAGES)) if smoothed else m)
    return fixes


def _wander(switch: datetime, fixes: list[Match]) -> tuple[float, float]:
    """(when the wander was raised, seconds from the switch; its outside_for_s): night30's runner."""
    return night30._wander(fixes, switch)


def test_a_run_leaning_outside_the_day_zone_before_20_keeps_its_start() -> None:
    # leaning (held) outside the day zone from 19:59:50, confirmed at 20:00:10 (HOLD_S 20 s): dated 19:59:50, so
    # the 30 s night dwell is due at 20:00:20 (night30's floor dated it 20:00:00: raised at 20:00:30, 'outside 30 s')
    assert _wander(DUSK, _fixes(DUSK, out_from_s=-10.0, smoothed=False)) == (20.0, 30.0)
    # the same with a smoothed past 100 s back: dated from the run's first fix still, not by the smoothed past
    # into the day schedule (which would make it 19:58:50: raised at 20:00:10, 'outside 80 s')
    assert _wander(DUSK, _fixes(DUSK, out_from_s=-10.0, smoothed=True)) == (20.0, 30.0)


def test_the_0600_switch_to_the_wider_day_zone_does_not_cut_the_smoothed_past() -> None:
    # outside the day zone from 06:00:00, confirmed 06:00:20; the smoothed past dates it 60 s earlier (05:59:00,
    # outside the home-only night zone too): the 120 s day dwell is due at 06:01:00 (the floor made it 06:02:00)
    assert _wander(DAWN, _fixes(DAWN, out_from_s=0.0, smoothed=True)) == (60.0, 120.0)


def test_an_excursion_the_20_switch_creates_is_still_dated_from_the_switch() -> None:
    # night30's case, unchanged: inside the day zone until 20:00, outside only under the night zone
    assert _wander(DUSK, _fixes(DUSK, out_from_s=0.0, smoothed=True)) == (30.0, 30.0)
