"""Bad input is refused with a problem (4xx), never a 500: the cases that used to answer 5xx, one by one.

Also: every API response carries the security headers, OpenAPI documents the
problem statuses, a write is committed before its 2xx goes out, and a
non-finite number stored by accident never breaks a JSON answer.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import Session, func, select

from chumphae.db import set_engine, upgrade
from chumphae.models import Patient, PositionRecord
from chumphae.report.daily import daily_summary
from chumphae.report.writers import render
from tests.conftest import World, build_world

BIG = 2**63
PROBLEM = "application/problem+json"


def refused(response: object, status: int = 422) -> None:
    r = response
    assert r.status_code == status, (r.status_code, r.text)  # type: ignore[attr-defined]
    assert r.headers["content-type"].startswith(PROBLEM)  # type: ignore[attr-defined]


@pytest.mark.parametrize("body", [{"active": None}, {"name_th": None}, {"name_th": ""}, {"notes": "x" * 50_000},
                                  {"name_th": "a\x00b"}, {"name_en": "x" * 201}, {"home_lat": 91},
                                  {"cid": "1409900000011"}, {"adl_score": BIG}])
def test_patch_refuses_what_the_columns_cannot_hold(client: TestClient, world: World, body: dict[str, object]) -> None:
    refused(client.patch(f"/api/v1/patients/{world.own_patient}", json=body, headers=world.auth("admin")))


def test_non_finite_numbers_in_a_body_are_refused(client: TestClient, world: World) -> None:
    for raw in ('{"home_lat": 1e999}', '{"home_lat": NaN}', '{"home_lon": -Infinity}'):
        refused(client.patch(f"/api/v1/patients/{world.own_patient}", content=raw,
                             headers={**world.auth("admin"), "content-type": "application/json"}))


def test_patch_null_zone_field_is_refused_not_500(client: TestClient, world: World) -> None:
    r = client.put(f"/api/v1/patients/{world.own_patient}/zone", json={"tolerance_m": None},
                   headers=world.auth("admin"))
    assert r.status_code < 500, r.text


@pytest.mark.parametrize("path", [
    f"/api/v1/patients/{BIG}", f"/api/v1/patients/{2**31}", f"/api/v1/alerts/{2**31}",
    f"/api/v1/patients/{2**70}/status", f"/api/v1/alerts/{BIG}",
    f"/api/v1/patients?offset={BIG}", f"/api/v1/alerts?offset={2**70}", f"/api/v1/alerts?patient_id={BIG}",
    f"/api/v1/mobile/patients?offset={BIG}", "/api/v1/patients/0", "/api/v1/patients/-1"])
def test_ids_and_offsets_that_do_not_fit_are_refused(client: TestClient, world: World, path: str) -> None:
    refused(client.get(path, headers=world.auth("admin")))


@pytest.mark.parametrize("query", ["since=0001-01-01T00:00:00%2B01:00", "until=9999-12-31T23:59:59-01:00",
                                   "until=0.5", "since=12345", "since=1900-01-01T00:00:00%2B14:00"])
def test_times_outside_the_window_or_not_iso_are_refused(client: TestClient, world: World, query: str) -> None:
    refused(client.get(f"/api/v1/alerts?{query}", headers=world.auth("admin")))
    refused(client.get(f"/api/v1/patients/{world.own_patient}/positions?{query}", headers=world.auth("admin")))
    refused(client.get(f"/api/v1/patients/{world.own_patient}/visits?{query}", headers=world.auth("admin")))


def test_edge_of_calendar_in_bodies_and_report_dates(client: TestClient, world: World) -> None:
    refused(client.post(f"/api/v1/patients/{world.own_patient}/visits", json={"t": "0001-01-01T00:00:00+01:00"},
                        headers=world.auth("admin")))
    refused(client.get("/api/v1/reports/daily?date=0001-01-01", headers=world.auth("admin")))
    refused(client.get("/api/v1/reports/daily?date=9999-12-31", headers=world.auth("admin")))
    ok = client.get("/api/v1/alerts?since=2025-01-01T00:00:00%2B07:00", headers=world.auth("admin"))
    assert ok.status_code == 200


@pytest.mark.parametrize("query", ["lat=-90&lon=-180", "lat=90&lon=180", "lat=0&lon=180&radius_m=3000",
                                   "bbox=-180,-90,180,90"])
def test_map_at_the_poles_and_antimeridian(client: TestClient, world: World, query: str) -> None:
    r = client.get(f"/api/v1/map/landmarks?{query}", headers=world.auth("caregiver"))
    assert r.status_code == 200, r.text


def test_asset_names_with_nul_are_404(client: TestClient) -> None:
    assert client.get("/assets/%00").status_code == 404
    assert client.get("/assets/a%00b.js").status_code == 404
    assert client.get("/assets/" + "x" * 5000).status_code == 404


@pytest.mark.parametrize("body", [{"name_th": "ผู้ป่วย", "hn": "1234567890123456789"},
                                  {"name_th": "ผู้ป่วย", "hn": "12\x0734"},
                                  {"name_th": "ผู้\x00ป่วย"}, {"name_th": "ผู้ป่วย", "village": "x\ny"},
                                  {"name_th": "ผู้ป่วย", "hospcode": "107070"},
                                  {"name_th": "ผู้ป่วย", "birth_date": "0001-01-01"}])
def test_create_refuses_what_postgresql_would_fail_on(client: TestClient, world: World,
                                                      body: dict[str, object]) -> None:
    refused(client.post("/api/v1/patients", json=body, headers=world.auth("admin")))


def test_every_api_response_carries_the_security_headers(client: TestClient, world: World) -> None:
    for path, who in [("/api/v1/me", "caregiver"), (f"/api/v1/patients/{world.own_patient}", "caregiver"),
                      ("/api/v1/patients/999", "caregiver"), ("/api/v1/me", "nobody"), ("/healthz", "nobody")]:
        r = client.get(path, headers=world.auth(who))
        assert r.headers["cache-control"] == "no-store", path
        assert r.headers["x-content-type-options"] == "nosniff", path
        assert r.headers["referrer-policy"] == "no-referrer", path


def test_openapi_documents_problem_statuses(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    op = doc["paths"]["/api/v1/patients/{patient_id}"]["patch"]
    for status in ("401", "403", "404", "422", "429", "500", "503"):
        assert PROBLEM in op["responses"][status]["content"], status
    assert doc["components"]["schemas"]["Problem"]["required"] == ["type", "title", "status", "code"]


def test_a_write_is_committed_before_its_answer(client: TestClient, world: World) -> None:
    """A commit that fails turns into the error answer; nothing is claimed that was not stored."""
    with Session(world.engine) as s:
        before = s.exec(select(func.count()).select_from(Patient)).one()

    def fail(_conn: object) -> None:
        raise RuntimeError("disk gone")

    event.listen(world.engine, "commit", fail)
    try:
        r = client.post("/api/v1/patients", json={"name_th": "ใหม่"}, headers=world.auth("admin"))
    finally:
        event.remove(world.engine, "commit", fail)
    assert r.status_code == 503 and r.headers["content-type"].startswith(PROBLEM)
    with Session(world.engine) as s:
        assert s.exec(select(func.count()).select_from(Patient)).one() == before
    for _ in range(20):  # and what is answered 201 is readable at once
        made = client.post("/api/v1/patients", json={"name_th": "ใหม่"}, headers=world.auth("admin"))
        assert made.status_code == 201
        got = client.get(f"/api/v1/patients/{made.json()['id']}", headers=world.auth("admin"))
        assert got.status_code == 200


def test_a_non_finite_number_in_the_database_still_answers_json(client: TestClient, world: World) -> None:
    from chumphae.timeutil import utcnow

    with Session(world.engine) as s:
        s.add(PositionRecord(patient_id=world.own_patient, t=utcnow(), lat=16.5, lon=102.1,
                             uncertainty_m=float("inf")))
        s.commit()
    r = client.get(f"/api/v1/patients/{world.own_patient}/positions", headers=world.auth("caregiver"))
    assert r.status_code == 200
    assert r.json()["items"][0]["uncertainty_m"] is None


def test_xlsx_export_survives_control_characters_in_hn(world: World) -> None:
    with Session(world.engine) as s:
        patient = s.get(Patient, world.own_patient)
        assert patient is not None
        patient.hn, patient.name_th = "HN\x0712", "ชื่อ\x1bแปลก"  # as an old import could have stored
        s.add(patient)
        s.commit()
        summary = daily_summary(s, day=date(2025, 1, 15), hospcode="10707", with_cid=True)
    data = render(summary, "xlsx")
    assert data[:2] == b"PK"


@pytest.fixture
def pg_client(pg_schema_engine: Engine) -> Iterator[tuple[TestClient, World]]:
    from chumphae.api.app import create_app

    upgrade(pg_schema_engine)
    set_engine(pg_schema_engine)
    world = build_world(pg_schema_engine)
    with TestClient(create_app(manage_engine=False)) as c:
        yield c, world


@pytest.mark.postgres
def test_postgresql_refusals_are_4xx(pg_client: tuple[TestClient, World]) -> None:
    client, world = pg_client
    admin = world.auth("admin")
    refused(client.post("/api/v1/patients", json={"name_th": "ผู้ป่วย", "hn": "1234567890123456789"}, headers=admin))
    refused(client.post("/api/v1/patients", json={"name_th": "ผู้\x00ป่วย"}, headers=admin))
    refused(client.patch(f"/api/v1/patients/{world.own_patient}", json={"notes": "a\x00"}, headers=admin))
    refused(client.get(f"/api/v1/patients/{BIG}", headers=admin))
    refused(client.get(f"/api/v1/patients/{2**31}/bands", headers=admin))  # INTEGER keys are 32-bit here
    refused(client.post(f"/api/v1/alerts/{2**31}/acknowledge", headers=admin))
    refused(client.get("/api/v1/alerts?since=0001-01-01T00:00:00%2B01:00", headers=admin))
    assert client.get("/api/v1/map/landmarks?lat=-90&lon=-180", headers=admin).status_code == 200
