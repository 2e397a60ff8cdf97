"""The detect step: pure detectors over a patient's recent state.

Used alike by the gateway (live, per band) and the backend (replays, bands
heard by several gateways). Each detector is a pure function

    step(state, event, thresholds, now) -> (new_state, [Detection])

over a `PatientState` (state.py); `tick(state, thresholds, now)` fires what
is due with no new data (dwell running out, a band falling silent, a fall
candidate whose 10 s are up). `detect` and `tick` below run them all, in
this order: the order a caregiver would want them read.

    1. sos.py           the button, even if heard once
    2. fall_summary.py  falls from per-second summaries + the band's flag
    3. wander.py        outside the safe zone for a dwell; left coverage
    4. band.py          band removed; band silent at home
    5. battery.py       low battery, with hours left
  offline / GATT streams: fall_detector.py (the model; `chumphae falls detect`, and the
  gateway's raw-stream path in gateway/gatt.py, whose fall alert replaces this rule's)
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from chumphae.alert.severity import SEVERITY_BY_TYPE
from chumphae.detect import band, battery, fall_summary, sos, wander
from chumphae.detect.state import Event, PatientState, heard
from chumphae.detect.thresholds import Thresholds, is_night, thresholds_for
from chumphae.values import AlertType, Detection, Severity

Step = Callable[[PatientState, Event, Thresholds, datetime], tuple[PatientState, list[Detection]]]
Tick = Callable[[PatientState, Thresholds, datetime], tuple[PatientState, list[Detection]]]

STEPS: tuple[Step, ...] = (sos.step, fall_summary.step, wander.step, band.step, battery.step)
TICKS: tuple[Tick, ...] = (fall_summary.tick, wander.tick, band.tick)


def detect(state: PatientState, event: Event, th: Thresholds, now: datetime) -> tuple[PatientState, list[Detection]]:
    """Run every detector on one event (a decoded Reading or a Match), in order."""
    found: list[Detection] = []
    state = heard(state, event)
    for step in STEPS:
        state, more = step(state, event, th, now)
        found += more
    return state, found


def tick(state: PatientState, th: Thresholds, now: datetime) -> tuple[PatientState, list[Detection]]:
    """Run the time-driven checks (call every few seconds, and before each event)."""
    found: list[Detection] = []
    for t in TICKS:
        state, more = t(state, th, now)
        found += more
    return state, found




def severity(d: Detection, th: Thresholds | None = None) -> Severity:
    """A default severity: a less certain fall is HIGH; wandering at night is CRITICAL."""
    if d.type == AlertType.FALL and d.confidence < 0.7:
        return Severity.HIGH
    if d.type in (AlertType.WANDER, AlertType.LEFT_COVERAGE) and (
            d.details.get("night") or (th is not None and is_night(d.t, th))):
        return Severity.CRITICAL
    if d.type == AlertType.BATTERY_LOW and d.details.get("critical"):
        return Severity.MEDIUM
    return SEVERITY_BY_TYPE.get(d.type, Severity.MEDIUM)


__all__ = ["PatientState", "Thresholds", "detect", "severity", "thresholds_for", "tick"]
