"""Band removed, and band silent while at home.

Removed, two kinds of evidence:
  - the band's own worn flag off for `removed_worn_off_s` (a short blip is a
    loose strap, not a removal). A charging band is off the wrist on
    purpose: no alert while it charges;
  - the motion signature of a band lying on a table: for `removed_still_s`
    every per-second summary shows no motion at all (max − min within one
    step of the band's 1/16 g resolution) and the orientation never changes
    (a living wrist, even asleep, shifts by a few degrees now and then),
    while the patient is known to be active (the day schedule). Steps
    counted end it at once.

Silent at home: not heard for `silent_s` while the last fix was inside the
zone and away from its edge (or no fix is known). Near the edge or outside,
silence is `left_coverage` instead (wander.py).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from chumphae.detect._common import detection, seconds
from chumphae.detect.state import Event, PatientState
from chumphae.detect.thresholds import Thresholds, is_night
from chumphae.detect.wander import near_edge_or_outside
from chumphae.values import AlertType, Detection, Motion, Reading, ZoneStatus

STILL_RANGE_G = 0.07  # one 1/16 g step plus rounding
STILL_PITCH_DEG = 2.0
STILL_ROLL_DEG = 4.0  # roll is sent in 2° units


def _dead_still(m: Motion, ref: Motion | None) -> bool:
    if m.max_g - m.min_g > STILL_RANGE_G or not 0.9 <= m.mean_g <= 1.1:
        return False
    if ref is None or m.pitch_deg is None or ref.pitch_deg is None:
        return True
    roll_moved = (m.roll_deg is not None and ref.roll_deg is not None
                  and abs(m.roll_deg - ref.roll_deg) > STILL_ROLL_DEG)
    return abs(m.pitch_deg - ref.pitch_deg) <= STILL_PITCH_DEG and not roll_moved


def step(state: PatientState, event: Event, th: Thresholds, now: datetime) -> tuple[PatientState, list[Detection]]:
    if not isinstance(event, Reading):
        return state, []
    w = state.wear
    last_steps = event.steps if event.steps is not None else w.last_steps
    if w.silent_alerted or last_steps != w.last_steps:  # (no-op replaces skipped: states compare by value)
        w = replace(w, silent_alerted=False, last_steps=last_steps)
    out: list[Detection] = []
    off = event.worn is False and not event.charging
    # the worn flag
    if off:
        since = w.worn_off_since or event.t
        w = replace(w, worn_off_since=since)
        if not w.removed_alerted and seconds(since, event.t) >= th.removed_worn_off_s:
            out.append(detection(state, AlertType.BAND_REMOVED, since, confidence=0.95,
                                 th="ถอดสายรัดข้อมือออก (เซ็นเซอร์การสวมใส่)",
                                 en="Band taken off (worn sensor)", evidence="worn_flag",
                                 off_for_s=round(seconds(since, event.t))))
            w = replace(w, removed_alerted=True)
    elif w.worn_off_since is not None:
        w = replace(w, worn_off_since=None)
    # the table signature
    m = event.motion
    stepped = (event.steps is not None and state.wear.last_steps is not None
               and event.steps != state.wear.last_steps)
    if m is None or event.charging:
        alive = not off and m is None and event.worn is True
    elif not stepped and _dead_still(m, w.still_ref):
        alive = False
        if w.still_since is None:
            w = replace(w, still_since=event.t, still_ref=m)
        since = w.still_since or event.t
        if (not is_night(event.t, th) and not w.removed_alerted
                and seconds(since, event.t) >= th.removed_still_s):
            out.append(detection(state, AlertType.BAND_REMOVED, since, confidence=0.7,
                                 th="สายรัดข้อมือนิ่งสนิทเหมือนวางไว้บนโต๊ะ อาจไม่ได้สวมอยู่",
                                 en="Band lying dead still, as if left on a table: probably not worn",
                                 evidence="still_signature", still_for_s=round(seconds(since, event.t))))
            w = replace(w, removed_alerted=True)
    else:
        alive = not off
        if w.still_since is not None or w.still_ref is not None:
            w = replace(w, still_since=None, still_ref=None)
    if alive and w.removed_alerted:  # worn and moving again: the next removal is a new one
        w = replace(w, removed_alerted=False)
    return (replace(state, wear=w) if w is not state.wear else state), out


def tick(state: PatientState, th: Thresholds, now: datetime) -> tuple[PatientState, list[Detection]]:
    w = state.wear
    if state.last_heard is None or w.silent_alerted:
        return state, []
    silent = seconds(state.last_heard, now)
    if silent < th.silent_s:
        return state, []
    m = state.last_match
    if m is not None and m.status != ZoneStatus.NO_ZONE and near_edge_or_outside(m, th):
        return state, []  # that is left coverage, not a silent band at home
    d = detection(state, AlertType.BAND_SILENT, state.last_heard, match=m, confidence=0.8,
                  th=f"ไม่ได้รับสัญญาณสายรัดข้อมือที่บ้าน {int(silent // 60)} นาที (แบตหมด ถอดออก หรืออยู่นอกระยะ)",
                  en=f"Band not heard at home for {int(silent // 60)} min (flat, removed or out of range)",
                  silent_for_s=round(silent))
    return replace(state, wear=replace(w, silent_alerted=True)), [d]
