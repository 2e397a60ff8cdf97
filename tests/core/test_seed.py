"""The demo district lands on the map: homes on residential parcels, zones that hold them, nobody unassigned."""

from __future__ import annotations

import shapely
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from chumphae.auth.service import user_by_token
from chumphae.models import CareAssignment, Gateway, Patient, SafeZone, Wristband
from chumphae.seed import fake_cid, seed_demo


def test_seed_places_patients_on_the_map(app_engine: Engine) -> None:
    with Session(app_engine, expire_on_commit=False) as s:
        result = seed_demo(s, n_patients=12)
        s.commit()
        patients = s.exec(select(Patient)).all()
        assert result.created and len(patients) == 12
        for p in patients:
            assert p.home_parcel_code and p.home_building_code.startswith(p.home_parcel_code + "-B")
            zone = s.exec(select(SafeZone).where(SafeZone.patient_id == p.id, SafeZone.active)).one()
            assert shapely.from_wkb(zone.day_wkb).contains(shapely.Point(p.home_lon, p.home_lat))
            band = s.exec(select(Wristband).where(Wristband.patient_id == p.id)).one()
            assert len(bytes.fromhex(band.key_hex)) == 16
            assert s.exec(select(Gateway).where(Gateway.site == band.site)).first() is not None
            assert s.exec(select(CareAssignment).where(CareAssignment.patient_id == p.id)).first()
        assert user_by_token(s, result.tokens["volunteer1"]) is not None


def test_seed_twice_keeps_data_and_issues_new_tokens(app_engine: Engine) -> None:
    with Session(app_engine, expire_on_commit=False) as s:
        first = seed_demo(s, n_patients=6)
        s.commit()
        second = seed_demo(s, n_patients=6)
        s.commit()
        assert not second.created and second.patients == 6
        assert user_by_token(s, first.tokens["caregiver1"]) is None
        assert user_by_token(s, second.tokens["caregiver1"]) is not None


def test_fake_cids_have_valid_check_digits_and_are_never_real() -> None:
    import random

    rng = random.Random(1)
    for _ in range(50):
        cid = fake_cid(rng)
        digits = [int(c) for c in cid]
        assert len(cid) == 13 and digits[0] == 0
        assert (11 - sum(d * (13 - i) for i, d in enumerate(digits[:12])) % 11) % 10 == digits[12]
