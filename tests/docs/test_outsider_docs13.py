"""Statements of docs/ that docs13's outsider run (a volunteer's app day, a feed client, a gateway and a
hand-written recording, the hospital's files, all written from the documents against a fresh `chumphae demo`)
found missing or different from the code."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi.testclient import TestClient
from sqlmodel import Session, select
from websockets.asyncio.client import connect

from chumphae.models import Alert, PositionRecord, Wristband
from tests.conftest import World
from tests.feed.liveserver import LiveServer, recv_json
from tests.ingest.conftest import BAND, Site, server, site  # noqa: F401  (the fixtures)
from tests.ingest.test_gateway_socket import frame, position, url
from tests.mobile.conftest import lonlat

ROOT = Path(__file__).resolve().parents[2]
MOBILE = " ".join((ROOT / "docs" / "mobile-api.md").read_text(encoding="utf-8").split())


def _visit_at_1030_bangkok(client: TestClient, world: World) -> None:
    r = client.post(f"/api/v1/patients/{world.own_patient}/visits", headers=world.auth("volunteer"),
                    json={"t": "2025-01-15T10:30:00+07:00", "adl_score": 9})
    assert r.status_code == 201, r.text


def test_a_filter_time_without_an_offset_is_bangkok_and_a_bare_plus_is_read_back(client: TestClient,
                                                                                  world: World) -> None:
    """The outsider wrote `since=2025-01-15T10:30:00+07:00` into a URL as the document prints times: 422 (the `+`
    arrives as a space; now read back as `+` in a query); without the offset the filter was read as UTC and answered
    nothing in the afternoon (now Asia/Bangkok time: fix17)."""
    _visit_at_1030_bangkok(client, world)  # 03:30 UTC
    url = f"/api/v1/patients/{world.own_patient}/visits"
    h = world.auth("volunteer")

    def count(since: str) -> int | None:
        r = client.get(f"{url}?since={since}", headers=h)
        return r.json()["total"] if r.status_code == 200 else None

    assert count("2025-01-15T10:00:00%2B07:00") == 1  # 03:00 UTC: the visit is after it
    assert count("2025-01-15T03:00:00Z") == 1
    assert count("2025-01-15T10:00:00") == 1  # naive: 10:00 in Chumphae (fix17; it had been 10:00 UTC, 17:00 there)
    assert count("2025-01-15T10:31:00") == 0  # naive: 10:31 in Chumphae, after the visit
    # a bare `+` arrives as a space; only a `+` can have become that space, so it is read back as one
    assert count("2025-01-15T10:00:00+07:00") == 1
    assert count("2025-01-15T11:00:00+07:00") == 0  # 04:00 UTC: after the visit, so the offset was applied
    assert count("2025-01-15T10:00 0700") == 1
    r = client.get(f"{url}?since=2025-01-15T10:00:00%20%2007:00", headers=h)  # two spaces: not a lost `+`
    assert r.status_code == 422 and r.json()["code"] == "validation"
    visit = {"t": "2025-01-15T10:30:00 07:00", "adl_score": 9}  # in a body a space is not repaired
    r = client.post(url, headers=h, json=visit)
    assert r.status_code == 422 and r.json()["code"] == "validation"
    assert "write the `+` as `%2B`" in MOBILE and "reads such a space before the offset (`10:30:00 07:00`) back as `+`" in MOBILE
    assert "A time without an offset is read as **Asia/Bangkok** time" in MOBILE


def test_the_app_table_names_every_query_parameter_of_the_list_routes(client: TestClient) -> None:
    """The alerts row showed `patient_id`, `status`, `limit`, `offset`; the route also takes `type`, `severity`,
    `since` and `until` (found in the OpenAPI page only), and the visits, bands and map rows lacked their paging."""
    spec = client.get("/openapi.json").json()
    rows = re.findall(r"\| `GET (/api/v1/[^`?]+)\?([^`]*)`(?: or `\?([^`]*)`)? (?:/ `[^`]*` )?\|", MOBILE)
    assert len(rows) >= 6, rows
    seen = set()
    for path, query, other in rows:
        documented = {q.split("=")[0] for part in (query, other) if part for q in part.split("&")}
        api_path = re.sub(r"\{id\}", "{patient_id}", path)
        params = spec["paths"][api_path]["get"].get("parameters", [])
        real = {p["name"] for p in params if p["in"] == "query"}
        assert documented == real, (path, documented ^ real)
        seen.add(api_path)
    assert {"/api/v1/alerts", "/api/v1/patients/{patient_id}/visits", "/api/v1/patients/{patient_id}/bands",
            "/api/v1/map/{layer}", "/api/v1/mobile/patients", "/api/v1/patients/{patient_id}/positions"} <= seen


def test_a_zone_needs_a_home_and_the_document_says_so(client: TestClient, mapped: World) -> None:
    """The outsider's day: create a patient (no home: the document's example has none), register a band, set
    a zone: 422 `zone_build` 'a zone needs a home', which the zone section did not say; with a home it works."""
    admin = mapped.auth("admin")
    r = client.post("/api/v1/patients", headers=admin, json={"name_th": "บัวผัน ใจดี", "adl_score": 9})
    assert r.status_code == 201, r.text
    pid = r.json()["id"]
    r = client.put(f"/api/v1/patients/{pid}/zone", headers=admin, json={"margin_m": 15})
    assert r.status_code == 422 and r.json()["code"] == "zone_build"
    assert r.json()["detail"].startswith("a zone needs a home: ")
    lon, lat = lonlat(15, 15)
    assert client.patch(f"/api/v1/patients/{pid}", headers=admin,
                        json={"home_lat": lat, "home_lon": lon}).status_code == 200
    r = client.put(f"/api/v1/patients/{pid}/zone", headers=admin, json={"margin_m": 15})
    assert r.status_code == 200, r.text
    assert "So is a zone for a patient without a home" in MOBILE and "`detail`: `a zone needs a home: …`" in MOBILE


PROTOCOL = " ".join((ROOT / "docs" / "gateway-protocol.md").read_text(encoding="utf-8").split())


async def test_a_reading_older_than_a_stored_position_still_sets_the_battery(server: LiveServer, site: Site) -> None:  # noqa: F811
    """The outsider's gateway sent a position, then a reading (battery 64 %) a second older: acked, and the band
    still showed no battery (the state's clock was last seen, which the position had moved). Readings now have a
    clock of their own: the battery is set, last seen stays the position's; a reading older than the newest
    reading changes nothing."""
    pos_t = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    msgs = [frame("position", position(pos_t)),
            frame("reading", {"address": BAND, "kind": "chumphae", "t": (pos_t - timedelta(seconds=1)).isoformat(),
                              "battery_pct": 64.0, "worn": True}, seq=2)]
    await _send_all(server, site, msgs)
    with Session(site.world.engine) as s:
        band = s.get(Wristband, site.band_id)
        assert band is not None and band.last_seen_at == pos_t and band.battery_pct == 64.0 and band.worn is True
        assert band.last_reading_at == pos_t - timedelta(seconds=1)
    await _send_all(server, site, [frame("reading", {"address": BAND, "kind": "chumphae",
                                                     "t": (pos_t - timedelta(seconds=2)).isoformat(),
                                                     "battery_pct": 90.0, "worn": False}, seq=3)])
    with Session(site.world.engine) as s:
        band = s.get(Wristband, site.band_id)
        assert band is not None and band.battery_pct == 64.0 and band.worn is True  # older than the newest reading
    await _send_all(server, site, [frame("reading", {"address": BAND, "kind": "chumphae", "t": pos_t.isoformat(),
                                                     "battery_pct": 63.0, "worn": True}, seq=4)])
    with Session(site.world.engine) as s:
        band = s.get(Wristband, site.band_id)
        assert band is not None and band.battery_pct == 63.0 and band.last_seen_at == pos_t
    assert "a reading a second older than a stored position, in an earlier batch or the same one, still sets the" \
        " battery" in PROTOCOL
    assert "A reading older than the newest stored reading is acknowledged and changes nothing." in PROTOCOL


async def _send_all(server: LiveServer, site: Site, msgs: list[tuple[str, str]]) -> None:  # noqa: F811  (not fixtures here)
    async with connect(url(server), additional_headers=site.auth()) as ws:
        await recv_json(ws)
        for _, text in msgs:
            await ws.send(text)
        acked: set[str] = set()
        while {mid for mid, _ in msgs} - acked:
            f = await recv_json(ws)
            assert f["type"] == "ack", f
            acked |= set(f["ids"])


def test_the_replay_summary_line_means_what_section_6_says(tmp_path: Path) -> None:
    """The outsider read 'readings 120' after a 60-second, two-receiver recording as 120 reading messages
    (the document says readings go on change and at most every 5 min): they are decoded frames; `queued`
    counts the messages."""
    from tests.docs.test_outsider_docs12 import _site_config, _sos_recording

    rec = tmp_path / "field.jsonl"
    _sos_recording(rec)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "gateway-config.json").write_text(json.dumps(_site_config()), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    r = subprocess.run([sys.executable, "-m", "gateway.cli", "--replay", str(rec), "--speed", "0"],
                       capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    m = re.search(r"^adverts (\d+) readings (\d+) positions (\d+) alerts (\{.*\}) queued (\d+)$", r.stdout, re.M)
    assert m, r.stdout
    adverts, readings, positions, queued = (int(m[i]) for i in (1, 2, 3, 5))
    alerts = sum(ast.literal_eval(m[4]).values())
    # three copies of one frame (one counter): decoded three times, one reading message (SOS on), one SOS
    assert (adverts, readings, alerts) == (3, 3, 1)
    assert queued - positions - alerts == 1
    assert re.search(r"^replayed 3 adverts from .*field\.jsonl; bad lines skipped 0$", r.stdout, re.M), r.stdout
    assert "`readings`: those decoded as frames of the site's bands" in PROTOCOL
    assert "so `queued − positions − alerts` is the number of `reading` messages" in PROTOCOL


def test_a_gateway_alert_names_the_care_managers_as_told(client: TestClient, world: World) -> None:
    """The outsider's feed client showed the demo's `gateway_offline` (its replay gateway, 90 s after it ended) as
    'escalated to: caregiver'; the care managers were told (a gateway's alert goes to them), no caregiver was."""
    from chumphae.models import Gateway
    from tests.feed.conftest import raise_alert

    with Session(world.engine) as s:
        g = Gateway(slug="gw-mine", name="mine", site="s", token_hash="x" * 64, token_prefix="chg_x")
        s.add(g)
        s.commit()
        gid = g.id
    change = raise_alert(world.engine, None, "gateway_offline", gateway_id=gid, details={"gateway": "gw-mine"})
    for who in ("care_manager", "admin"):
        a = client.get(f"/api/v1/alerts/{change.alert_id}", headers=world.auth(who)).json()
        assert a["patient_id"] is None and a["escalation_level"] == 0 and a["escalated_to"] == "care_manager", a
    own = raise_alert(world.engine, world.own_patient, "wander")
    assert client.get(f"/api/v1/alerts/{own.alert_id}", headers=world.auth("admin")).json()["escalated_to"] == (
        "caregiver")
    feed = " ".join((ROOT / "docs" / "feed-protocol.md").read_text(encoding="utf-8").split())
    assert "A gateway's alert (`patient_id` `null`) is always `care_manager`" in feed


def _body_table() -> dict[str, tuple[set[str], dict[str, str]]]:
    """§3.4's table: body → (required names, optional name → value in brackets as written)."""
    doc = (ROOT / "docs" / "gateway-protocol.md").read_text(encoding="utf-8")
    section = doc[doc.index("### 3.4 Bodies"):doc.index("`hello`:\n```json")]
    out = {}
    for body, req, opt in re.findall(r"^\| `(\w+)` \| ([^|]+) \| ([^|]+) \|$", section, re.M):
        required = set(re.findall(r"`(\w+)`", req))
        optional = dict(re.findall(r"`(\w+)` \(([^)]*)\)", opt))
        out[body] = (required, optional)
    return out


def test_the_body_table_is_the_models() -> None:
    """The outsider had to guess which body fields a gateway must send and what the backend assumes without
    them (§3.4 showed full examples only); the table now says, and is held to the models."""
    from pydantic_core import PydanticUndefined

    from chumphae.ingest.envelope import BODIES

    table = _body_table()
    assert set(table) == set(BODIES)
    for name, model in BODIES.items():
        required, optional = table[name]
        fields = model.model_fields
        assert required == {f for f, info in fields.items() if info.is_required()}, name
        assert set(optional) == {f for f, info in fields.items() if not info.is_required()}, name
        for f, written in optional.items():
            info = fields[f]
            default = info.default_factory() if info.default is PydanticUndefined else info.default  # type: ignore[call-arg, misc]
            assert json.loads(written) == default, (name, f, written, default)


async def test_bodies_with_only_the_required_fields_are_stored(server: LiveServer, site: Site) -> None:  # noqa: F811
    """What the table says, on the socket (both of the backend's parsers): the required fields alone are enough,
    a required one missing or a null where the default is not null is `bad_body`; an alert's severity is the
    backend's (the gateway's kept in details)."""
    now = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=30)
    t = now.isoformat()
    good = [frame("position", {"address": BAND, "t": t, "lat": 16.5443, "lon": 102.1001, "uncertainty_m": 9.0}),
            frame("reading", {"address": BAND, "t": t}, seq=2),
            frame("alert", {"type": "sos", "t": t, "address": BAND, "severity": "low"}, seq=3),
            frame("hello", {}, seq=4), frame("heartbeat", {}, seq=5)]
    bad = [frame("position", {"address": BAND, "t": t, "lat": 16.5443, "lon": 102.1001}, seq=6),
           frame("reading", {"address": BAND, "t": t, "sos": None}, seq=7),
           frame("position", {"address": BAND, "t": t, "lat": 16.5, "lon": 102.1, "uncertainty_m": 9.0,
                              "receivers": None}, seq=8)]
    async with connect(url(server), additional_headers=site.auth()) as ws:
        await recv_json(ws)
        for _, text in good + bad:
            await ws.send(text)
        acked: set[str] = set()
        errors: dict[str, str] = {}
        while len(acked) + len(errors) < len(good) + len(bad):
            f = await recv_json(ws)
            if f["type"] == "ack":
                acked |= set(f["ids"])
            elif f["type"] == "error":
                errors[f["id"]] = f["code"]
    assert acked == {mid for mid, _ in good}
    assert errors == {mid: "bad_body" for mid, _ in bad}
    with Session(site.world.engine) as s:
        alert = s.exec(select(Alert)).one()
        assert alert.severity == "critical" and alert.details["gateway_severity"] == "low"
        pos = s.exec(select(PositionRecord)).one()
        assert (pos.source, pos.in_coverage, pos.zone_status) == ("ble", True, None)
    assert "keeps the gateway's in `details.gateway_severity`" in PROTOCOL


async def test_a_live_position_frame_names_the_place_from_the_map(server: LiveServer, site: Site) -> None:  # noqa: F811
    """feed-protocol §3 said the shipped gateway's positions arrive on the feed as 'inside the safe zone' with
    null codes; the outsider's feed client got '170 m north-east of Chumphae Municipal Health Centre' and the
    parcel (the backend names a zone-only place from its map, gateway-protocol §3.4)."""
    from chumphae.map.layers import MapLayers
    from chumphae.map.match import Matcher
    from chumphae.map.store import DEFAULT_MAP, load_default_map

    with Session(site.world.engine) as s:
        load_default_map(s)
        s.commit()
    lat, lon = 16.5445, 102.1001  # on parcel 30U099 of the shipped map
    zone_only = {"parcel_code": None, "building_code": None, "landmark": None,
                 "description_th": "อยู่ในเขตปลอดภัย", "description_en": "inside the safe zone"}
    body = {**position(datetime.now(UTC) - timedelta(seconds=5), lat=lat), "lon": lon,
            "match": {"status": "inside", "zone_version": 1, "place": zone_only}}
    async with connect(f"{server.ws}/ws/alerts", additional_headers=site.world.auth("admin")) as feed:
        assert (await recv_json(feed))["type"] == "welcome"
        assert (await recv_json(feed))["type"] == "snapshot"
        async with connect(url(server), additional_headers=site.auth()) as ws:
            await recv_json(ws)
            mid, text = frame("position", body)
            await ws.send(text)
            assert mid in (await recv_json(ws))["ids"]
        f = await recv_json(feed)
        while f["type"] != "position":
            f = await recv_json(feed)
    expected = Matcher(MapLayers.from_file(DEFAULT_MAP)).place(lon, lat)
    p = f["position"]
    assert (p["description_en"], p["parcel_code"]) == (expected.description_en, expected.parcel_code)
    assert p["description_en"] != "inside the safe zone" and p["parcel_code"] is not None
    feed_doc = " ".join((ROOT / "docs" / "feed-protocol.md").read_text(encoding="utf-8").split())
    assert "In a live `position` frame the place is named from the tax map" in feed_doc
    assert "so its positions arrive as" not in feed_doc


def test_patch_takes_the_fields_the_document_lists(client: TestClient, world: World) -> None:
    """The outsider, as admin ('everything'), sent `{"hn": …}` and `{"village": …}`: 422 'Extra inputs are not
    permitted', where the table promised everything and a refused field is said to be 403."""
    from chumphae.api.routes.patients import PatientPatch

    m = re.search(r"`PATCH` takes only these ten fields\.", MOBILE)
    assert m and len(PatientPatch.model_fields) == 10
    for name in PatientPatch.model_fields:
        assert f"`{name}`" in MOBILE.split("## Who may change what")[1].split("## What the app calls")[0], name
    for field, value in (("hn", "HN1"), ("village", "บ้านโนน"), ("cid", "1409900000011"), ("prename", "นาง")):
        assert field not in PatientPatch.model_fields
        r = client.patch(f"/api/v1/patients/{world.own_patient}", headers=world.auth("admin"), json={field: value})
        assert r.status_code == 422 and r.json()["code"] == "validation", (field, r.text)
        assert f"`{field}`" in MOBILE.split("`PATCH` takes only these ten fields.")[1][:600]
