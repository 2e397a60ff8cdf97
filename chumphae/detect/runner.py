"""The detectors behind the gateway's `Detector` protocol (gateway/pipeline.py).

The detectors are pure; something must hold each patient's state between
events. `Detectors` is that holder: one `PatientState` per patient, the
patient's thresholds (set from the site configuration), and the three calls
the pipeline makes. Readings from bands with no patient are ignored (nobody
to alert for).
"""

from __future__ import annotations

from datetime import datetime

from chumphae.detect import detect, tick
from chumphae.detect.state import PatientState
from chumphae.detect.thresholds import Thresholds
from chumphae.values import Detection, Match, Position, Reading


class Detectors:
    def __init__(self, default: Thresholds | None = None) -> None:
        self.default = default or Thresholds()
        self.thresholds: dict[int, Thresholds] = {}
        self.states: dict[int, PatientState] = {}

    def set_thresholds(self, patient_id: int, th: Thresholds) -> None:
        self.thresholds[patient_id] = th

    def _run(self, pid: int, event: Reading | Match, now: datetime) -> list[Detection]:
        th = self.thresholds.get(pid, self.default)
        state = self.states.get(pid) or PatientState(patient_id=pid)
        state, found = detect(state, event, th, now)
        self.states[pid] = state
        return found

    def on_reading(self, reading: Reading, patient_id: int | None) -> list[Detection]:
        return [] if patient_id is None else self._run(patient_id, reading, reading.t)

    def on_position(self, position: Position, match: Match | None, patient_id: int | None) -> list[Detection]:
        if patient_id is None or match is None:
            return []
        return self._run(patient_id, match, position.t)

    def tick(self, wall: datetime) -> list[Detection]:
        found: list[Detection] = []
        for pid, state in list(self.states.items()):
            state, more = tick(state, self.thresholds.get(pid, self.default), wall)
            self.states[pid] = state
            found += more
        return found
