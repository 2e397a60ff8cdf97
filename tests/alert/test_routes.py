"""Alert REST routes through HTTP: who may list, read, acknowledge and resolve which alerts."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from chumphae.models import AuditLog
from tests.conftest import World
from tests.feed.conftest import raise_alert

ROLES = ("caregiver", "volunteer", "volunteer2", "care_manager", "hospital", "admin")


@pytest.mark.parametrize("action", ["get", "acknowledge", "resolve"])
def test_each_role_on_own_and_other_patients_alerts(client: TestClient, world: World, action: str) -> None:
    for role in ROLES:
        own = raise_alert(world.engine, world.own_patient, "sos")
        other = raise_alert(world.engine, world.other_patient, "sos")
        for alert, carers in ((own, {"caregiver", "volunteer"}), (other, {"volunteer2"})):
            allowed = role in carers or role in {"care_manager", "hospital", "admin"}
            path = f"/api/v1/alerts/{alert.alert_id}"
            if action == "get":
                r = client.get(path, headers=world.auth(role))
            elif action == "acknowledge":
                r = client.post(f"{path}/acknowledge", headers=world.auth(role), json={"note": "กำลังไป"})
            else:
                r = client.post(f"{path}/resolve", headers=world.auth(role), json={"outcome": "false_alarm"})
            assert r.status_code == (200 if allowed else 403), (role, action, r.text)
            if not allowed:
                assert r.json()["code"] == "patient_forbidden" and "ผู้ป่วยสอง" not in r.text and "ผู้ป่วยหนึ่ง" not in r.text
        # leave no open alert behind for the next role
        for alert in (own, other):
            client.post(f"/api/v1/alerts/{alert.alert_id}/resolve", headers=world.auth("admin"),
                        json={"outcome": "other"})


def test_list_filters_pages_and_audits(client: TestClient, world: World) -> None:
    a = raise_alert(world.engine, world.own_patient, "sos")
    b = raise_alert(world.engine, world.own_patient, "battery_low")
    c = raise_alert(world.engine, world.other_patient, "fall")
    ids = lambda r: [x["id"] for x in r.json()["items"]]  # noqa: E731
    assert sorted(ids(client.get("/api/v1/alerts", headers=world.auth("caregiver")))) == sorted([a.alert_id, b.alert_id])
    assert sorted(ids(client.get("/api/v1/alerts", headers=world.auth("care_manager")))) == sorted(
        [a.alert_id, b.alert_id, c.alert_id])
    r = client.get("/api/v1/alerts", params={"severity": "critical"}, headers=world.auth("caregiver"))
    assert ids(r) == [a.alert_id] and r.json()["items"][0]["patient"]["id"] == world.own_patient
    r = client.get("/api/v1/alerts", params={"type": ["sos", "fall"]}, headers=world.auth("admin"))
    assert sorted(ids(r)) == sorted([a.alert_id, c.alert_id])
    page1 = ids(client.get("/api/v1/alerts", params={"limit": 1}, headers=world.auth("admin")))
    page2 = ids(client.get("/api/v1/alerts", params={"limit": 1, "offset": 1}, headers=world.auth("admin")))
    assert len(page1) == len(page2) == 1 and page1 != page2
    first = client.get("/api/v1/alerts", params={"limit": 2}, headers=world.auth("admin")).json()
    assert (first["total"], first["limit"], first["offset"], first["next_offset"]) == (3, 2, 0, 2)
    last = client.get("/api/v1/alerts", params={"limit": 2, "offset": 2}, headers=world.auth("admin")).json()
    assert (len(last["items"]), last["total"], last["next_offset"]) == (1, 3, None)
    assert client.get("/api/v1/alerts", params={"patient_id": world.other_patient},
                      headers=world.auth("caregiver")).status_code == 403
    client.post(f"/api/v1/alerts/{a.alert_id}/resolve", headers=world.auth("caregiver"),
                json={"outcome": "taken_to_hospital", "note": "ส่งโรงพยาบาลชุมแพ"})
    r = client.get("/api/v1/alerts", params={"status": "resolved"}, headers=world.auth("caregiver"))
    assert ids(r) == [a.alert_id] and r.json()["items"][0]["outcome"] == "taken_to_hospital"
    resolved = r.json()["items"][0]
    assert resolved["resolved_by_name"] == "caregiver" and resolved["acknowledged_by_name"] == "caregiver"
    r = client.post(f"/api/v1/alerts/{a.alert_id}/resolve", headers={**world.auth("caregiver"),
                                                                     "Accept-Language": "en"},
                    json={"outcome": "other"})
    assert r.status_code == 409 and r.json()["title"] == "This alert is already resolved."
    assert client.post(f"/api/v1/alerts/{b.alert_id}/resolve", headers=world.auth("caregiver"),
                       json={"outcome": "lost_in_space"}).status_code == 422
    with Session(world.engine) as s:
        audits = s.exec(select(AuditLog).where(AuditLog.user_id == world.users["caregiver"])).all()
    assert {x.entity for x in audits} >= {"alert_list", "alert", "patient"}
