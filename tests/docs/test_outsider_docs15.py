"""Statements of docs/ that docs15's outsider run (a feed client, a gateway, a hand-written recording replayed
with `chumphae-gateway --replay`, a webhook receiver, the daily summary, the README's commands, all written from
the documents against `scripts/demo`) found different from the code, and the two known defects of its task."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from websockets.asyncio.client import connect

from chumphae.models import Alert, Gateway, PositionRecord
from gateway.simulate import scenario as scenarios
from tests.conftest import World
from tests.feed.liveserver import LiveServer, recv_json
from tests.gateway.test_scenarios_fix17 import seeded_town_site
from tests.gateway.test_simulate import run_on
from tests.ingest.conftest import BAND, Site, server, site  # noqa: F401  (the fixtures)
from tests.ingest.test_gateway_socket import frame, position, url

ROOT = Path(__file__).resolve().parents[2]
PROTOCOL = " ".join((ROOT / "docs" / "gateway-protocol.md").read_text(encoding="utf-8").split())


async def test_a_place_named_by_a_landmark_gets_the_maps_codes(server: LiveServer, site: Site) -> None:  # noqa: F811
    """Known defect (i): a gateway that names a landmark (its own words, no parcel or building code) made the
    backend skip its map, so the alert's `last_seen.parcel_code` (and the position's) was null on a parcel. The
    backend now takes the codes from its map and keeps the gateway's words (gateway-protocol §3.4)."""
    from chumphae.map.layers import MapLayers
    from chumphae.map.match import Matcher
    from chumphae.map.store import DEFAULT_MAP, load_default_map

    with Session(site.world.engine) as s:
        load_default_map(s)
        s.commit()
    lat, lon = 16.5445, 102.1001  # on parcel 30U099 of the shipped map
    expected = Matcher(MapLayers.from_file(DEFAULT_MAP)).place(lon, lat)
    assert expected.parcel_code is not None
    landmark = {"parcel_code": None, "building_code": None, "landmark": "LM-wat",
                "description_th": "ที่วัด", "description_en": "at the temple"}
    now = datetime.now(UTC) - timedelta(seconds=5)
    pos = {**position(now, lat=lat), "lon": lon, "match": {"status": "inside", "zone_version": 1, "place": landmark}}
    alert = {"type": "sos", "address": BAND, "t": now.isoformat(), "lat": lat, "lon": lon, "uncertainty_m": 15.0,
             "match": {"status": "inside", "place": landmark}}
    async with connect(url(server), additional_headers=site.auth()) as ws:
        await recv_json(ws)
        for kind, body in (("position", pos), ("alert", alert)):
            mid, text = frame(kind, body)
            await ws.send(text)
            assert mid in (await recv_json(ws))["ids"]
    with Session(site.world.engine) as s:
        stored = s.exec(select(Alert)).one()
        row = s.exec(select(PositionRecord)).one()
    assert (stored.parcel_code, stored.building_code) == (expected.parcel_code, expected.building_code)
    assert (stored.description_en, stored.description_th) == ("at the temple", "ที่วัด")  # the gateway's words
    assert (row.parcel_code, row.building_code) == (expected.parcel_code, expected.building_code)
    assert "names no parcel or building code (a landmark only) gets the codes from the backend's map" in PROTOCOL


@pytest.mark.parametrize("start", ["23:00+07:00", "10:00+07:00"])
def test_the_fall_scenario_raises_only_what_its_header_promises(start: str, client: TestClient,
                                                                 app_engine: Engine, tmp_path: Path) -> None:
    """Known defect (ii): `chumphae-gateway --simulate fall` on the seeded town site after 20:00 Bangkok also
    raised a wander for patient 1, whose back-and-forth walk along the site's route left the night zone. A
    walk taken from the site's routes now stays inside the zone in force when the scenario starts."""
    scen = replace(scenarios.load("fall"), start=scenarios.parse_start(start))
    _, alerts = run_on(scen, seeded_town_site(client, app_engine), tmp_path / "fall.db")
    assert sorted(a["type"] for a in alerts) == sorted(scen.promises), alerts


def test_the_daily_summary_says_a_gateways_offline_alert_is_in_no_row(client: TestClient, world: World) -> None:
    """The outsider's hospital client summed `alerts_gateway_offline` of the day's JSON: 0, on a day the demo's
    backend had raised two `gateway_offline` alerts (for the outsider's own replay gateway). They have no patient,
    so the per-patient rows (and the totals, their sums) leave them out; the column counted only one a gateway
    had filed under a patient. daily-summary.md now says so and where the day's outages are."""
    from chumphae.alert.escalate import raise_offline
    from chumphae.timeutil import to_bangkok, utcnow

    now = utcnow()
    with Session(world.engine) as s:
        s.add(Gateway(slug="gw-quiet", name="quiet", site="ban-x", token_hash="h" * 64, token_prefix="chg_x",
                      last_heartbeat_at=now - timedelta(seconds=200)))
        s.commit()
        assert len(raise_offline(s, now=now, after_s=90)) == 1
        s.commit()
    day = to_bangkok(now).date().isoformat()
    r = client.get(f"/api/v1/reports/daily?date={day}&format=json", headers=world.auth("hospital"))
    assert r.status_code == 200, r.text
    assert r.json()["totals"]["alerts_gateway_offline"] == 0
    r = client.get("/api/v1/alerts?type=gateway_offline", headers=world.auth("care_manager"))
    assert r.status_code == 200 and r.json()["total"] == 1
    daily = " ".join((ROOT / "docs" / "daily-summary.md").read_text(encoding="utf-8").split())
    assert "belongs to no patient (`patient_id` `null`, docs/feed-protocol.md §3), so it is in no row and not in" \
           " the totals" in daily
    assert "`GET /api/v1/alerts?type=gateway_offline&since=…&until=…`" in daily


async def test_a_json_true_is_no_id_nor_cursor_on_the_feed(server: LiveServer, site: Site) -> None:  # noqa: F811
    """feed-protocol §6: `alert_id` an integer 1 … 2³¹−1, an `auth` cursor an integer 0 … 2⁶³−1 (else 4001). The
    outsider's feed client sent `"alert_id": true`: the backend read it as alert 1 and answered for that alert; an
    `auth` message with `"cursor": true` replayed from cursor 1, and `"cursor": "12"` from 12."""
    world = site.world
    token = world.tokens["care_manager"]
    async with connect(f"{server.ws}/ws/alerts", additional_headers=world.auth("care_manager")) as ws:
        assert (await recv_json(ws))["type"] == "welcome"
        assert (await recv_json(ws))["type"] == "snapshot"
        for bad in (True, "1", 1.0):
            await ws.send(json.dumps({"type": "ack", "req": "a", "alert_id": bad}))
            f = await recv_json(ws)
            while f["type"] not in ("result", "error"):
                f = await recv_json(ws)
            assert (f["type"], f.get("code")) == ("error", "feed_bad_message"), (bad, f)
    for bad in (True, "12", 12.0):
        async with connect(f"{server.ws}/ws/alerts") as ws:
            await ws.send(json.dumps({"type": "auth", "token": token, "cursor": bad}))
            f = await recv_json(ws)
            assert (f["type"], f.get("code")) == ("error", "unauthorized"), (bad, f)


def test_a_json_true_is_no_id_nor_score_in_a_rest_body(client: TestClient, world: World) -> None:
    """mobile-api: ids are integers 1 … 2³¹−1, `adl_score` 0–20. `{"patient_id": true}` assigned patient 1 to the
    outsider's volunteer (204), and `{"adl_score": true}` registered a patient with ADL 1 (bedbound)."""
    admin = world.auth("admin")
    r = client.post(f"/api/v1/users/{world.users['volunteer2']}/patients", headers=admin,
                    json={"patient_id": True, "relation": "volunteer"})
    assert r.status_code == 422, r.text
    for field, value in (("adl_score", True), ("nhso_group", True), ("adl_score", "9")):
        r = client.post("/api/v1/patients", headers=admin, json={"name_th": "ทดสอบ", field: value})
        assert r.status_code == 422, (field, value, r.text)
    r = client.post(f"/api/v1/patients/{world.own_patient}/visits", headers=world.auth("volunteer"),
                    json={"adl_score": False})
    assert r.status_code == 422, r.text
    r = client.post("/api/v1/patients", headers=admin, json={"name_th": "ทดสอบ", "adl_score": 9, "nhso_group": 2})
    assert r.status_code == 201 and r.json()["adl_score"] == 9


def test_the_documents_say_integers_are_json_integers() -> None:
    feed = " ".join((ROOT / "docs" / "feed-protocol.md").read_text(encoding="utf-8").split())
    mobile = " ".join((ROOT / "docs" / "mobile-api.md").read_text(encoding="utf-8").split())
    assert "(a JSON integer: `true`, `\"42\"` or `42.0` is `feed_bad_message`, as an `auth` cursor that is one of" \
           " those is `4001`)" in feed
    assert "ids, `adl_score` and `nhso_group` are JSON integers: `true`, `\"9\"` or `9.0` is a 422 `validation`" \
           " problem" in mobile


async def test_a_gateway_frame_takes_json_types_only(server: LiveServer, site: Site) -> None:  # noqa: F811
    """gateway-protocol §3.5 gives `patient_id` as an integer 1 … 2³¹−1 and the flags as booleans. The outsider's
    gateway sent `"patient_id": true` in an alert without a band: acknowledged and filed under patient 1; and
    `"lat": "16.5"`, `"sos": 1`, `"receivers": true` were acknowledged too (the fast path refused them, the
    models behind it coerced them)."""
    now = datetime.now(UTC) - timedelta(seconds=5)
    good = {**position(now), "match": None}
    cases = {
        "alert": {"type": "band_silent", "t": now.isoformat(), "patient_id": True},
        "lat": {**good, "lat": "16.5443"},
        "receivers": {**good, "receivers": True},
        "sos": {"address": BAND, "t": now.isoformat(), "sos": 1},
        "zone_version": {**good, "match": {"status": "inside", "zone_version": True}},
    }
    kinds = {"alert": "alert", "sos": "reading"}
    async with connect(url(server), additional_headers=site.auth()) as ws:
        await recv_json(ws)
        sent = {}
        for name, body in cases.items():
            mid, text = frame(kinds.get(name, "position"), body)
            sent[mid] = name
            await ws.send(text)
        mid, text = frame("position", {**good, "lat": 16, "lon": 102})  # integers where floats go: fine
        await ws.send(text)
        answers: dict[str, str] = {}
        while len(answers) < len(sent) + 1:
            f = await recv_json(ws)
            if f["type"] == "ack":
                answers.update({i: "ack" for i in f["ids"]})
            elif f["type"] == "error":
                answers[f["id"]] = f["code"]
    assert answers.pop(mid) == "ack"
    assert {sent[i]: code for i, code in answers.items()} == dict.fromkeys(cases, "bad_body")
    with Session(site.world.engine) as s:
        assert s.exec(select(Alert)).first() is None
    assert "`\"patient_id\": true`, `\"lat\": \"16.5\"` or `\"sos\": 1` is `bad_body`" in PROTOCOL


def test_a_patients_home_and_active_take_json_types_only(client: TestClient, world: World) -> None:
    """A `PATCH` with `"home_lat": true` moved the outsider's patient's home to latitude 1 (200), and
    `"active": 1` or `"active": "true"` were taken as true; the document's types (numbers, a boolean) now hold."""
    url = f"/api/v1/patients/{world.own_patient}"
    admin = world.auth("admin")
    for body in ({"home_lat": True, "home_lon": 102.1}, {"home_lat": "16.5", "home_lon": 102.1}, {"active": 1},
                 {"active": "true"}):
        r = client.patch(url, headers=admin, json=body)
        assert r.status_code == 422, (body, r.text)
    r = client.patch(url, headers=admin, json={"home_lat": 16, "home_lon": 102.1, "active": True})
    assert r.status_code == 200 and r.json()["home_lat"] == 16.0, r.text
    r = client.post("/api/v1/patients", headers=admin, json={"name_th": "ทดสอบ", "home_lat": True, "home_lon": 102.1})
    assert r.status_code == 422, r.text
    mobile = " ".join((ROOT / "docs" / "mobile-api.md").read_text(encoding="utf-8").split())
    assert "as is a `home_lat` / `home_lon` that is not a JSON number or an `active` that is not `true` / `false`" \
           in mobile
