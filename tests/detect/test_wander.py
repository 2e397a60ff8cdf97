"""Wander: dwell, the uncertainty disc, the night schedule, left coverage; and band silent at home."""

from __future__ import annotations

from chumphae.detect import PatientState, detect, severity, thresholds_for, tick
from chumphae.values import AlertType, Severity, ZoneStatus
from tests.detect.builders import NIGHT, at, match, reading

TH = thresholds_for(adl_score=8)  # homebound: 300 s by day, 120 s at night
S0 = PatientState(patient_id=7)


def run(events, th=TH, state=S0, tick_at=()):  # type: ignore[no-untyped-def]
    found = []
    for e in events:
        state, d = detect(state, e, th, e.position.t if hasattr(e, "position") else e.t)
        found += d
    for now in tick_at:
        state, d = tick(state, th, now)
        found += d
    return state, found


def test_outside_for_the_dwell_raises_one_wander_with_its_duration() -> None:
    fixes = [match(at(s), ZoneStatus.OUTSIDE, 60.0) for s in range(0, 400, 30)]
    _, found = run(fixes)
    assert [d.type for d in found] == [AlertType.WANDER]
    assert found[0].details["outside_for_s"] == 300
    assert found[0].t == at(300) and found[0].match is fixes[10]
    assert found[0].patient_id == 7 and "นาที" in str(found[0].details["summary_th"])


def test_no_wander_while_the_disc_still_touches_the_zone() -> None:
    fixes = [match(at(s), ZoneStatus.UNCERTAIN, 20.0, unc=40.0) for s in range(0, 900, 30)]
    _, found = run(fixes)
    assert found == []


def test_a_started_dwell_runs_through_uncertain_fixes_whose_centre_stays_outside() -> None:
    # confirmed outside once, then the region flickers (touches the zone) with the centre 45 m out
    fixes = ([match(at(0), ZoneStatus.OUTSIDE, 90.0, unc=30.0)]
             + [match(at(s), ZoneStatus.UNCERTAIN, 45.0, unc=80.0) for s in range(30, 400, 30)])
    _, found = run(fixes)
    assert [d.type for d in found] == [AlertType.WANDER]
    assert found[0].details["outside_for_s"] == 300 and found[0].t == at(300)
    # …but uncertain fixes with the centre only 20 m out (a walk at the edge) do not keep it going
    inside_centre = ([match(at(0), ZoneStatus.OUTSIDE, 90.0, unc=30.0)]
                     + [match(at(s), ZoneStatus.UNCERTAIN, 20.0, unc=80.0) for s in range(30, 400, 30)])
    _, found = run(inside_centre)
    assert found == []
    # and uncertain fixes alone never start an excursion
    _, found = run([match(at(s), ZoneStatus.UNCERTAIN, 45.0, unc=80.0) for s in range(0, 900, 30)])
    assert found == []


def test_back_inside_ends_the_excursion_and_restarts_the_dwell() -> None:
    fixes = ([match(at(s), ZoneStatus.OUTSIDE, 60.0) for s in range(0, 250, 30)]
             + [match(at(260), ZoneStatus.INSIDE, -30.0)]
             + [match(at(s), ZoneStatus.OUTSIDE, 60.0) for s in range(270, 500, 30)])
    _, found = run(fixes)
    assert found == []


def test_night_is_stricter() -> None:
    fixes = [match(at(s, NIGHT), ZoneStatus.OUTSIDE, 60.0) for s in range(0, 150, 30)]
    _, found = run(fixes)
    assert [d.type for d in found] == [AlertType.WANDER]
    assert found[0].details["night"] is True and severity(found[0]) == Severity.CRITICAL


def test_the_matchers_schedule_wins_over_the_clock() -> None:
    fixes = [match(at(s), ZoneStatus.OUTSIDE, 60.0, schedule="night") for s in range(0, 150, 30)]
    _, found = run(fixes)
    assert [d.type for d in found] == [AlertType.WANDER]


def test_night_is_reported_even_when_day_and_night_dwell_are_equal() -> None:
    # a zone's own dwell_s sets both dwells (gateway.service.default_steps): night must not be
    # inferred from which dwell applied
    th = thresholds_for(adl_score=8, overrides={"wander_dwell_s": 60.0, "wander_dwell_night_s": 60.0})
    night = [match(at(s, NIGHT), ZoneStatus.OUTSIDE, 60.0) for s in range(0, 90, 30)]
    _, found = run(night, th=th)
    assert [d.type for d in found] == [AlertType.WANDER] and found[0].details["night"] is True
    assert severity(found[0]) == Severity.CRITICAL
    day = [match(at(s), ZoneStatus.OUTSIDE, 60.0) for s in range(0, 90, 30)]
    _, found = run(day, th=th)
    assert found[0].details["night"] is False
    by_matcher = [match(at(s), ZoneStatus.OUTSIDE, 60.0, schedule="night") for s in range(0, 90, 30)]
    _, found = run(by_matcher, th=th)
    assert found[0].details["night"] is True


def test_tick_fires_the_dwell_without_a_new_fix() -> None:
    # one outside fix, then the band keeps being heard (readings) but the position does not change
    events = [match(at(0), ZoneStatus.OUTSIDE, 80.0)] + [reading(at(s)) for s in range(10, 320, 10)]
    state, found = run(events[:30])  # up to 290 s
    assert found == []
    state, found = run([], state=state, tick_at=[at(299)])
    assert found == []
    state, found = run(events[30:], state=state, tick_at=[at(301), at(400)])
    assert [d.type for d in found] == [AlertType.WANDER]
    assert found[0].t == at(300)


def test_left_coverage_near_the_edge_is_its_own_alert_and_comes_once() -> None:
    state, _ = run([match(at(0), ZoneStatus.INSIDE, -12.0)])
    state, found = run([], state=state, tick_at=[at(60), at(130), at(400)])
    assert [d.type for d in found] == [AlertType.LEFT_COVERAGE]
    assert found[0].t == at(0) and found[0].details["silent_for_s"] == 130


def test_silence_deep_inside_the_home_is_band_silent_not_left_coverage() -> None:
    state, _ = run([match(at(0), ZoneStatus.INSIDE, -80.0)])
    _, found = run([], state=state, tick_at=[at(600), at(TH.silent_s + 1), at(TH.silent_s + 600)])
    assert [d.type for d in found] == [AlertType.BAND_SILENT]


def test_out_of_coverage_fix_near_the_edge_raises_left_coverage_at_once() -> None:
    _, found = run([match(at(0), ZoneStatus.OUTSIDE, 5.0, unc=30.0, in_coverage=False)])
    assert [d.type for d in found] == [AlertType.LEFT_COVERAGE]


def test_wanderers_get_shorter_dwell_than_independent_elders() -> None:
    fixes = [match(at(s), ZoneStatus.OUTSIDE, 60.0) for s in range(0, 200, 30)]
    assert [d.type for d in run(fixes, th=thresholds_for(adl_score=15, nhso_group=2))[1]] == [AlertType.WANDER]
    assert run(fixes, th=thresholds_for(adl_score=15))[1] == []


def test_wander_and_left_coverage_texts_say_how_long_outside_and_how_far() -> None:
    _, found = run([match(at(s), ZoneStatus.OUTSIDE, 140.0) for s in range(0, 400, 30)])
    d = found[0]
    assert (d.details["outside_for_s"], d.details["distance_m"]) == (300, 140.0)
    assert "for 5 min, about 140 m from it" in str(d.details["summary_en"])
    assert "ออกนอกเขตปลอดภัยมา 5 นาที ห่างจากเขตประมาณ 140 ม." in str(d.details["summary_th"])
    # outside for 90 s (under the dwell), then the band is not heard: left coverage says both
    state, _ = run([match(at(s), ZoneStatus.OUTSIDE, 80.0) for s in range(0, 91, 30)])
    _, found = run([], state=state, tick_at=[at(90 + TH.left_coverage_s + 1)])
    assert [x.type for x in found] == [AlertType.LEFT_COVERAGE]
    left = found[0]
    assert (left.details["outside_for_s"], left.details["distance_m"]) == (90, 80.0)
    assert "Outside the safe zone for 90 s. 80 m from the zone." in str(left.details["summary_en"])
    assert "ออกนอกเขตปลอดภัยมา 90 วินาที ห่างจากเขตประมาณ 80 ม." in str(left.details["summary_th"])


def test_a_confirmed_excursion_is_dated_from_when_the_centre_left() -> None:
    # the centre 40–60 m out from 0 s while the region still touches the zone; the region clears it at
    # 150 s: the patient has been outside since about 0 s, so the dwell (300 s) is due at 300 s
    fixes = ([match(at(s), ZoneStatus.UNCERTAIN, 40.0 + s / 10, unc=60.0) for s in range(0, 150, 30)]
             + [match(at(s), ZoneStatus.OUTSIDE, 80.0, unc=30.0) for s in range(150, 400, 30)])
    _, found = run(fixes)
    assert [d.type for d in found] == [AlertType.WANDER]
    assert found[0].t == at(300) and found[0].details["outside_for_s"] == 300
    # a run broken by a centre back inside (the region still touching the edge) starts again: dated
    # from 120 s, not 0 s
    broken = ([match(at(s), ZoneStatus.UNCERTAIN, 40.0, unc=60.0) for s in range(0, 120, 30)]
              + [match(at(90), ZoneStatus.UNCERTAIN, -5.0, unc=60.0)]
              + [match(at(s), ZoneStatus.UNCERTAIN, 40.0, unc=60.0) for s in range(120, 150, 30)]
              + [match(at(s), ZoneStatus.OUTSIDE, 80.0, unc=30.0) for s in range(150, 450, 30)])
    _, found = run(broken)
    assert found[0].t == at(420) and found[0].details["outside_for_s"] == 300


def test_left_coverage_rearms_only_after_the_band_is_back_for_a_while() -> None:
    out = [match(at(s), ZoneStatus.OUTSIDE, 90.0, unc=30.0) for s in range(0, 61, 30)]
    state, found = run(out, tick_at=[at(60 + TH.left_coverage_s + 1)])
    assert [d.type for d in found] == [AlertType.LEFT_COVERAGE]
    # heard again now and then (a packet, a faint fix) and lost again: no second alert
    t1 = 60 + TH.left_coverage_s + 30
    state, found = run([reading(at(t1)), match(at(t1), ZoneStatus.UNCERTAIN, 60.0, unc=90.0)], state=state,
                       tick_at=[at(t1 + TH.left_coverage_s + 1), at(t1 + 3 * TH.left_coverage_s)])
    assert found == []
    # back in coverage for left_coverage_s: re-armed, so the next silence is a new alert
    t2 = t1 + 3 * TH.left_coverage_s
    back = [e for s in range(0, int(TH.left_coverage_s) + 1, 10)
            for e in (reading(at(t2 + s)), match(at(t2 + s), ZoneStatus.OUTSIDE, 90.0, unc=30.0))]
    state, found = run(back, state=state, tick_at=[at(t2 + 2 * TH.left_coverage_s + 10)])
    assert [d.type for d in found] == [AlertType.WANDER, AlertType.LEFT_COVERAGE]  # the dwell ran out meanwhile
    # a fix inside the zone re-arms at once
    state, _ = run([reading(at(t2 + 1000)), match(at(t2 + 1000), ZoneStatus.INSIDE, -10.0)], state=state)
    assert not state.wander.left_alerted


def test_a_started_dwell_runs_through_faint_fixes_whatever_their_centre() -> None:
    # off the road every receiver hears the band faintly: a ring-shaped region 350 m out whose centre
    # (the ring's mean) may sit inside the zone; it does not say the patient came back
    faint = ([match(at(0), ZoneStatus.OUTSIDE, 90.0, unc=30.0)]
             + [match(at(s), ZoneStatus.UNCERTAIN, -15.0, unc=350.0) for s in range(30, 400, 30)])
    _, found = run(faint)
    assert [d.type for d in found] == [AlertType.WANDER] and found[0].t == at(300)
    # a well-located fix touching the zone with its centre inside (a walk on the road) does not
    near = ([match(at(0), ZoneStatus.OUTSIDE, 90.0, unc=30.0)]
            + [match(at(s), ZoneStatus.UNCERTAIN, -15.0, unc=60.0) for s in range(30, 400, 30)])
    assert run(near)[1] == []
    # and faint fixes alone never start an excursion
    assert run([match(at(s), ZoneStatus.UNCERTAIN, -15.0, unc=350.0) for s in range(0, 900, 30)])[1] == []


def test_an_excursion_is_dated_from_when_most_of_the_region_left() -> None:
    # off the road the centre (the mean of a faint cloud) lags 30 m inside the zone while 70 % of the
    # region is already outside; the region clears the zone at 150 s: dated from 0 s, due at 300 s
    fixes = ([match(at(s), ZoneStatus.UNCERTAIN, -30.0, unc=150.0, share=0.7) for s in range(0, 150, 10)]
             + [match(at(s), ZoneStatus.OUTSIDE, -20.0, unc=200.0, share=1.0, clearance=15.0) for s in range(150, 500, 10)])
    _, found = run(fixes)
    assert [d.type for d in found] == [AlertType.WANDER]
    assert found[0].t == at(300) and found[0].details["outside_for_s"] == 300
    # with most of the region still inside, the excursion counts from the clearing fix only
    mostly_in = ([match(at(s), ZoneStatus.UNCERTAIN, -30.0, unc=150.0, share=0.4) for s in range(0, 150, 10)]
                 + [match(at(s), ZoneStatus.OUTSIDE, -20.0, unc=200.0, share=1.0, clearance=15.0) for s in range(150, 500, 10)])
    _, found = run(mostly_in)
    assert [d.type for d in found] == [AlertType.WANDER] and found[0].t == at(450)
    # and a region mostly outside never confirms an excursion alone
    assert run([match(at(s), ZoneStatus.UNCERTAIN, -5.0, unc=60.0, share=0.9) for s in range(0, 900, 10)])[1] == []


def test_a_confirming_blip_lapses_when_nothing_says_outside_for_a_while() -> None:
    # a patient standing 10 m inside the edge: one fix clears the zone (noise), then minutes of fixes
    # leaning inside, then it clears again; the dwell must not have run through those minutes
    fixes = ([match(at(0), ZoneStatus.OUTSIDE, 5.0, unc=80.0, share=1.0, clearance=10.0)]
             + [match(at(s), ZoneStatus.UNCERTAIN, -10.0, unc=60.0, share=0.3) for s in range(10, 210, 10)]
             + [match(at(s), ZoneStatus.OUTSIDE, 5.0, unc=80.0, share=1.0, clearance=10.0) for s in range(210, 600, 10)])
    _, found = run(fixes)
    assert [d.type for d in found] == [AlertType.WANDER]
    assert found[0].t == at(510) and found[0].details["outside_for_s"] == 300  # dated from 210 s, not 0 s
    # a short spell of such fixes (under REDATE_S) does not break a real excursion
    short = ([match(at(0), ZoneStatus.OUTSIDE, 5.0, unc=80.0, share=1.0, clearance=10.0)]
             + [match(at(s), ZoneStatus.UNCERTAIN, -10.0, unc=60.0, share=0.3) for s in range(10, 40, 10)]
             + [match(at(s), ZoneStatus.OUTSIDE, 5.0, unc=80.0, share=1.0, clearance=10.0) for s in range(40, 400, 10)])
    _, found = run(short)
    assert found[0].t == at(300)
    # a longer one (over REDATE_S, under LAPSE_S) keeps the excursion but restarts its dwell from the run
    # that brought the support back (wander-11: such a gap is how the locator's confident errors near
    # the edge made due dwells)
    gap = ([match(at(0), ZoneStatus.OUTSIDE, 5.0, unc=80.0, share=1.0, clearance=10.0)]
           + [match(at(s), ZoneStatus.UNCERTAIN, -10.0, unc=60.0, share=0.3) for s in range(10, 80, 10)]
           + [match(at(s), ZoneStatus.OUTSIDE, 5.0, unc=80.0, share=1.0, clearance=10.0) for s in range(80, 500, 10)])
    _, found = run(gap)
    assert found[0].t == at(380) and found[0].details["outside_for_s"] == 300


def test_a_started_dwell_runs_through_fixes_with_most_of_the_probability_outside() -> None:
    # off the road the cloud's mean lags 15 m inside the zone (a tail of it back on the road) while 98 %
    # of its weight is outside: once the region has cleared the zone, such fixes keep the excursion and
    # raise the alert at the dwell, where main's rule lapsed it after 90 s and waited for a clearing fix
    lagging = ([match(at(0), ZoneStatus.OUTSIDE, 5.0, unc=80.0, share=1.0, clearance=10.0, p=1.0)]
               + [match(at(s), ZoneStatus.UNCERTAIN, -15.0, unc=120.0, share=0.85, p=0.98)
                  for s in range(10, 400, 10)])
    _, found = run(lagging)
    assert [d.type for d in found] == [AlertType.WANDER] and found[0].t == at(300)
    assert found[0].details["outside_for_s"] == 300
    # the same fixes with the weight mostly inside (a patient standing near the edge: the cells outside
    # are the cloud's thin rim) lapse as before: no alert
    rim = ([match(at(0), ZoneStatus.OUTSIDE, 5.0, unc=80.0, share=1.0, clearance=10.0, p=1.0)]
           + [match(at(s), ZoneStatus.UNCERTAIN, -15.0, unc=120.0, share=0.85, p=0.6) for s in range(10, 400, 10)])
    assert run(rim)[1] == []
    # and fixes with the probability outside never start an excursion alone
    assert run([match(at(s), ZoneStatus.UNCERTAIN, -15.0, unc=120.0, share=0.9, p=0.99)
                for s in range(0, 900, 10)])[1] == []
    # the tick fires the due dwell on such a last fix, too
    _, found = run(lagging[:25], tick_at=[at(305)])
    assert [d.type for d in found] == [AlertType.WANDER] and found[0].t == at(300)


def test_faint_fixes_with_almost_all_the_probability_outside_confirm_an_excursion() -> None:
    # 100+ m off the road every receiver hears the band faintly: a 350 m region whose centre stays within
    # metres of the edge never clears the zone, while 0.98 of the cloud's weight is outside
    faint_out = [match(at(s), ZoneStatus.UNCERTAIN, -5.0, unc=350.0, share=0.95, p=0.98) for s in range(0, 500, 10)]
    _, found = run(faint_out)
    assert [d.type for d in found] == [AlertType.WANDER]
    assert found[0].t == at(300) and found[0].details["outside_for_s"] == 300
    # with less of the weight outside, or a well-located fix, they do not
    assert run([match(at(s), ZoneStatus.UNCERTAIN, -5.0, unc=350.0, share=0.95, p=0.9)
                for s in range(0, 900, 10)])[1] == []
    assert run([match(at(s), ZoneStatus.UNCERTAIN, -5.0, unc=200.0, share=0.95, p=0.99)
                for s in range(0, 900, 10)])[1] == []


def test_support_coming_back_after_a_gap_restarts_the_dwell_from_the_current_run() -> None:
    # a patient standing near the edge whom the locator places a little outside for minutes (a run of
    # fixes leaning outside from 0 s, the region clearing the zone from 200 s), then 80 s of fixes back
    # inside the edge that say nothing (under LAPSE_S: the excursion does not lapse), then one fix with
    # 0.97 of the probability outside: it must not fire a 300 s dwell dated from 0 s (wander-10's dev
    # false wanders, seeds 103 p9 and 104 p3); the dwell restarts from that fix's own run
    near = ([match(at(s), ZoneStatus.UNCERTAIN, 10.0, unc=60.0, share=0.7, p=0.9) for s in range(0, 200, 10)]
            + [match(at(s), ZoneStatus.OUTSIDE, 20.0, unc=40.0, share=1.0, clearance=3.0, p=1.0)
               for s in range(200, 250, 10)]
            + [match(at(s), ZoneStatus.UNCERTAIN, -5.0, unc=60.0, share=0.3, p=0.5) for s in range(250, 330, 10)]
            + [match(at(330), ZoneStatus.UNCERTAIN, 5.0, unc=60.0, share=0.8, p=0.97)]
            + [match(at(s), ZoneStatus.INSIDE, -30.0, unc=20.0, share=0.0, p=0.0) for s in range(340, 700, 10)])
    assert run(near)[1] == []
    # a true excursion through the same gap keeps its date when the fixes go on leaning outside (the
    # centre still outside): the run is unbroken, so the dwell is due at 300 s as before
    out = ([match(at(s), ZoneStatus.UNCERTAIN, 10.0, unc=60.0, share=0.7, p=0.9) for s in range(0, 200, 10)]
           + [match(at(s), ZoneStatus.OUTSIDE, 20.0, unc=40.0, share=1.0, clearance=3.0, p=1.0)
              for s in range(200, 250, 10)]
           + [match(at(s), ZoneStatus.UNCERTAIN, 12.0, unc=60.0, share=0.7, p=0.9) for s in range(250, 330, 10)]
           + [match(at(s), ZoneStatus.UNCERTAIN, 15.0, unc=60.0, share=0.8, p=0.97) for s in range(330, 500, 10)])
    _, found = run(out)
    assert [d.type for d in found] == [AlertType.WANDER]
    assert found[0].t == at(330) and found[0].details["outside_for_s"] == 330
    # and support without a gap runs the dwell from the first leaning fix, as before
    steady = ([match(at(s), ZoneStatus.UNCERTAIN, 10.0, unc=60.0, share=0.7, p=0.9) for s in range(0, 200, 10)]
              + [match(at(s), ZoneStatus.OUTSIDE, 20.0, unc=40.0, share=1.0, clearance=3.0, p=1.0)
                 for s in range(200, 400, 10)])
    _, found = run(steady)
    assert found[0].t == at(300) and found[0].details["outside_for_s"] == 300


def test_fixes_held_outside_with_the_centre_out_for_20_s_confirm_an_excursion() -> None:
    # a slow walk out along the road (wander-12 / wander-13 dev traces, e.g. seed 211 patient 1 at night):
    # the centre crosses the edge and keeps going, `outside_p` ≥ 0.96 at every fix, but the 95 % region
    # (60–140 m across) still touches the zone, so no fix clears it; main waited for one, minutes late
    lean = [match(at(s), ZoneStatus.UNCERTAIN, 5.0 + s / 20, unc=80.0, share=0.8, p=0.9) for s in range(0, 240, 5)]
    held = [match(at(s), ZoneStatus.UNCERTAIN, 20.0, unc=90.0, share=0.97, p=0.98) for s in range(240, 400, 5)]
    _, found = run(lean + held)
    assert [d.type for d in found] == [AlertType.WANDER]
    assert found[0].t == at(300) and found[0].details["outside_for_s"] == 300  # dated from the leaning run
    # confirmed at 260 s (20 s held), so the tick fires the due dwell with no new fix
    _, found = run(lean + held[:5], tick_at=[at(300)])
    assert [d.type for d in found] == [AlertType.WANDER] and found[0].t == at(300)
    # a held run shorter than 20 s, broken by a fix with less of the weight outside, confirms nothing
    broken = [match(at(s), ZoneStatus.UNCERTAIN, 20.0, unc=90.0, share=0.97, p=0.98 if s % 20 else 0.9)
              for s in range(240, 900, 5)]
    assert run(lean + broken)[1] == []
    # nor does the weight outside with the centre inside (a cloud run ahead of its centre: wander-10)
    ahead = [match(at(s), ZoneStatus.UNCERTAIN, -5.0, unc=90.0, share=0.97, p=0.99) for s in range(240, 900, 5)]
    assert run(lean + ahead)[1] == []
