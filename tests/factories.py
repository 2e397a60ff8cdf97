"""Test factories: plain functions that add a row and return it."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlmodel import Session

from chumphae.models import Patient, Wristband


def make_patient(session: Session, **overrides: Any) -> Patient:
    fields: dict[str, Any] = {
        "prename": "นาง", "name_th": "สมศรี ใจดี", "name_en": "Somsri Jaidee",
        "birth_date": date(1940, 5, 1), "sex": "2", "adl_score": 9, "nhso_group": 2,
        "hospcode": "10707", "pid": "000123", "home_lat": 16.5442, "home_lon": 102.0997,
    }
    fields.update(overrides)
    patient = Patient(**fields)
    session.add(patient)
    session.flush()
    return patient


def make_band(session: Session, *, patient_id: int | None, address: str = "C0:CA:FE:00:00:01",
              **overrides: Any) -> Wristband:
    band = Wristband(address=address, patient_id=patient_id, key_hex="00112233445566778899aabbccddeeff",
                     **overrides)
    session.add(band)
    session.flush()
    return band
