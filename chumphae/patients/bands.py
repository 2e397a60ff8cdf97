"""Registering a wristband to a patient, or replacing the one they wore.

One active band per patient: a new one retires the old (kept, inactive, so
old positions still name the band they came from). A band that is active on
another patient is refused (taking it would silently move someone else's
alerts); an inactive or unassigned band may be reused. Gateways notice the
change because the site configuration's ETag is a hash of its content.
"""

from __future__ import annotations

import re

from sqlmodel import Session, col, select

from chumphae import audit
from chumphae.models import Patient, User, Wristband
from chumphae.timeutil import utcnow

ADDRESS = re.compile(r"^[0-9A-F]{2}(:[0-9A-F]{2}){5}$")
KEY = re.compile(r"^[0-9a-f]{32}$")


class BandConflict(Exception):
    """The band is in use by another patient."""


def normalise_address(address: str) -> str:
    """"c0-ca-fe-00-00-01" or "c0cafe000001" → "C0:CA:FE:00:00:01"; ValueError if not a MAC."""
    hexes = re.sub(r"[^0-9A-Fa-f]", "", address).upper()
    text = ":".join(hexes[i:i + 2] for i in range(0, len(hexes), 2))
    if not ADDRESS.match(text):
        raise ValueError("a band address is six hex bytes, e.g. C0:CA:FE:00:00:01")
    return text


def register_band(session: Session, *, user: User, patient: Patient, address: str, model: str = "chumphae-v1",
                  key_hex: str | None = None, site: str | None = None,
                  route: str | None = None) -> tuple[Wristband, list[Wristband]]:
    """Give `patient` the band `address`; returns it and the bands it replaced."""
    assert patient.id is not None
    address = normalise_address(address)
    if key_hex is not None and not KEY.match(key_hex.lower()):
        raise ValueError("key_hex is 16 bytes as 32 hex digits")
    band = session.exec(select(Wristband).where(Wristband.address == address)).first()
    if band is not None and band.active and band.patient_id not in (None, patient.id):
        raise BandConflict(address)
    current = session.exec(select(Wristband).where(Wristband.patient_id == patient.id, col(Wristband.active))).all()
    replaced = [b for b in current if b.address != address]
    for old in replaced:
        old.active = False
        session.add(old)
    if site is None:
        site = current[0].site if current else (band.site if band is not None else "chumphae")
    if band is None:
        band = Wristband(address=address, model=model, key_hex=key_hex.lower() if key_hex else None,
                         patient_id=patient.id, site=site, created_at=utcnow())
    else:
        band.patient_id, band.model, band.site, band.active = patient.id, model, site, True
        if key_hex is not None:
            band.key_hex = key_hex.lower()
        # A reused band starts afresh: its last state belonged to someone else.
        band.battery_pct = band.battery_mv = band.worn = band.charging = None
        band.last_seen_at = band.last_reading_at = band.last_seq = band.last_rssi = None
    session.add(band)
    session.flush()
    audit.record(session, user=user, action="update", entity="wristband", entity_id=band.id,
                 patient_id=patient.id, route=route,
                 detail={"replaced": [b.id for b in replaced], "address": address})
    return band, replaced


def bands_of(session: Session, *, patient_id: int) -> list[Wristband]:
    """Every band the patient has had, the active one first, then newest first."""
    return list(session.exec(select(Wristband).where(Wristband.patient_id == patient_id)
                             .order_by(col(Wristband.active).desc(), col(Wristband.id).desc())).all())
