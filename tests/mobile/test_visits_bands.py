"""Home visits (ADL re-assessment) and band registration / replacement, through HTTP."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient
from sqlmodel import Session, select

from chumphae.models import AuditLog, Patient, Wristband
from chumphae.timeutil import utcnow
from tests.conftest import World
from tests.mobile.conftest import BAND


def _adl(world: World, patient_id: int) -> int | None:
    with Session(world.engine) as s:
        p = s.get(Patient, patient_id)
        assert p is not None
        return p.adl_score


def test_visit_updates_adl_unless_a_later_visit_scored(client: TestClient, world: World) -> None:
    url = f"/api/v1/patients/{world.own_patient}/visits"
    h = world.auth("volunteer")
    now = utcnow()
    r = client.post(url, json={"t": (now - timedelta(hours=1)).isoformat(), "adl_score": 4, "notes": "นอนติดเตียง"},
                    headers=h)
    assert r.status_code == 201
    assert (r.json()["adl_score"], r.json()["adl_group"]) == (4, "bedbound")
    assert _adl(world, world.own_patient) == 4
    # Logged late from an offline phone: older than the visit above, so the score stays 4.
    r = client.post(url, json={"t": (now - timedelta(days=2)).isoformat(), "adl_score": 12}, headers=h)
    assert r.status_code == 201
    assert _adl(world, world.own_patient) == 4
    # A visit without a score leaves the score alone.
    client.post(url, json={"notes": "ญาติดูแลดี"}, headers=h)
    assert _adl(world, world.own_patient) == 4

    page = client.get(url, headers=world.auth("caregiver")).json()
    assert page["total"] == 3
    assert [v["adl_score"] for v in page["items"]] == [None, 4, 12]  # newest first
    recent = client.get(url, params={"since": (now - timedelta(days=1)).isoformat(), "limit": 1}, headers=h).json()
    assert (recent["total"], len(recent["items"]), recent["next_offset"]) == (2, 1, 1)
    with Session(world.engine) as s:
        created = s.exec(select(AuditLog).where(AuditLog.entity == "visit")).all()
    assert [a.user_id for a in created] == [world.users["volunteer"]] * 3


def test_visit_in_the_future_or_bad_score_is_refused_in_both_languages(client: TestClient, world: World) -> None:
    url = f"/api/v1/patients/{world.own_patient}/visits"
    later = (utcnow() + timedelta(hours=2)).isoformat()
    th = client.post(url, json={"t": later}, headers=world.auth("volunteer"))
    en = client.post(url, json={"t": later}, headers={**world.auth("volunteer"), "Accept-Language": "en"})
    assert th.status_code == en.status_code == 422
    assert th.headers["content-type"].startswith("application/problem+json")
    assert (th.json()["title"], en.json()["title"]) == ("เวลาเยี่ยมบ้านอยู่ในอนาคต", "The visit time is in the future.")
    assert client.post(url, json={"adl_score": 21}, headers=world.auth("volunteer")).status_code == 422


def _bands(world: World) -> dict[str, tuple[int | None, bool]]:
    with Session(world.engine) as s:
        return {b.address: (b.patient_id, b.active) for b in s.exec(select(Wristband)).all()}


def test_register_replace_and_conflict(client: TestClient, world: World) -> None:
    own = f"/api/v1/patients/{world.own_patient}/bands"
    other = f"/api/v1/patients/{world.other_patient}/bands"
    r = client.put(own, json={"address": "c0-ca-fe-00-00-01", "key_hex": "00112233445566778899AABBCCDDEEFF"},
                   headers=world.auth("volunteer"))
    assert r.status_code == 200
    assert (r.json()["band"]["address"], r.json()["replaced"]) == (BAND, [])
    r = client.put(own, json={"address": "C0:CA:FE:00:00:09"}, headers=world.auth("volunteer"))
    assert [b["address"] for b in r.json()["replaced"]] == [BAND]
    assert _bands(world) == {BAND: (world.own_patient, False), "C0:CA:FE:00:00:09": (world.own_patient, True)}

    # The active band of one patient cannot be taken by another; the retired one can.
    r = client.put(other, json={"address": "C0:CA:FE:00:00:09"}, headers={**world.auth("volunteer2"),
                                                                           "Accept-Language": "en"})
    assert r.status_code == 409 and r.json()["title"] == "This wristband is in use by another patient."
    r = client.put(other, json={"address": BAND}, headers=world.auth("volunteer2"))
    assert r.status_code == 200
    assert _bands(world)[BAND] == (world.other_patient, True)

    listed = client.get(own, headers=world.auth("caregiver")).json()
    assert [(b["address"], b["active"]) for b in listed["items"]] == [("C0:CA:FE:00:00:09", True)]
    assert (listed["total"], listed["limit"], listed["offset"], listed["next_offset"]) == (1, 50, 0, None)
    assert "key_hex" not in listed["items"][0]
    assert client.put(own, json={"address": "not-a-mac"}, headers=world.auth("volunteer")).status_code == 422
    assert client.put(own, json={"address": "C0:CA:FE:00:00:0A", "key_hex": "abc"},
                      headers=world.auth("volunteer")).status_code == 422
