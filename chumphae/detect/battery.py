"""Low battery, with an estimate of the hours left from the band's drain rate.

"20 %" means a day to one band and a week to another; what a caregiver needs
is "charge it before tonight". The drain rate is a least-squares line through
the percentages of the last two days (thinned to one sample per 10 minutes,
restarted when the band charges or the level jumps up: a new battery). The
detection is raised when the level or the hours left fall below the
patient's thresholds, and again each time the level drops 5 more points
(the alert state re-triggers the open alert rather than ringing anew).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import numpy as np

from chumphae.detect._common import detection, seconds
from chumphae.detect.state import BatteryState, Event, PatientState
from chumphae.detect.thresholds import Thresholds
from chumphae.values import AlertType, Detection, Reading

KEEP = timedelta(hours=48)
THIN_S = 600.0
MIN_SPAN_S = 2 * 3600.0
REALERT_DROP = 5.0


def drain(samples: tuple[tuple[datetime, float], ...]) -> float | None:
    """Percent per hour (positive = draining), or None if the history is too short to say."""
    if len(samples) < 3 or seconds(samples[0][0], samples[-1][0]) < MIN_SPAN_S:
        return None
    t0 = samples[0][0]
    h = np.array([seconds(t0, t) / 3600 for t, _ in samples])
    pct = np.array([p for _, p in samples])
    slope = float(np.polyfit(h, pct, 1)[0])
    return -slope if slope < 0 else 0.0


# The drain only changes when the thinned history does (every `THIN_S`) while a band reports every
# second, and the least-squares fit costs 0.1-0.5 ms: each patient's last fit is kept with the very
# history tuple it was made from, and reused only for that same object (so never for other values).
_FITS: dict[int | None, tuple[tuple[tuple[datetime, float], ...], float | None]] = {}


def _drain(patient_id: int | None, samples: tuple[tuple[datetime, float], ...]) -> float | None:
    fit = _FITS.get(patient_id)
    if fit is not None and fit[0] is samples:
        return fit[1]
    rate = drain(samples)
    if len(_FITS) > 100_000:
        _FITS.clear()
    _FITS[patient_id] = (samples, rate)
    return rate


def hours_left(pct: float, rate: float | None) -> float | None:
    if rate is None or rate <= 1e-6:
        return None
    return pct / rate


def step(state: PatientState, event: Event, th: Thresholds, now: datetime) -> tuple[PatientState, list[Detection]]:
    if not isinstance(event, Reading) or event.battery_pct is None:
        if isinstance(event, Reading) and event.charging:
            return replace(state, battery=BatteryState()), []
        return state, []
    b = state.battery
    pct = float(event.battery_pct)
    if event.charging or (b.samples and pct > b.samples[-1][1] + 5):
        return replace(state, battery=BatteryState(samples=((event.t, pct),))), []
    samples = b.samples
    if not samples or seconds(samples[-1][0], event.t) >= THIN_S:
        samples = tuple(s for s in samples if event.t - s[0] <= KEEP) + ((event.t, pct),)
    elif event.t < samples[-1][0]:
        return state, []  # late, out-of-order reading: history already newer
    rate = _drain(state.patient_id, samples)
    left = hours_left(pct, rate)
    low = pct <= th.battery_low_pct or (left is not None and left <= th.battery_low_hours)
    unchanged = samples is b.samples  # (then a new BatteryState would equal the old: kept as it is)
    if not low:
        if unchanged and b.alerted_level is None:
            return state, []
        return replace(state, battery=BatteryState(samples, None)), []
    b = b if unchanged else BatteryState(samples, b.alerted_level)
    if b.alerted_level is not None and pct > b.alerted_level - REALERT_DROP and not (
            pct <= th.battery_critical_pct < b.alerted_level):
        return (state if b is state.battery else replace(state, battery=b)), []
    hrs = None if left is None else round(left, 1)
    th_left = "ไม่ทราบเวลาที่เหลือ" if hrs is None else f"เหลือประมาณ {hrs:g} ชั่วโมง"
    en_left = "time left unknown" if hrs is None else f"about {hrs:g} h left"
    d = detection(state, AlertType.BATTERY_LOW, event.t,
                  th=f"แบตเตอรี่สายรัดข้อมือเหลือ {pct:.0f}% ({th_left}) กรุณาชาร์จ",
                  en=f"Band battery at {pct:.0f}% ({en_left}); please charge it",
                  battery_pct=pct, hours_left=hrs,
                  drain_pct_per_h=None if rate is None else round(rate, 2),
                  critical=pct <= th.battery_critical_pct)
    return replace(state, battery=replace(b, alerted_level=pct)), [d]
