"""Every API route × every role, from one table.

Add a row for every route you add: `test_table_covers_every_route` fails
otherwise. Paths name patients as {own} (cared for by `caregiver` and
`volunteer`) or {other} (cared for by `volunteer2` only).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from chumphae.models import AuditLog
from tests.conftest import World

ROLES = ("anonymous", "caregiver", "volunteer", "volunteer2", "care_manager", "hospital", "admin")


def expect(default: int, **by_role: int) -> dict[str, int]:
    table = {role: default for role in ROLES}
    table["anonymous"] = 401
    table.update(by_role)
    return table


@dataclass(frozen=True)
class Case:
    method: str
    route: str  # the route template as FastAPI knows it
    path: str  # with {own}, {other}, {user} filled from the world
    expected: dict[str, int]
    body: dict[str, Any] | None = None
    note: str = field(default="")


NEW_PATIENT = {"name_th": "ผู้ป่วยใหม่", "adl_score": 10}
PATCH = {"notes": "เยี่ยมบ้านแล้ว"}
SIGHTINGS = {"sightings": [{"t": "2025-01-15T21:40:05+07:00", "lat": 16.5451, "lon": 102.1023, "accuracy_m": 6,
                             "rssi": -78}]}

CASES = [
    Case("GET", "/healthz", "/healthz", {r: 200 for r in ROLES}),
    Case("GET", "/api/v1/me", "/api/v1/me", expect(200)),
    Case("GET", "/api/v1/patients", "/api/v1/patients", expect(200)),
    Case("GET", "/api/v1/patients/{patient_id}", "/api/v1/patients/{own}",
         expect(200, volunteer2=403)),
    Case("GET", "/api/v1/patients/{patient_id}", "/api/v1/patients/{other}",
         expect(200, caregiver=403, volunteer=403), note="another volunteer's patient"),
    Case("POST", "/api/v1/patients", "/api/v1/patients",
         expect(403, care_manager=201, admin=201), body=NEW_PATIENT),
    Case("PATCH", "/api/v1/patients/{patient_id}", "/api/v1/patients/{own}",
         expect(200, volunteer2=403), body=PATCH),
    Case("PATCH", "/api/v1/patients/{patient_id}", "/api/v1/patients/{other}",
         expect(200, caregiver=403, volunteer=403), body=PATCH),
    # Field-level rules (chumphae/api/routes/patients.py EDITABLE): only managers and admins take a patient off
    # the programme or rename them; a caregiver may write notes only.
    Case("PATCH", "/api/v1/patients/{patient_id}", "/api/v1/patients/{own}",
         expect(403, care_manager=200, admin=200), body={"active": False}, note="active: managers only"),
    Case("PATCH", "/api/v1/patients/{patient_id}", "/api/v1/patients/{own}",
         expect(403, care_manager=200, admin=200), body={"name_th": "ชื่อใหม่"}, note="name: managers only"),
    Case("PATCH", "/api/v1/patients/{patient_id}", "/api/v1/patients/{own}",
         expect(200, caregiver=403, volunteer2=403), body={"adl_score": 9}, note="ADL: not the caregiver"),
    Case("PATCH", "/api/v1/patients/{patient_id}", "/api/v1/patients/{own}",
         expect(422), body={"name_th": None}, note="null where the column is NOT NULL: 422 for everyone"),
    Case("POST", "/api/v1/patients/{patient_id}/erase", "/api/v1/patients/{other}/erase",
         expect(403, admin=200), note="PDPA erasure: admin only"),
    Case("GET", "/api/v1/users", "/api/v1/users", expect(403, care_manager=200, admin=200)),
    Case("POST", "/api/v1/users/{user_id}/revoke", "/api/v1/users/{user}/revoke", expect(403, admin=200)),
    Case("POST", "/api/v1/users/{user_id}/rotate", "/api/v1/users/{user}/rotate", expect(403, admin=200)),
    Case("GET", "/api/v1/gateways/{gateway_id}", "/api/v1/gateways/987654", expect(403, admin=404),
         note="no such gateway (tests/ingest/test_gateway_read_debt30.py reads a real one)"),
    Case("POST", "/api/v1/gateways/{gateway_id}/revoke", "/api/v1/gateways/987654/revoke", expect(403, admin=404),
         note="no such gateway (tests/security/test_revoke.py revokes real ones)"),
    Case("POST", "/api/v1/gateways/{gateway_id}/rotate", "/api/v1/gateways/987654/rotate", expect(403, admin=404),
         note="no such gateway"),
    Case("POST", "/api/v1/users", "/api/v1/users", expect(403, admin=201),
         body={"name": "อสม. ใหม่", "role": "volunteer"}),
    Case("POST", "/api/v1/users/{user_id}/patients", "/api/v1/users/{user}/patients",
         expect(403, care_manager=204, admin=204), body={"patient_id": "{other}"}),
    # Alerts: the per-patient role checks on real alerts are in tests/alert/test_routes.py.
    Case("GET", "/api/v1/alerts", "/api/v1/alerts", expect(200)),
    Case("GET", "/api/v1/alerts/{alert_id}", "/api/v1/alerts/987654", expect(404), note="no such alert"),
    Case("POST", "/api/v1/alerts/{alert_id}/acknowledge", "/api/v1/alerts/987654/acknowledge", expect(404),
         body={}, note="no such alert"),
    Case("POST", "/api/v1/alerts/{alert_id}/resolve", "/api/v1/alerts/987654/resolve", expect(404),
         body={"outcome": "false_alarm"}, note="no such alert"),
    Case("GET", "/api/v1/gateway/config", "/api/v1/gateway/config", expect(401),
         note="gateway tokens only (tests/ingest/test_siteconfig.py)"),
    # The volunteers' app (chumphae/api/routes/{mobile,visits,bands,zones,maplayers,search}.py); tests/mobile/.
    # The caregiver page reads its map and patients from these too; the page itself is tested in tests/web/.
    Case("GET", "/api/v1/mobile/patients", "/api/v1/mobile/patients", expect(200)),
    Case("GET", "/api/v1/patients/{patient_id}/status", "/api/v1/patients/{own}/status", expect(200, volunteer2=403)),
    Case("GET", "/api/v1/patients/{patient_id}/status", "/api/v1/patients/{other}/status",
         expect(200, caregiver=403, volunteer=403)),
    Case("GET", "/api/v1/patients/{patient_id}/positions", "/api/v1/patients/{own}/positions",
         expect(200, volunteer2=403)),
    Case("GET", "/api/v1/patients/{patient_id}/positions", "/api/v1/patients/{other}/positions",
         expect(200, caregiver=403, volunteer=403)),
    Case("GET", "/api/v1/patients/{patient_id}/visits", "/api/v1/patients/{own}/visits", expect(200, volunteer2=403)),
    Case("GET", "/api/v1/patients/{patient_id}/visits", "/api/v1/patients/{other}/visits",
         expect(200, caregiver=403, volunteer=403)),
    Case("POST", "/api/v1/patients/{patient_id}/visits", "/api/v1/patients/{own}/visits",
         expect(403, volunteer=201, care_manager=201, admin=201), body={"adl_score": 8, "notes": "เยี่ยมบ้าน"}),
    Case("POST", "/api/v1/patients/{patient_id}/visits", "/api/v1/patients/{other}/visits",
         expect(403, volunteer2=201, care_manager=201, admin=201), body={"notes": "เยี่ยมบ้าน"}),
    Case("GET", "/api/v1/patients/{patient_id}/bands", "/api/v1/patients/{own}/bands", expect(200, volunteer2=403)),
    Case("GET", "/api/v1/patients/{patient_id}/bands", "/api/v1/patients/{other}/bands",
         expect(200, caregiver=403, volunteer=403)),
    Case("PUT", "/api/v1/patients/{patient_id}/bands", "/api/v1/patients/{own}/bands",
         expect(403, volunteer=200, care_manager=200, admin=200), body={"address": "C0:CA:FE:00:AA:01"}),
    Case("PUT", "/api/v1/patients/{patient_id}/bands", "/api/v1/patients/{other}/bands",
         expect(403, volunteer2=200, care_manager=200, admin=200), body={"address": "C0:CA:FE:00:AA:02"}),
    Case("GET", "/api/v1/patients/{patient_id}/zone", "/api/v1/patients/{own}/zone", expect(200, volunteer2=403)),
    Case("GET", "/api/v1/patients/{patient_id}/zone", "/api/v1/patients/{other}/zone",
         expect(200, caregiver=403, volunteer=403)),
    Case("PUT", "/api/v1/patients/{patient_id}/zone", "/api/v1/patients/{own}/zone",
         expect(403, volunteer=422, care_manager=422, admin=422), body={"route_codes": []},
         note="no map in this world: 422 after the checks"),
    Case("PUT", "/api/v1/patients/{patient_id}/zone", "/api/v1/patients/{other}/zone",
         expect(403, volunteer2=422, care_manager=422, admin=422), body={"route_codes": []},
         note="no map in this world: 422 after the checks"),
    Case("GET", "/api/v1/map/{layer}", "/api/v1/map/parcels?lat=16.5442&lon=102.0997&radius_m=200", expect(200)),
    Case("POST", "/api/v1/patients/{patient_id}/search/sightings", "/api/v1/patients/{own}/search/sightings",
         expect(403, caregiver=409, volunteer=409, care_manager=409, admin=409), body=SIGHTINGS,
         note="no band in this world: 409 after the checks"),
    Case("POST", "/api/v1/patients/{patient_id}/search/sightings", "/api/v1/patients/{other}/search/sightings",
         expect(403, volunteer2=409, care_manager=409, admin=409), body=SIGHTINGS,
         note="no band in this world: 409 after the checks"),
    Case("GET", "/api/v1/reports/daily", "/api/v1/reports/daily?date=2025-01-15",
         expect(403, hospital=200, care_manager=200, admin=200), note="CID only for hospital (tests/report/)"),
    # The care manager's district overview (chumphae/api/routes/district.py); tests/web/test_district.py.
    Case("GET", "/api/v1/district/overview", "/api/v1/district/overview", expect(403, care_manager=200, admin=200)),
    # Delivery (chumphae/deliver, tests/deliver/): per-alert receipts; LINE's signed webhook (no bearer token).
    Case("GET", "/api/v1/alerts/{alert_id}/deliveries", "/api/v1/alerts/987654/deliveries", expect(404),
         note="no such alert (visibility on real alerts: tests/deliver/test_api.py)"),
    Case("POST", "/api/v1/line/webhook", "/api/v1/line/webhook", {r: 401 for r in ROLES}, body={"events": []},
         note="LINE signature only: a bearer token is no substitute"),
]

def fill(value: Any, world: World) -> Any:
    subs = {"{own}": world.own_patient, "{other}": world.other_patient, "{user}": world.users["volunteer2"]}
    if isinstance(value, str):
        if value in subs:
            return subs[value]
        for key, sub in subs.items():
            value = value.replace(key, str(sub))
        return value
    if isinstance(value, dict):
        return {k: fill(v, world) for k, v in value.items()}
    return value


def test_table_covers_every_route(client: TestClient) -> None:
    paths = client.app.openapi()["paths"]  # type: ignore[attr-defined]
    routes = {(method.upper(), path) for path, ops in paths.items() for method in ops}
    covered = {(c.method, c.route) for c in CASES}
    assert routes - covered == set(), "routes missing from the authorisation table"
    assert covered - routes == set(), "table rows for routes that do not exist"


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.method} {c.path} {c.note}".strip())
def test_route_by_role(case: Case, client: TestClient, world: World) -> None:
    for role in ROLES:
        response = client.request(case.method, fill(case.path, world), headers=world.auth(role),
                                  json=fill(case.body, world) if case.body is not None else None)
        assert response.status_code == case.expected[role], (role, response.text)
        if response.status_code >= 400:
            assert response.headers["content-type"].startswith("application/problem+json")


def test_refusal_is_audited_and_names_nobody(client: TestClient, world: World) -> None:
    r = client.get(f"/api/v1/patients/{world.other_patient}", headers=world.auth("volunteer"))
    assert r.status_code == 403
    assert r.json()["code"] == "patient_forbidden"
    assert "ผู้ป่วยสอง" not in r.text
    with Session(world.engine) as s:
        denied = s.exec(select(AuditLog).where(AuditLog.action == "denied")).all()
    assert [(a.user_id, a.patient_id) for a in denied] == [(world.users["volunteer"], world.other_patient)]


def test_reads_are_attributed(client: TestClient, world: World) -> None:
    client.get(f"/api/v1/patients/{world.own_patient}", headers=world.auth("caregiver"))
    with Session(world.engine) as s:
        reads = s.exec(select(AuditLog).where(AuditLog.action == "read", AuditLog.entity == "patient")).all()
    assert [(a.user_id, a.patient_id) for a in reads] == [(world.users["caregiver"], world.own_patient)]


def test_cid_only_for_roles_that_need_it(client: TestClient, world: World) -> None:
    for role, sees in [("caregiver", False), ("volunteer", False), ("care_manager", False),
                       ("hospital", True), ("admin", True)]:
        body = client.get(f"/api/v1/patients/{world.own_patient}", headers=world.auth(role)).json()
        assert (body["cid"] == "1409900000011") is sees, role


def test_volunteer_lists_only_their_patients(client: TestClient, world: World) -> None:
    ids = [p["id"] for p in client.get("/api/v1/patients", headers=world.auth("volunteer")).json()]
    assert ids == [world.own_patient]
    ids = [p["id"] for p in client.get("/api/v1/patients", headers=world.auth("care_manager")).json()]
    assert sorted(ids) == sorted([world.own_patient, world.other_patient])


def test_messages_in_thai_and_english(client: TestClient) -> None:
    th = client.get("/api/v1/me").json()
    en = client.get("/api/v1/me", headers={"Accept-Language": "en-US,en;q=0.9,th;q=0.5"}).json()
    assert th["title"] == "ต้องใช้โทเคนที่ถูกต้อง"
    assert en["title"] == "A valid token is required."
    assert th["status"] == en["status"] == 401
