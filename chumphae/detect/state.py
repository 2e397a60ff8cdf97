"""The per-patient recent state the detectors take and return.

Detectors are pure steps: `step(state, event, thresholds, now)` returns a new
`PatientState` (built with `dataclasses.replace`) and the detections it made.
Nothing is edited in place, so the gateway and the backend can keep the state
wherever they like (memory, a row, a cache), replay a day of events through
the same steps in a test, and compare states with `==`.

Each detector owns one field (its sub-state); `PatientState` holds the facts
they share (who, when last heard, where last matched).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime

from chumphae.values import Match, Motion, Reading

Event = Reading | Match  # what the pipeline feeds the detectors


@dataclass(frozen=True, slots=True)
class WanderState:
    outside_since: datetime | None = None  # when this excursion began (see wander.step: may be backdated)
    alerted: bool = False  # wander raised for this excursion
    left_alerted: bool = False  # left-coverage raised for this silence
    centre_out_since: datetime | None = None  # first fix of the current run leaning outside (wander.leaning_out)
    back_since: datetime | None = None  # after a left-coverage alert: first fix of the band heard again
    supported_at: datetime | None = None  # the excursion's last fix that said the patient was still outside
    held_since: datetime | None = None  # first fix of the current unbroken run held outside (wander.held_out)
    leaned_at: datetime | None = None  # the last fix leaning outside (wander.LEAN_GAP_S: a dip this short keeps the run)
    # wander-22 (wander.HOLD_W_S > 0 only): the last HOLD_W_S s of fixes (t, outside_p, centre outside), oldest first
    recent: tuple[tuple[datetime, float, bool], ...] = ()
    date_floor: datetime | None = None  # wander.HOLD_W_DATE: an excursion the window alone started dates no earlier
    # wander-23 (wander.LONG_S > 0 only): the current run of fixes leaning outside with no gap over LONG_GAP_S,
    # its first fix, and the sum of its fixes' outside_p and their number
    long_since: datetime | None = None
    long_p: float = 0.0
    long_n: int = 0
    # wander-25 (wander.FAR_M > 0 only): first fix of the current unbroken run held far outside (wander.far_out)
    far_since: datetime | None = None
    # night30: the schedule (day / night geometry) of the last fix, and the first fix after it last switched to
    # night (None since it switched to day: review31); kept across excursions (a fix inside resets the rest): an
    # excursion the switch creates dates no earlier
    night: bool | None = None
    switched_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class FallCandidate:
    """An impact seen in the per-second summaries, waiting for what follows it."""

    t: datetime
    peak_g: float
    free_fall: bool
    flag: bool  # the band's own fall flag was set around it
    pitch_before: float | None
    roll_before: float | None


@dataclass(frozen=True, slots=True)
class FallState:
    window: tuple[tuple[datetime, Motion], ...] = ()  # recent per-second summaries, oldest first
    pending: FallCandidate | None = None
    last_fall: datetime | None = None
    flag_since: datetime | None = None  # the band's fall flag first seen set (until it clears)


@dataclass(frozen=True, slots=True)
class SosState:
    last_press: datetime | None = None
    flag_on: bool = False


@dataclass(frozen=True, slots=True)
class WearState:
    worn_off_since: datetime | None = None
    still_since: datetime | None = None  # "lying on a table" signature began
    still_ref: Motion | None = None  # the summary it began with (orientation must not drift from it)
    last_steps: int | None = None
    removed_alerted: bool = False
    silent_alerted: bool = False


@dataclass(frozen=True, slots=True)
class BatteryState:
    samples: tuple[tuple[datetime, float], ...] = ()  # (t, percent), oldest first, thinned
    alerted_level: float | None = None  # the percent at which we last alerted


@dataclass(frozen=True, slots=True)
class PatientState:
    patient_id: int | None = None
    address: str | None = None
    last_heard: datetime | None = None
    last_match: Match | None = None
    wander: WanderState = field(default_factory=WanderState)
    fall: FallState = field(default_factory=FallState)
    sos: SosState = field(default_factory=SosState)
    wear: WearState = field(default_factory=WearState)
    battery: BatteryState = field(default_factory=BatteryState)


def heard(state: PatientState, event: Event) -> PatientState:
    """The shared facts after an event: last heard, last match (never moving time backwards)."""
    t = event.t if isinstance(event, Reading) else event.position.t
    new_heard = t if state.last_heard is None else max(state.last_heard, t)
    if isinstance(event, Match):
        newer = state.last_match is None or event.position.t >= state.last_match.position.t
        return replace(state, last_heard=new_heard, last_match=event if newer else state.last_match)
    return replace(state, last_heard=new_heard, address=state.address or event.address)
