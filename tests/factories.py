"""Test factories: plain functions that add a row and return it."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlmodel import Session

from chumphae.auth.service import create_gateway, revoke_gateway
from chumphae.models import Gateway, Patient, Wristband


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


def make_rotate_clash(session: Session) -> Gateway:
    """A revoked gateway `gw-old` of site `ban-r` whose receiver id `local` its replacement `gw-new` now holds:
    rotating it is refused (409 `receiver_clash`, small21). Flushed, not committed; the revoked one is returned."""
    old, _ = create_gateway(session, slug="gw-old", name="old", site="ban-r",
                            receivers=[{"id": "local", "lat": 16.545, "lon": 102.1001}])
    revoke_gateway(session, gateway=old)
    create_gateway(session, slug="gw-new", name="new", site="ban-r",
                   receivers=[{"id": "local", "lat": 16.5451, "lon": 102.1002}])
    session.flush()
    assert old.id is not None
    return old
