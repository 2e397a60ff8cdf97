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


def test_demo_patients_have_distinct_names_while_the_lists_last_and_the_same_draws() -> None:
    """debt19: four men of the demo district were Kammee (the demo console names patients by code and given
    name) and two women Somsri Chumphae. Now each sex's given names are all used before one comes twice, no
    full name comes twice, and the random draws are as before (CIDs, birth dates, scores unchanged)."""
    import random
    from collections import Counter

    from chumphae.seed import GIVEN_F, GIVEN_M, RNG_SEED, demo_people

    people = demo_people(30, random.Random(RNG_SEED))
    assert max(Counter(p.name_en for p in people).values()) == 1
    assert max(Counter(p.name_th for p in people).values()) == 1
    for sex, names in (("1", GIVEN_M), ("2", GIVEN_F)):
        given = [p.name_en.split(" ")[0] for p in people if p.sex == sex]
        first = given[:len(names)]
        assert len(set(first)) == len(first), given  # no repeat before every name was given
    assert sum(p.name_en.startswith("Kammee ") for p in people) == 1
    # the draws: the seeded district's first and last patients as they were seeded before
    assert (people[0].name_en, people[0].cid) == ("Kammee Phukhiao", "0240991252401")
    assert (people[-1].name_en, people[-1].cid, people[-1].birth_date.isoformat(), people[-1].adl_score) == (
        "Buaphan Thongkham", "0582467789191", "1940-03-25", 13)


def test_every_safe_place_of_a_demo_zone_has_a_receiver(app_engine: Engine) -> None:
    """demo28: a safe place no receiver hears cannot be told from outside it (wander-27), so each safe place of
    each demo patient's zone has a receiver of that patient's site within POLE_MIN_GAP_M of its point."""
    from chumphae.map.demo import demo_homes
    from chumphae.map.store import load_layers
    from chumphae.map.zones import place_point
    from chumphae.seed import POLE_MIN_GAP_M, RNG_SEED, _slug

    with Session(app_engine, expire_on_commit=False) as s:
        seed_demo(s)
        s.commit()
        layers = load_layers(s)
        homes = demo_homes(layers, 30, seed=RNG_SEED)
        checked = 0
        for home in homes:
            gw = s.exec(select(Gateway).where(Gateway.slug == _slug(home.area))).one()
            rx = [shapely.Point(*map(float, layers.metric.xy(float(r["lon"]), float(r["lat"]))))  # type: ignore[arg-type]
                  for r in gw.receivers]
            spec = home.zone_spec()
            for code in spec.place_codes:
                p = place_point(layers, code, spec.place_radius_m, spec.margin_m)
                assert min(p.distance(q) for q in rx) < POLE_MIN_GAP_M + 1e-6, (home.area, code)
                checked += 1
        assert checked > 0  # the demo zones do have safe places
        for g in s.exec(select(Gateway)).all():  # a receiver id is one receiver of its site
            ids = [str(r["id"]) for r in g.receivers]
            assert len(ids) == len(set(ids))
