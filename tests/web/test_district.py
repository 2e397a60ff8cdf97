"""The care manager's district overview (`GET /api/v1/district/overview`) over HTTP, on both databases.

The page's care-manager view reads this route (tests/web/test_page_views.py shows it in
a browser); here its counts and filters are checked against a district built by hand.
"""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient
from sqlmodel import Session, select

from chumphae.alert.service import AlertInput, raise_alert
from chumphae.auth.service import assign, create_user
from chumphae.models import AuditLog, Patient, PositionRecord, Wristband
from chumphae.timeutil import utcnow
from tests.conftest import World
from tests.factories import make_patient

URL = "/api/v1/district/overview"


def build(world: World) -> dict[str, int]:
    """Two villages: Ban Nong (p1 with an open SOS, a flat band; p3 out of coverage), Ban Khok (p2, band
    never heard), and p4 with no village. volunteer2 looks after p2 only."""
    now = utcnow()
    with Session(world.engine, expire_on_commit=False) as s:
        p1 = s.get(Patient, world.own_patient)
        p2 = s.get(Patient, world.other_patient)
        assert p1 and p2
        p1.village, p2.village = "บ้านหนองแวง", "บ้านโคก"
        p1.home_lat, p1.home_lon = 16.54, 102.10
        p2.home_lat, p2.home_lon = 16.55, 102.11
        p3 = make_patient(s, name_th="ผู้ป่วยสาม", village="บ้านหนองแวง", home_lat=16.56, home_lon=102.12)
        p4 = make_patient(s, name_th="ผู้ป่วยสี่", village=None)
        s.add_all([p1, p2])
        s.add(Wristband(address="C0:CA:FE:00:00:01", patient_id=p1.id, battery_pct=8.0, worn=True,
                        last_seen_at=now, active=True))
        s.add(Wristband(address="C0:CA:FE:00:00:02", patient_id=p2.id, active=True))  # never heard
        band3 = Wristband(address="C0:CA:FE:00:00:03", patient_id=p3.id, battery_pct=90.0, worn=True,
                          last_seen_at=now, active=True)
        s.add(band3)
        s.flush()
        s.add(PositionRecord(patient_id=p3.id, band_id=band3.id, t=now - timedelta(seconds=30), lat=16.56,
                             lon=102.12, uncertainty_m=40, source="ble", in_coverage=False, received_at=now))
        raise_alert(s, alert=AlertInput(type="sos", t=now, patient_id=p1.id, lat=16.54, lon=102.10,
                                        uncertainty_m=20), now=now)
        s.commit()
        return {"p1": p1.id, "p2": p2.id, "p3": p3.id, "p4": p4.id}  # type: ignore[dict-item]


def test_villages_counted_and_filters(client: TestClient, world: World) -> None:
    ids = build(world)
    r = client.get(URL, headers=world.auth("care_manager"))
    assert r.status_code == 200, r.text
    body = r.json()
    villages = {v["village"]: v for v in body["villages"]}
    assert list(villages) == [*sorted(["บ้านโคก", "บ้านหนองแวง"]), ""]  # by name, "no village" last
    nong = villages["บ้านหนองแวง"]
    assert (nong["patients"], nong["open_alerts"], nong["alert_patients"], nong["out_of_coverage"],
            nong["band_off"], nong["battery_low"]) == (2, 1, 1, 1, 0, 1)
    assert nong["bbox"] == [102.10, 16.54, 102.12, 16.56]
    assert abs(nong["lat"] - 16.55) < 1e-9 and abs(nong["lon"] - 102.11) < 1e-9
    khok = villages["บ้านโคก"]
    assert (khok["patients"], khok["band_off"], khok["open_alerts"]) == (1, 1, 0)
    assert villages[""]["band_off"] == 1  # p4 has no band at all
    assert body["totals"] == {"patients": 4, "open_alerts": 1, "alert_patients": 1, "out_of_coverage": 1,
                              "band_off": 2, "battery_low": 1}
    # Most urgent first; the SOS patient leads.
    assert [p["id"] for p in body["patients"]][0] == ids["p1"]
    assert body["patients"][0]["status"] == "alert" and body["patients"][0]["open_alerts"] == ["sos"]
    assert "cid" not in body["patients"][0]

    def listed(**params: object) -> list[int]:
        got = client.get(URL, params=params, headers=world.auth("care_manager"))
        assert got.status_code == 200, got.text
        # Village counts never shrink with the list's filters: the map keeps every village.
        assert len(got.json()["villages"]) == 3
        return sorted(p["id"] for p in got.json()["patients"])

    assert listed(village="บ้านหนองแวง") == sorted([ids["p1"], ids["p3"]])
    assert listed(village="") == [ids["p4"]]
    assert listed(status="out_of_coverage") == [ids["p3"]]
    assert listed(status=["band_off", "out_of_coverage"]) == sorted([ids["p2"], ids["p3"], ids["p4"]])
    assert listed(volunteer=world.users["volunteer2"]) == [ids["p2"]]
    assert listed(volunteer=world.users["volunteer2"], status="alert") == []
    vols = {v["id"] for v in client.get(URL, headers=world.auth("admin")).json()["volunteers"]}
    assert vols == {world.users["volunteer"], world.users["volunteer2"]}


def test_bad_filters_are_clear_errors(client: TestClient, world: World) -> None:
    for params in ({"status": "sleeping"}, {"volunteer": "someone"}, {"limit": 0}):
        r = client.get(URL, params=params, headers=world.auth("care_manager"))
        assert r.status_code == 422, (params, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")


def test_read_is_attributed_and_caregivers_refused(client: TestClient, world: World) -> None:
    build(world)
    assert client.get(URL, headers=world.auth("caregiver")).status_code == 403
    assert client.get(URL, headers=world.auth("care_manager")).status_code == 200
    with Session(world.engine) as s:
        rows = s.exec(select(AuditLog).where(AuditLog.entity == "district_overview")).all()
    assert [r.user_id for r in rows] == [world.users["care_manager"]]
    with Session(world.engine) as s:  # a volunteer added later shows up as a filter choice
        user, _ = create_user(s, name="อสม. สาม", role="volunteer")
        assign(s, user_id=user.id, patient_id=world.own_patient, relation="volunteer")  # type: ignore[arg-type]
        s.commit()
    names = [v["name"] for v in client.get(URL, headers=world.auth("care_manager")).json()["volunteers"]]
    assert "อสม. สาม" in names
