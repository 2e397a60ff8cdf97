"""debt33: a zone without a night shape keeps its day geometry at night (the matcher says "day"), but its wearer
keeps the stricter night dwell in the patient's night hours; and no zone switch is recorded for it at 20:00."""

from __future__ import annotations

from datetime import datetime

from chumphae.detect import PatientState, detect, thresholds_for, tick
from chumphae.values import AlertType, ZoneStatus
from tests.detect.builders import NIGHT, T0, at, match

TH = thresholds_for(adl_score=15, nhso_group=2)  # a wanderer: 120 s by day, 30 s at night


def _alert_after(base: datetime, schedule: str | None) -> tuple[float, bool]:
    """Seconds from the first fix outside to the wander alert, and its `night` flag: fixes every 5 s, clear of
    the zone by 25 m, under `schedule` as the matcher says it."""
    state = PatientState(patient_id=3)
    for s in range(0, 300, 5):
        t = at(s, base)
        state, found = detect(state, match(t, ZoneStatus.OUTSIDE, 40.0, unc=15.0, clearance=25.0,
                                           schedule=schedule), TH, t)
        state, more = tick(state, TH, t)
        for d in found + more:
            if d.type == AlertType.WANDER:
                assert state.wander.switched_at is None  # nothing switched: one geometry all along
                return (t - base).total_seconds(), bool(d.details["night"])
    raise AssertionError("no wander")


def test_no_night_shape_keeps_the_night_dwell_at_night() -> None:
    assert _alert_after(NIGHT, "day") == (TH.wander_dwell_night_s, True)  # 23:00, the day geometry: 30 s


def test_no_night_shape_by_day_and_a_night_shape_at_night_unchanged() -> None:
    assert _alert_after(T0, "day") == (TH.wander_dwell_s, False)
    assert _alert_after(NIGHT, "night") == (TH.wander_dwell_night_s, True)
    assert _alert_after(NIGHT, None) == (TH.wander_dwell_night_s, True)  # no schedule said: the patient's hours
