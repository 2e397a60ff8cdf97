"""The fields docs15 left lax (issue 13): where mobile-api.md or feed-protocol.md gives a number, an integer or a
time as text, another JSON type is refused (422 `validation`, `feed_bad_message`), not coerced. A float field
still takes a JSON integer (a `margin_m` of 30 is 30 m)."""

from __future__ import annotations

import json
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from websockets.asyncio.client import connect

from chumphae.timeutil import BANGKOK, utcnow
from tests.conftest import World
from tests.feed.liveserver import LiveServer, recv_json
from tests.ingest.conftest import Site, server, site  # noqa: F401  (the fixtures)
from tests.mobile.conftest import lonlat, mapped  # noqa: F401  (the fixture)

ROOT = Path(__file__).resolve().parents[2]


def _doc(name: str) -> str:
    return " ".join((ROOT / "docs" / name).read_text(encoding="utf-8").split())


@pytest.mark.parametrize("body", [
    {"margin_m": True}, {"margin_m": "30"}, {"tolerance_m": True}, {"tolerance_m": "20"},
    {"place_radius_m": False}, {"place_radius_m": "50"},
    {"night": {"start": 72000, "end": "06:00"}}, {"night": {"start": "20:00", "end": 21600.0}},
])
def test_a_zone_takes_numbers_and_clock_text_only(body: dict[str, Any], client: TestClient,
                                                  mapped: World) -> None:  # noqa: F811
    """`PUT …/zone` with `"margin_m": true` saved a zone with a 1 m margin (200), `"margin_m": "30"` one of 30 m,
    and a night `start` of 72000 (seconds) a night rule from 20:00: the document gives metres as numbers and
    the night's hours as text (`"20:00"`)."""
    r = client.put(f"/api/v1/patients/{mapped.own_patient}/zone", json=body, headers=mapped.auth("volunteer"))
    assert r.status_code == 422 and r.json()["code"] == "validation", (body, r.text)


def test_a_zone_still_takes_integer_metres(client: TestClient, mapped: World) -> None:  # noqa: F811
    body = {"margin_m": 30, "tolerance_m": 25, "place_radius_m": 60, "night": {"start": "20:00", "end": "06:00"}}
    r = client.put(f"/api/v1/patients/{mapped.own_patient}/zone", json=body, headers=mapped.auth("volunteer"))
    assert r.status_code == 200, r.text
    spec = r.json()["spec"]
    assert (spec["margin_m"], spec["tolerance_m"], spec["place_radius_m"]) == (30.0, 25.0, 60.0)


def _sighting(**change: Any) -> dict[str, Any]:
    day = datetime.combine((utcnow().astimezone(BANGKOK) - timedelta(days=1)).date(), time(10), tzinfo=BANGKOK)
    lon, lat = lonlat(20, 20)
    return {"t": day.isoformat(), "lat": lat, "lon": lon, "accuracy_m": 5, "rssi": -70, **change}


@pytest.mark.parametrize("change", [
    {"lat": True}, {"lat": "16.5"}, {"lon": "102.1"}, {"accuracy_m": True}, {"accuracy_m": "5"},
    {"rssi": True}, {"rssi": "-70"}, {"rssi": -70.0}, {"tx_power": False}, {"tx_power": "-59"},
    {"tx_power": -59.0},
])
def test_a_sighting_takes_json_numbers_only(change: dict[str, Any], client: TestClient,
                                            mapped: World) -> None:  # noqa: F811
    """Search mode: `"rssi": "-70"` and `"rssi": -70.0` were taken as −70 dBm, `"accuracy_m": true` as 1 m,
    `"lat": "16.5"` as a latitude (201; `"rssi": true`, read as 1 dBm, only fell outside −120 … 0). The
    document gives `rssi` and `tx_power` as integers (dBm) and the others as numbers."""
    url = f"/api/v1/patients/{mapped.own_patient}/search/sightings"
    r = client.post(url, json={"sightings": [_sighting(**change)]}, headers=mapped.auth("caregiver"))
    assert r.status_code == 422 and r.json()["code"] == "validation", (change, r.text)


def test_a_sighting_still_takes_integer_coordinates(client: TestClient, mapped: World) -> None:  # noqa: F811
    url = f"/api/v1/patients/{mapped.own_patient}/search/sightings"
    r = client.post(url, json={"sightings": [_sighting(accuracy_m=6, tx_power=-59)]},
                    headers=mapped.auth("caregiver"))
    assert r.status_code == 201 and len(r.json()["positions"]) == 1, r.text


@pytest.mark.parametrize("birth_date", [0, -880243200, 1.5])
def test_a_birth_date_is_date_text(birth_date: Any, client: TestClient, world: World) -> None:
    """`POST /api/v1/patients` with `"birth_date": 0` registered a patient born on 1970-01-01 (seconds since
    1970); the document gives a date (`"1941-03-09"`)."""
    r = client.post("/api/v1/patients", headers=world.auth("admin"),
                    json={"name_th": "ทดสอบ", "birth_date": birth_date})
    assert r.status_code == 422 and r.json()["code"] == "validation", r.text
    r = client.post("/api/v1/patients", headers=world.auth("admin"),
                    json={"name_th": "ทดสอบ", "birth_date": "1941-03-09"})
    assert r.status_code == 201 and r.json()["birth_date"] == "1941-03-09", r.text


async def test_the_feeds_req_is_a_string_or_a_json_integer(server: LiveServer, site: Site) -> None:  # noqa: F811
    """feed-protocol §6: `req` a string of at most 64 characters or an integer. `{"type": "ping", "req": true}`
    came back as a `pong` with `"req": 1`, and `"req": 7.0` as `7`: now `feed_bad_message` (its `req` null, as
    for any `req` the server would not take)."""
    world = site.world
    async with connect(f"{server.ws}/ws/alerts", additional_headers=world.auth("care_manager")) as ws:
        assert (await recv_json(ws))["type"] == "welcome"
        assert (await recv_json(ws))["type"] == "snapshot"
        for req, want in ((True, ("error", None)), (7.0, ("error", None)), (False, ("error", None)),
                          (7, ("pong", 7)), ("p1", ("pong", "p1"))):
            await ws.send(json.dumps({"type": "ping", "req": req}))
            f = await recv_json(ws)
            while f["type"] not in ("pong", "error"):
                f = await recv_json(ws)
            assert (f["type"], f["req"]) == want, (req, f)
            if f["type"] == "error":
                assert f["code"] == "feed_bad_message"


def test_the_documents_say_which_json_types() -> None:
    mobile, feed = _doc("mobile-api.md"), _doc("feed-protocol.md")
    assert "`margin_m`, `tolerance_m` and `place_radius_m` are JSON numbers (`30` is fine; `true` or `\"30\"` is" \
           " a 422 `validation` problem), the night's `start` and `end` text" in mobile
    assert "`lat`, `lon` and `accuracy_m` are JSON numbers, `rssi` and `tx_power` JSON integers" in mobile
    assert "a `birth_date` is date text (`\"1941-03-09\"`, not a number)" in mobile
    assert "`req` a string of at most 64 characters or a JSON integer (`true` or `7.0` is `feed_bad_message`" \
           in feed
