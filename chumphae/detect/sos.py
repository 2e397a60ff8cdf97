"""SOS: the band's button. Raised on the first advert that carries it, even if heard only once.

A band repeats the SOS flag in every advert for a while after a press, and
several receivers hear each advert: that is one press, not many. A new
detection is made when the flag rises again after clearing, or when it is
still held after `sos_debounce_s` (the patient keeps pressing: the alert
state downstream re-triggers the same open alert). Unauthenticated frames
(bands without a signed format) still raise it: a missed SOS costs more than
a false one; the detection says so.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from chumphae.detect._common import detection, seconds
from chumphae.detect.state import Event, PatientState, SosState
from chumphae.detect.thresholds import Thresholds
from chumphae.values import AlertType, Detection, Reading


def step(state: PatientState, event: Event, th: Thresholds, now: datetime) -> tuple[PatientState, list[Detection]]:
    if not isinstance(event, Reading):
        return state, []
    s = state.sos
    if not event.sos:
        return (replace(state, sos=replace(s, flag_on=False)) if s.flag_on else state), []
    fresh = (not s.flag_on or s.last_press is None
             or abs(seconds(s.last_press, event.t)) >= th.sos_debounce_s)
    if not fresh:
        return replace(state, sos=SosState(s.last_press, True)), []
    d = detection(state, AlertType.SOS, event.t, confidence=1.0 if event.authenticated else 0.9,
                  th="ผู้ป่วยกดปุ่มขอความช่วยเหลือ (SOS)", en="The patient pressed the SOS button",
                  authenticated=event.authenticated, receiver=event.receiver, rssi=event.rssi)
    return replace(state, sos=SosState(event.t, True)), [d]
