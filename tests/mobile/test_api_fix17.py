"""fix17 (issue 13): a time a person gives without an offset is Asia/Bangkok time (query filters, a visit's `t`);
a machine's (a sighting's `t`) is still refused; the district overview's `volunteer` is bounded as every id."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from chumphae.models import Alert
from tests.conftest import World

ROOT = Path(__file__).resolve().parents[2]
MOBILE = " ".join((ROOT / "docs" / "mobile-api.md").read_text(encoding="utf-8").split())


def test_a_visit_time_without_an_offset_is_bangkok_time(client: TestClient, world: World) -> None:
    url = f"/api/v1/patients/{world.own_patient}/visits"
    h = world.auth("volunteer")
    r = client.post(url, headers=h, json={"t": "2025-01-15T10:30:00", "adl_score": 9})
    assert r.status_code == 201, r.text  # had been 422 "t needs a UTC offset"
    assert r.json()["t"] == "2025-01-15T03:30:00+00:00" and r.json()["t_local"] == "2025-01-15T10:30:00+07:00"
    r = client.post(url, headers=h, json={"t": "2025-01-15T12:00:00Z"})
    assert r.json()["t_local"] == "2025-01-15T19:00:00+07:00"  # an offset given is kept


def test_since_and_until_without_an_offset_are_bangkok_time(client: TestClient, world: World) -> None:
    url = f"/api/v1/patients/{world.own_patient}/visits"
    h = world.auth("volunteer")
    assert client.post(url, headers=h, json={"t": "2025-01-15T10:30:00+07:00"}).status_code == 201  # 03:30 UTC

    def total(query: str) -> int:
        r = client.get(f"{url}?{query}", headers=h)
        assert r.status_code == 200, r.text
        return int(r.json()["total"])

    assert total("since=2025-01-15T10:29:00") == 1  # 10:29 in Chumphae (as UTC it was 17:29: after the visit)
    assert total("since=2025-01-15T10:31:00") == 0
    assert total("until=2025-01-15T10:31:00") == 1
    assert total("until=2025-01-15T10:29:00") == 0  # as UTC (17:29) the visit had been before it
    assert total("since=2025-01-15T03:29:00Z") == 1 and total("since=2025-01-15T03:31:00%2B00:00") == 0


def test_the_alert_list_reads_a_naive_filter_as_bangkok_time(client: TestClient, world: World) -> None:
    opened = datetime(2025, 1, 15, 3, 30, tzinfo=UTC)  # 10:30 in Chumphae
    with Session(world.engine) as s:
        s.add(Alert(patient_id=world.own_patient, type="sos", severity="critical", opened_at=opened,
                    last_triggered_at=opened))
        s.commit()
    h = world.auth("caregiver")

    def total(query: str) -> int:
        r = client.get(f"/api/v1/alerts?status=open&{query}", headers=h)
        assert r.status_code == 200, r.text
        return int(r.json()["total"])

    assert (total("since=2025-01-15T10:00:00"), total("since=2025-01-15T11:00:00")) == (1, 0)
    assert (total("until=2025-01-15T11:00:00"), total("until=2025-01-15T10:00:00")) == (1, 0)


def test_a_sighting_time_without_an_offset_is_still_refused(client: TestClient, world: World) -> None:
    from tests.factories import make_band

    with Session(world.engine) as s:
        make_band(s, patient_id=world.own_patient)
        s.commit()
    r = client.post(f"/api/v1/patients/{world.own_patient}/search/sightings", headers=world.auth("volunteer"), json={
        "sightings": [{"t": "2025-01-15T21:40:05", "lat": 16.5, "lon": 102.1, "accuracy_m": 5, "rssi": -70}]})
    assert (r.status_code, r.json()["code"]) == (422, "validation"), r.text
    assert r.json()["errors"][0]["loc"] == ["body", "sightings"]


def test_the_documents_and_openapi_say_naive_is_bangkok(client: TestClient) -> None:
    assert "A time without an offset is read as **Asia/Bangkok** time" in MOBILE
    assert "naive = UTC" not in client.get("/openapi.json").text
    spec = client.get("/openapi.json").json()
    for path in ("/api/v1/alerts", "/api/v1/patients/{patient_id}/visits", "/api/v1/patients/{patient_id}/positions"):
        params = {p["name"]: p for p in spec["paths"][path]["get"]["parameters"]}
        for name in ("since", "until"):
            assert "without an offset, Asia/Bangkok time" in params[name]["description"], (path, name)
    visit = spec["components"]["schemas"]["VisitIn"]["properties"]["t"]
    assert "without an offset, Asia/Bangkok time" in visit["description"]
    assert "without one (`since`, `until`, a visit's `t`) is read as Asia/Bangkok" in " ".join(
        spec["info"]["description"].split())


@pytest.mark.parametrize("value", ["0", "-1", "2147483648", "9223372036854775808", "99999999999999999999999",
                                   "abc", "1.5", "true"])
def test_the_overview_volunteer_is_bounded_as_every_id(value: str, client: TestClient, world: World) -> None:
    h = world.auth("care_manager")
    r = client.get(f"/api/v1/district/overview?volunteer={value}", headers=h)
    assert (r.status_code, r.json()["code"]) == (422, "validation"), r.text
    assert r.json()["errors"][0]["loc"] == ["query", "volunteer"]
    other = client.get(f"/api/v1/alerts?patient_id={value}", headers=h)  # the same as the other ids
    assert other.status_code == 422, other.text


def test_the_overview_volunteer_filter_still_filters(client: TestClient, world: World) -> None:
    h = world.auth("care_manager")
    vol = world.users["volunteer"]
    body = client.get(f"/api/v1/district/overview?volunteer={vol}", headers=h).json()
    assert [p["id"] for p in body["patients"]] == [world.own_patient]
    assert client.get("/api/v1/district/overview?volunteer=2147483647", headers=h).json()["total"] == 0
    assert "is outside 1 … 2³¹−1, such as `volunteer=0` or `volunteer=-1`" in MOBILE
