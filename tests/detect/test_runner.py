"""The stateful holder the gateway pipeline calls: per-patient state kept between events."""

from __future__ import annotations

from chumphae.detect.runner import Detectors
from chumphae.detect.thresholds import thresholds_for
from chumphae.values import AlertType, ZoneStatus
from tests.detect.builders import at, match, reading


def test_states_are_kept_per_patient_and_ticks_fire() -> None:
    det = Detectors()
    det.set_thresholds(1, thresholds_for(0, 2))  # a wanderer: 120 s by day
    found = []
    for s in range(0, 130, 10):
        m = match(at(s), ZoneStatus.OUTSIDE, 70.0)
        found += det.on_position(m.position, m, 1)
        found += det.on_position(m.position, m, 2)  # patient 2: default thresholds (300 s)
    assert [(d.type, d.patient_id) for d in found] == [(AlertType.WANDER, 1)]
    assert det.on_reading(reading(at(131), sos=True), None) == []
    assert [d.type for d in det.on_reading(reading(at(131), sos=True), 2)] == [AlertType.SOS]
    late = det.tick(at(2000))
    assert {(d.type, d.patient_id) for d in late} == {(AlertType.LEFT_COVERAGE, 1), (AlertType.LEFT_COVERAGE, 2)}
