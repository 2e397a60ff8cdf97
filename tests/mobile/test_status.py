"""My patients with their status, one patient's status, and positions: through HTTP on a stored map."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from chumphae.alert.service import AlertInput, raise_alert
from chumphae.models import AuditLog, PositionRecord, Wristband
from chumphae.timeutil import utcnow
from tests.conftest import World
from tests.mobile.conftest import lonlat


def _band(world: World, **state: object) -> None:
    with Session(world.engine) as s:
        band = s.exec(select(Wristband).where(Wristband.patient_id == world.own_patient)).one()
        for k, v in state.items():
            setattr(band, k, v)
        s.add(band)
        s.commit()


def _position(world: World, x: float, y: float, *, ago_s: float, patient: int | None = None, **kw: object) -> None:
    lon, lat = lonlat(x, y)
    with Session(world.engine) as s:
        s.add(PositionRecord(patient_id=patient or world.own_patient, t=utcnow() - timedelta(seconds=ago_s),
                             lat=lat, lon=lon, uncertainty_m=kw.pop("uncertainty_m", 12.0), **kw))
        s.commit()


def test_statuses_most_urgent_first_with_every_reason(client: TestClient, mapped: World) -> None:
    _band(mapped, battery_pct=12.0, worn=True, last_seen_at=utcnow() - timedelta(seconds=30))
    r = client.get("/api/v1/mobile/patients", headers=mapped.auth("care_manager"))
    assert r.status_code == 200
    body = r.json()
    assert [(i["patient_id"], i["status"]) for i in body["items"]] == [
        (mapped.other_patient, "band_off"), (mapped.own_patient, "battery_low")]
    assert body["items"][0]["reasons"][0]["code"] == "no_band"
    assert body["items"][1]["band"]["battery_pct"] == 12.0
    assert (body["total"], body["next_offset"]) == (2, None)

    with Session(mapped.engine) as s:
        raise_alert(s, alert=AlertInput(type="wander", t=utcnow(), patient_id=mapped.own_patient))
        s.commit()
    items = client.get("/api/v1/mobile/patients", headers=mapped.auth("care_manager")).json()["items"]
    own = items[0]
    assert own["patient_id"] == mapped.own_patient
    assert own["status"] == "alert" and own["status_th"] == "มีการแจ้งเตือน"
    assert [r["code"] for r in own["reasons"]] == ["open_alert", "battery_low"]
    assert own["open_alerts"] == ["wander"]


def test_volunteer_sees_only_own_patients_in_pages(client: TestClient, mapped: World) -> None:
    body = client.get("/api/v1/mobile/patients", headers=mapped.auth("volunteer")).json()
    assert [i["patient_id"] for i in body["items"]] == [mapped.own_patient]
    page1 = client.get("/api/v1/mobile/patients?limit=1", headers=mapped.auth("admin")).json()
    page2 = client.get(f"/api/v1/mobile/patients?limit=1&offset={page1['next_offset']}",
                       headers=mapped.auth("admin")).json()
    assert page1["total"] == page2["total"] == 2 and page2["next_offset"] is None
    assert {page1["items"][0]["patient_id"], page2["items"][0]["patient_id"]} == {mapped.own_patient,
                                                                                  mapped.other_patient}
    only = client.get("/api/v1/mobile/patients?status=band_off", headers=mapped.auth("admin")).json()
    assert [i["status"] for i in only["items"]] == ["band_off", "band_off"]  # own band never heard: silent
    with Session(mapped.engine) as s:
        listed = s.exec(select(AuditLog).where(AuditLog.entity == "patient_status_list")).all()
    assert listed and all(a.user_id is not None for a in listed)


def test_silent_and_not_worn_are_band_off(client: TestClient, mapped: World) -> None:
    _band(mapped, battery_pct=80.0, worn=True, last_seen_at=utcnow() - timedelta(hours=3))
    body = client.get(f"/api/v1/patients/{mapped.own_patient}/status", headers=mapped.auth("volunteer")).json()
    assert (body["status"], [r["code"] for r in body["reasons"]]) == ("band_off", ["silent"])
    _band(mapped, worn=False, last_seen_at=utcnow())
    body = client.get(f"/api/v1/patients/{mapped.own_patient}/status", headers=mapped.auth("volunteer")).json()
    assert (body["status"], [r["code"] for r in body["reasons"]]) == ("band_off", ["not_worn"])
    _band(mapped, worn=True)
    body = client.get(f"/api/v1/patients/{mapped.own_patient}/status", headers=mapped.auth("volunteer")).json()
    assert (body["status"], body["reasons"]) == ("ok", [])


def test_last_position_with_uncertainty_and_landmark_words(client: TestClient, mapped: World) -> None:
    _band(mapped, battery_pct=80.0, worn=True, last_seen_at=utcnow())
    _position(mapped, 15, 15, ago_s=600)
    _position(mapped, 0, 320, ago_s=60, uncertainty_m=35.0, zone_status="outside")  # 120 m north of the temple
    body = client.get(f"/api/v1/patients/{mapped.own_patient}/status", headers=mapped.auth("caregiver")).json()
    pos = body["last_position"]
    assert pos["uncertainty_m"] == 35.0 and pos["zone_status"] == "outside"
    assert pos["description_en"] == "120 m north of Wat Thotsop"
    assert pos["description_th"] == "ห่างจากวัดทดสอบ 120 ม. ทางทิศเหนือ"
    assert body["status"] == "ok"

    _position(mapped, 0, 330, ago_s=5, in_coverage=False)
    body = client.get(f"/api/v1/patients/{mapped.own_patient}/status", headers=mapped.auth("caregiver")).json()
    assert body["status"] == "out_of_coverage"


def test_positions_by_time_in_pages(client: TestClient, mapped: World) -> None:
    for k in range(5):
        _position(mapped, 10 * k, 0, ago_s=3600 - 600 * k, source="ble" if k < 4 else "gps")
    url = f"/api/v1/patients/{mapped.own_patient}/positions"
    h = mapped.auth("volunteer")
    every = client.get(url, headers=h).json()
    assert every["total"] == 5
    ts = [p["t"] for p in every["items"]]
    assert ts == sorted(ts, reverse=True)
    since = (utcnow() - timedelta(seconds=2500)).isoformat()
    recent = client.get(url, params={"since": since}, headers=h).json()
    assert recent["total"] == 3  # 2400, 1800 and 1200 s ago
    first = client.get(url, params={"limit": 2}, headers=h).json()
    assert (len(first["items"]), first["next_offset"]) == (2, 2)
    assert client.get(url, params={"source": "gps"}, headers=h).json()["total"] == 1
    r = client.get(url, params={"source": "radar"}, headers={**h, "Accept-Language": "en"})
    assert r.status_code == 422 and r.json()["title"] == "The request is not valid."


def test_newest_position_per_patient_on_both_databases(engine: Engine) -> None:
    """The newest by time (not by id), the higher id on a tie, across days (PostgreSQL: day partitions),
    and nothing for a patient never heard."""
    from chumphae.patients.status import _newest_positions
    from tests.conftest import build_world

    world = build_world(engine)
    now = utcnow()
    a, b = world.own_patient, world.other_patient
    rows = [(a, now - timedelta(days=3), 1.0), (a, now - timedelta(minutes=5), 2.0),  # a's newest
            (a, now - timedelta(days=1), 3.0), (b, now - timedelta(hours=2), 4.0),
            (b, now - timedelta(hours=2), 5.0), (b, now - timedelta(days=2), 6.0)]  # b: a tie, the later id
    with Session(engine) as s:
        for pid, t, lat in rows:
            s.add(PositionRecord(patient_id=pid, t=t, lat=lat, lon=102.1, uncertainty_m=10.0))
            s.flush()
        s.commit()
        got = _newest_positions(s, [a, b, 999_999])
    assert {pid: r.lat for pid, r in got.items()} == {a: 2.0, b: 5.0}


def test_positions_without_codes_are_named_from_the_map(client: TestClient, mapped: World) -> None:
    """A gateway that words only the zone ("inside the safe zone", the shipped one) stores no parcel or
    building; the app's answers name them from the tax map, and never overwrite codes a row has."""
    _position(mapped, 15, 15, ago_s=120, zone_status="inside")  # in house 01A001-B001 on parcel 01A001
    _position(mapped, 0, 200, ago_s=60, parcel_code="99Z999")  # a gateway's own code is kept as sent
    _position(mapped, 500, 500, ago_s=30)  # on no parcel: stays null
    url = f"/api/v1/patients/{mapped.own_patient}/positions"
    items = client.get(url, headers=mapped.auth("volunteer")).json()["items"]
    assert [(p["parcel_code"], p["building_code"]) for p in items] == [
        (None, None), ("99Z999", None), ("01A001", "01A001-B001")]
    _position(mapped, 15, 15, ago_s=1)
    for path in (f"/api/v1/patients/{mapped.own_patient}/status", "/api/v1/mobile/patients"):
        body = client.get(path, headers=mapped.auth("volunteer")).json()
        pos = body["last_position"] if "last_position" in body else body["items"][0]["last_position"]
        assert (pos["parcel_code"], pos["building_code"]) == ("01A001", "01A001-B001"), path
        assert pos["description_en"] is not None
