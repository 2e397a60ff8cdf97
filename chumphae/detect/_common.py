"""Small helpers the detectors share: building a Detection, seconds between instants."""

from __future__ import annotations

from datetime import datetime

from chumphae.detect.state import PatientState
from chumphae.values import AlertType, Detection, Match


def seconds(a: datetime, b: datetime) -> float:
    """b − a in seconds."""
    return (b - a).total_seconds()


def detection(state: PatientState, type_: AlertType, t: datetime, *, confidence: float = 1.0,
              match: Match | None = None, th: str, en: str, **details: object) -> Detection:
    """A Detection carrying what a caregiver needs, in Thai and English (no names, no CID)."""
    return Detection(type=type_, t=t, address=state.address, patient_id=state.patient_id,
                     confidence=round(float(confidence), 3), match=match,
                     details={**details, "summary_th": th, "summary_en": en})
