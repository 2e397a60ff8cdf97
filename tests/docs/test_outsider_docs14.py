"""Statements of README.md and docs/ that docs14's outsider run (a fresh `chumphae demo` on a port of its own, the
documents' curl examples, a feed client and a gateway client written with `websockets` from the documents, the
`/docs` page's examples, `--help`) found missing or different from the code."""

from __future__ import annotations

import ast
import contextlib
import json
import re
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from websockets.asyncio.client import connect

from chumphae.models import Gateway
from chumphae.seed import seed_demo
from tests.conftest import World
from tests.feed.liveserver import LiveServer, recv_json
from tests.ingest.conftest import Site, server, site  # noqa: F401  (the fixtures)
from tests.ingest.test_gateway_socket import frame, url

ROOT = Path(__file__).resolve().parents[2]
README = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
MOBILE = " ".join((ROOT / "docs" / "mobile-api.md").read_text(encoding="utf-8").split())

SIGHTING = {"t": "2025-01-15T21:40:05+07:00", "lat": 16.54512, "lon": 102.10233, "accuracy_m": 6, "rssi": -78}


def _demo_tokens(app_engine: Engine) -> dict[str, str]:
    with Session(app_engine) as s:
        tokens = seed_demo(s).tokens
        s.commit()
    return tokens


def _examples(spec: dict[str, object], method: str, path: str) -> list[dict[str, object]]:
    """The request-body examples the `/docs` page offers for one operation (schema `examples`)."""
    paths = spec["paths"]
    assert isinstance(paths, dict)
    body = paths[path][method]["requestBody"]["content"]["application/json"]["schema"]
    if "$ref" in body:
        components = spec["components"]
        assert isinstance(components, dict)
        body = components["schemas"][body["$ref"].rsplit("/", 1)[1]]
    return list(body.get("examples") or [])


def test_the_docs_pages_examples_run_on_the_demo_as_offered(client: TestClient, app_engine: Engine) -> None:
    """The `/docs` page's "Try it out" for search sightings sent `C0:CA:FE:00:00:07` to patient 7 of the demo
    (whose band is `C0:CA:FE:00:00:16`): 409 `band_mismatch`. `address` is optional (the patient's active band),
    so the example leaves it out and runs for any patient with a band. `POST /api/v1/patients` and
    `/api/v1/users`, which the issue found only on that page, had no example: they now offer docs/mobile-api.md's."""
    tokens = _demo_tokens(app_engine)
    vol = {"Authorization": f"Bearer {tokens['volunteer1']}"}
    admin = {"Authorization": f"Bearer {tokens['admin']}"}
    spec = client.get("/openapi.json").json()
    runs = [("put", "/api/v1/patients/{patient_id}/bands", vol), ("put", "/api/v1/patients/{patient_id}/zone", vol),
            ("post", "/api/v1/patients/{patient_id}/visits", vol),
            ("post", "/api/v1/patients/{patient_id}/search/sightings", vol),
            ("post", "/api/v1/patients", admin), ("post", "/api/v1/users", admin)]
    for method, path, headers in runs:
        examples = _examples(spec, method, path)
        assert examples, (method, path)
        for example in examples:
            r = client.request(method.upper(), path.replace("{patient_id}", "7"), headers=headers, json=example)
            assert r.status_code in (200, 201), (method, path, r.status_code, r.text)
    # the document's own examples are the page's for the two routes it had only there
    doc_bodies = [json.loads(b) for b in re.findall(r"-d '(\{[^']*\})' \"http://127\.0\.0\.1:8080/api/v1/(?:patients|users)\"",
                                                    (ROOT / "docs" / "mobile-api.md").read_text(encoding="utf-8"))]
    assert len(doc_bodies) == 2
    assert doc_bodies == _examples(spec, "post", "/api/v1/patients") + _examples(spec, "post", "/api/v1/users")


def test_a_sighting_without_an_address_is_the_patients_active_band(client: TestClient, app_engine: Engine) -> None:
    """docs/mobile-api.md said `address` "must be the patient's active band"; the route takes none as well (the
    active band is meant), which the document did not say; a wrong one is still 409 `band_mismatch`."""
    tokens = _demo_tokens(app_engine)
    vol = {"Authorization": f"Bearer {tokens['volunteer1']}"}
    url = "/api/v1/patients/7/search/sightings"
    r = client.post(url, headers=vol, json={"sightings": [SIGHTING]})
    assert r.status_code == 201 and r.json()["positions"][0]["source"] == "search", r.text
    r = client.post(url, headers=vol, json={"address": "C0:CA:FE:00:00:07", "sightings": [SIGHTING]})
    assert r.status_code == 409 and r.json()["code"] == "band_mismatch", r.text
    assert "`address` is optional (left out: the patient's active band)" in MOBILE


def _env_names(text: str) -> set[str]:
    """String constants that are exactly a CHUMPHAE_*/GATEWAY_* name: what the code reads from the environment."""
    pattern = re.compile(r"^(CHUMPHAE|GATEWAY)_[A-Z][A-Z0-9_]*$")
    return {n.value for n in ast.walk(ast.parse(text))
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and pattern.match(n.value)}


def test_every_environment_variable_the_code_reads_is_in_the_readme() -> None:
    """Beyond the settings classes, shipped code reads `CHUMPHAE_FALLS_DATA` (gateway/simulate/gattrig.py, the
    real fall recordings), `CHUMPHAE_FEED_TRACE_DIR` (scripts/load_gateways.py) and `CHUMPHAE_SERVE_ALERT_PORT`
    (set by `serve --alert-port` for its processes): none was in the README."""
    names: set[str] = set()
    for base in ("chumphae", "gateway", "scripts"):
        for path in (ROOT / base).rglob("*.py"):
            names |= _env_names(path.read_text(encoding="utf-8"))
    assert {"CHUMPHAE_FALLS_DATA", "CHUMPHAE_SERVE_ALERT_PORT", "CHUMPHAE_TEST_PG_URL"} <= names
    assert sorted(n for n in names if f"`{n}`" not in README) == []


def test_the_gateway_help_writes_defaults_as_the_environment_takes_them() -> None:
    """`chumphae-gateway --help` said `GATEWAY_GATT_ENABLED default True` (Python's word; the README says
    `true`), and the log level `DEBUG, INFO, WARNING or ERROR` where CRITICAL and any case are taken too."""
    from gateway.cli import build_parser
    from gateway.config import GatewaySettings

    text = build_parser().format_help()
    lines = {line.split()[0]: line for line in text.splitlines() if line.startswith("  GATEWAY_")}
    assert lines["GATEWAY_GATT_ENABLED"].split()[-1] == "true"
    assert "True" not in text and "False" not in text
    assert "`GATEWAY_GATT_ENABLED` | `true`" in README
    assert GatewaySettings(gatt_enabled="false").gatt_enabled is False  # type: ignore[arg-type]  # as the env sends it
    level = text[text.index("GATEWAY_LOG_LEVEL"):]
    assert "CRITICAL" in level and "any case" in level
    assert GatewaySettings(log_level="critical").log_level == "CRITICAL"


def test_without_a_token_replay_runs_too_as_the_readme_says(capsys: object) -> None:
    """README's `GATEWAY_TOKEN` row said "without it only `--simulate` runs"; `--replay` runs without one as
    well (the pipeline only, README's `--replay` row), and the error without either named only `--simulate`."""
    import pytest

    from gateway.cli import main

    assert isinstance(capsys, pytest.CaptureFixture)
    row = next(line for line in (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
               if line.startswith("| `GATEWAY_TOKEN`"))
    assert "without it `--simulate` and `--replay` run stand-alone" in row
    assert main([]) == 2
    err = capsys.readouterr().err
    assert "--simulate" in err and "--replay" in err


def test_the_map_query_limits_are_the_documented_ones(client: TestClient) -> None:
    """docs/mobile-api.md gave the map's `limit` default (1000) and `radius_m`'s largest (3000) only; the radius
    when none is sent (300 m) and the largest `limit` (5000) were in the OpenAPI schema alone."""
    params = {p["name"]: p["schema"] for p in client.get("/openapi.json").json()["paths"]["/api/v1/map/{layer}"]["get"]
              ["parameters"] if p["in"] == "query"}
    assert (params["radius_m"]["default"], params["radius_m"]["maximum"]) == (300.0, 3000.0)
    assert (params["limit"]["default"], params["limit"]["maximum"]) == (1000, 5000)
    assert "`radius_m` (default 300, at most 3000) or `bbox`" in MOBILE
    assert "`limit`, default 1000, at most 5000" in MOBILE


def test_a_body_that_is_not_json_names_where_it_broke(client: TestClient, app_engine: Engine) -> None:
    """docs/mobile-api.md showed `{"loc": ["body", 0], "msg": "JSON decode error"}` as if the 0 were fixed; it is
    the character at which the body stopped being JSON (`{bad` → 1)."""
    tokens = _demo_tokens(app_engine)
    r = client.post("/api/v1/patients/7/visits", content=b"{bad",
                    headers={"Authorization": f"Bearer {tokens['volunteer1']}", "Content-Type": "application/json"})
    assert r.status_code == 422 and r.json()["errors"] == [{"loc": ["body", 1], "msg": "JSON decode error"}]
    assert "the number is the character at which the body stopped being JSON" in MOBILE


def test_alert_details_carry_the_words_to_show_and_offline_says_which_gateway(session: Session) -> None:
    """On the demo every alert but `gateway_offline` came with `details.summary_th`/`summary_en` (a wander's:
    how long outside and how far), the words to show; docs/feed-protocol.md showed `details` only as an example
    (`outside_for_s`, `confidence`) and named neither them nor what a `gateway_offline` alert (the backend's
    own) carries. It now carries a summary too: which gateway and since when, Bangkok time."""
    from datetime import timedelta

    from chumphae.alert.escalate import raise_offline
    from chumphae.detect._common import detection
    from chumphae.detect.state import PatientState
    from chumphae.models import Alert
    from chumphae.timeutil import to_bangkok, utcnow
    from chumphae.values import AlertType

    feed = " ".join((ROOT / "docs" / "feed-protocol.md").read_text(encoding="utf-8").split())
    assert "carries **`summary_th` / `summary_en`**, one sentence to show" in feed
    assert '`details` is `{"gateway": <slug>, "site", "last_heard_at", "confidence", "summary_th", "summary_en"}`' \
        in feed
    d = detection(PatientState(address="C0:FF:EE:00:00:01", patient_id=1), AlertType.WANDER, utcnow(),
                  th="ผู้ป่วยออกนอกเขต", en="Patient outside the safe zone", outside_for_s=75)
    assert d.details["summary_en"] == "Patient outside the safe zone" and d.details["outside_for_s"] == 75
    now = utcnow()
    session.add(Gateway(slug="gw-quiet", name="quiet", site="ban-x", token_hash="h" * 64, token_prefix="chg_x",
                        last_heartbeat_at=now - timedelta(seconds=200)))
    session.commit()
    assert len(raise_offline(session, now=now, after_s=90)) == 1
    session.commit()
    alert = session.exec(select(Alert).where(Alert.type == "gateway_offline")).one()
    assert alert.details is not None
    assert set(alert.details) == {"gateway", "site", "last_heard_at", "confidence", "summary_th", "summary_en"}
    assert alert.details["gateway"] == "gw-quiet"
    since = to_bangkok(now - timedelta(seconds=200)).strftime("%H:%M")  # its last heartbeat, Bangkok time
    assert alert.details["summary_en"].startswith(f"Gateway gw-quiet (ban-x) silent since {since} (Bangkok time)")
    assert f"เกตเวย์ gw-quiet (ban-x) ขาดการติดต่อตั้งแต่ {since} น." in alert.details["summary_th"]


async def test_a_heartbeat_is_kept_as_sent_but_its_nulls(server: LiveServer, site: Site) -> None:  # noqa: F811
    """§3.4 said a heartbeat's fields are "kept as sent"; on the demo the simulated gateways' stored health had
    no `last_error` and no `alert_socket` (the shipped gateway sends both as null when nothing failed and no alert
    socket is known): nulls are dropped. Where that health is kept was in no document."""
    proto = " ".join((ROOT / "docs" / "gateway-protocol.md").read_text(encoding="utf-8").split())
    assert "except that a field sent as null is not kept (`\"last_error\": null`, `\"alert_socket\": null`)" in proto
    assert "the `gateway` table's `health` column (JSON)" in proto
    hello = frame("hello", {"gateway_version": "0.1.0", "simulated": False})
    beat = frame("heartbeat", {"uptime_s": 3.5, "queue_depth": 0, "rejected": 0, "last_error": None,
                               "alert_socket": None, "bands_heard": 12, "scanner_state": "scanning"})
    async with connect(url(server), additional_headers=site.auth()) as ws:
        await recv_json(ws)  # welcome
        for _, text in (hello, beat):
            await ws.send(text)
        acked: set[str] = set()
        while {hello[0], beat[0]} - acked:
            f = await recv_json(ws)
            assert f["type"] == "ack", f
            acked |= set(f["ids"])
    with Session(site.world.engine) as s:
        gw = s.get(Gateway, site.gateway_id)
        assert gw is not None
        health = dict(gw.health)
    assert health["bands_heard"] == 12 and health["scanner_state"] == "scanning" and health["uptime_s"] == 3.5
    assert "last_error" not in health and "alert_socket" not in health
    assert health["hello"] == {"gateway_version": "0.1.0", "simulated": False}


def test_the_defaults_of_the_user_routes_are_in_the_table(client: TestClient) -> None:
    """docs/mobile-api.md listed `lang` and `relation` without saying what leaving them out means (`th`; a
    `caregiver` assignment: a volunteer assigned without `relation` would be the patient's caregiver)."""
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    assert schemas["UserIn"]["properties"]["lang"]["default"] == "th"
    assert schemas["AssignmentIn"]["properties"]["relation"]["default"] == "caregiver"
    assert "`lang` `th` (default) or `en`" in MOBILE and "`relation`: `caregiver` (default) or `volunteer`" in MOBILE


def test_healthz_says_503_while_the_database_does_not_answer() -> None:
    """README said what `/healthz` answers "once the database answers", not what a load balancer gets before:
    503 `unavailable` with `Retry-After`, a problem body like every other route's."""
    from sqlalchemy import create_engine

    from chumphae.api.app import create_app
    from chumphae.db import set_engine

    assert "**503** `unavailable` (a problem body, `Retry-After: 5`) while it does not" in README
    set_engine(create_engine("sqlite:////nonexistent-docs14-dir/chumphae.db"))  # cannot be opened
    try:
        with TestClient(create_app(manage_engine=False), raise_server_exceptions=False) as c:
            r = c.get("/healthz")
    finally:
        set_engine(None)
    assert (r.status_code, r.headers.get("retry-after"), r.json()["code"]) == (503, "5", "unavailable"), r.text


def test_a_recording_run_ends_with_the_line_section_6_names(tmp_path: Path) -> None:
    """§6 "What it prints" gave two lines; a run with `--record` (seen on `--simulate fall --record` beside the
    demo) prints a third between them, `recorded N adverts to FILE`: a script reading the second line as the
    `replayed …` one reads the wrong line."""
    import os
    import subprocess
    import sys

    from tests.docs.test_outsider_docs12 import _site_config, _sos_recording

    proto = " ".join((ROOT / "docs" / "gateway-protocol.md").read_text(encoding="utf-8").split())
    assert "With `--record FILE` one more line comes right after that one (so before `replayed …` on a replay):" \
        " `recorded N adverts to FILE`" in proto
    rec, out = tmp_path / "field.jsonl", tmp_path / "again.jsonl"
    _sos_recording(rec)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "gateway-config.json").write_text(json.dumps(_site_config()), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    r = subprocess.run([sys.executable, "-m", "gateway.cli", "--replay", str(rec), "--speed", "0", "--record", str(out)],
                       capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    tail = r.stdout.splitlines()[-3:]
    assert tail[0].startswith("adverts 3 readings 3 ") and tail[1] == f"recorded 3 adverts to {out}", r.stdout
    assert tail[2].startswith("replayed 3 adverts from "), r.stdout
    lines = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    assert lines[0]["source"] == "replay" and "end" in lines[-1] and len(lines) == 5


def test_the_zone_answer_is_the_feature_collection_the_document_describes(client: TestClient,
                                                                           app_engine: Engine) -> None:
    """The app table said only "safe zone (day, night) and its walking routes as GeoJSON": how to tell the day
    zone from the night zone and the routes (`properties.kind`), and what the answer's own `version` and `spec`
    are, a map client had to find out from an answer."""
    tokens = _demo_tokens(app_engine)
    r = client.get("/api/v1/patients/7/zone", headers={"Authorization": f"Bearer {tokens['volunteer1']}"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/geo+json")
    doc = r.json()
    assert set(doc) == {"type", "patient_id", "version", "spec", "features"} and doc["patient_id"] == 7
    kinds = [f["properties"]["kind"] for f in doc["features"]]
    assert kinds[:2] == ["zone_day", "zone_night"] and set(kinds[2:]) == {"route"}, kinds
    day, night, route = doc["features"][0], doc["features"][1], doc["features"][2]
    assert day["geometry"]["type"] in ("Polygon", "MultiPolygon") and day["properties"]["version"] == doc["version"]
    assert set(night["properties"]) == {"kind", "version", "schedule"}
    assert set(night["properties"]["schedule"]) == {"start", "end", "only"}
    assert route["geometry"]["type"] == "LineString" and route["id"] == route["properties"]["code"]
    assert set(route["properties"]) == {"kind", "code", "name_th", "name_en"}
    assert sorted(f["id"] for f in doc["features"][2:]) == sorted(doc["spec"]["route_codes"])
    assert "told apart by `properties.kind`: `zone_day`" in MOBILE and "`zone_night` (the night zone" in MOBILE
    assert "one `route` per walking route" in MOBILE


def test_a_registered_band_shows_whether_a_gateway_can_hear_it(client: TestClient, app_engine: Engine) -> None:
    """The issue's outsider registered a patient's first band as documented, without `site`, and it was heard by no
    gateway; nothing in any answer showed it (nor a band registered without `key_hex`, left out of every site
    config). The band object now carries `site` and `has_key` (never the key)."""
    tokens = _demo_tokens(app_engine)
    admin = {"Authorization": f"Bearer {tokens['admin']}"}
    r = client.put("/api/v1/patients/7/bands", headers=admin, json={
        "address": "C0:CA:FE:00:01:2A", "key_hex": "00112233445566778899aabbccddeeff", "site": "gw-chumphae-town"})
    assert r.status_code == 200, r.text
    assert (r.json()["band"]["site"], r.json()["band"]["has_key"]) == ("gw-chumphae-town", True)
    assert all("key_hex" not in b for b in [r.json()["band"], *r.json()["replaced"]])
    pid = client.post("/api/v1/patients", headers=admin, json={"name_th": "บัวผัน ใจดี"}).json()["id"]
    r = client.put(f"/api/v1/patients/{pid}/bands", headers=admin, json={"address": "c0-ca-fe-00-01-2b"})
    assert r.status_code == 200 and r.json()["band"]["address"] == "C0:CA:FE:00:01:2B", r.text
    assert (r.json()["band"]["site"], r.json()["band"]["has_key"]) == ("chumphae", False)
    page = client.get(f"/api/v1/patients/{pid}/bands", headers=admin).json()
    assert (page["items"][0]["site"], page["items"][0]["has_key"]) == ("chumphae", False)
    status = client.get("/api/v1/patients/7/status", headers=admin).json()
    assert status["band"]["site"] == "gw-chumphae-town" and status["band"]["has_key"] is True
    assert "`has_key: false` is heard by no gateway" in MOBILE
    assert "last_seen_at, last_seen_at_local, site, has_key}`" in MOBILE


def test_the_demos_websockets_are_as_the_readme_says(tmp_path: Path) -> None:
    """On `chumphae demo` a websockets client got permessage-deflate (README: `--ws-compression` is off by
    default) and a gateway frame over 1 MiB was answered `too_large` with the socket left open (§3.3: close 1009
    above 1 MiB): the demo's backend ran uvicorn's WebSocket options, not `serve`'s. Now it runs `serve`'s,
    as the README and §3.3 say: no extension, and a 1.5 MiB frame closes the socket with 1009."""
    import asyncio

    from chumphae.db import set_engine
    from chumphae.demo import _serve
    from tests.docs.conftest import demo_settings

    proto = " ".join((ROOT / "docs" / "gateway-protocol.md").read_text(encoding="utf-8").split())
    assert "The demo's backend runs `serve`'s WebSocket options: no permessage-deflate, frames up to 1 MiB" \
        " (a larger one: close 1009)" in README
    assert "(`chumphae serve` and `chumphae demo` alike; one message is a few KiB)" in proto
    settings = demo_settings(tmp_path)

    async def run() -> tuple[str | None, int | None]:
        backend, serving, base = await _serve(settings)
        try:
            async with connect(base.replace("http", "ws") + "/ws/alerts", max_size=None) as ws:
                extensions = ws.response.headers.get("Sec-WebSocket-Extensions")
                await ws.send("x" * (3 * 1024 * 1024 // 2))  # not an auth message: 1008, not 1009
                with contextlib.suppress(Exception):
                    while True:
                        await asyncio.wait_for(ws.recv(), 10)
                return extensions, ws.close_code
        finally:
            backend.should_exit = True
            await serving

    try:
        extensions, code = asyncio.run(run())
    finally:
        set_engine(None)
    assert extensions is None, extensions
    assert code == 1009


def test_the_times_without_a_bangkok_twin_are_the_listed_ones(client: TestClient, world: World) -> None:
    """docs/mobile-api.md lists the times that have no `*_local` twin; an alert's history (`events[].t`) and a
    delivery's `next_try_at` have none either; a client trusting the list would show them as UTC clock times."""
    from tests.feed.conftest import raise_alert

    change = raise_alert(world.engine, world.own_patient, "sos")
    admin = world.auth("admin")
    alert = client.get(f"/api/v1/alerts/{change.alert_id}", headers=admin).json()
    assert alert["events"] and all("t" in e and "t_local" not in e for e in alert["events"]), alert["events"]
    deliveries = client.get(f"/api/v1/alerts/{change.alert_id}/deliveries", headers=admin).json()["deliveries"]
    assert deliveries and all("next_try_at" in d and "next_try_at_local" not in d for d in deliveries)
    assert "the `t` of an alert's `events`, a delivery's `next_try_at`) have none" in MOBILE


def test_the_alert_types_a_gateway_may_send_are_all_named() -> None:
    """§3.4 listed seven alert types and "…": a gateway written from it could not know the whole list the
    backend takes (the eighth, `gateway_offline`, is taken too) nor that any other is refused."""
    from chumphae.ingest.envelope import BODIES
    from chumphae.values import AlertType

    proto = " ".join((ROOT / "docs" / "gateway-protocol.md").read_text(encoding="utf-8").split())
    listed = proto[proto.index("`type` is one of `chumphae.values.AlertType`:"):]
    listed = listed[:listed.index("; any other is `bad_body`")]
    assert set(re.findall(r"`(\w+)`", listed)) - {"type"} == {t.value for t in AlertType}
    annotation = str(BODIES["alert"].model_fields["type"].annotation)
    assert "AlertType" in annotation, annotation


def test_the_sighting_limits_are_the_documented_ones(client: TestClient) -> None:
    """The search section gave no limits: more than 500 sightings in one call, or an RSSI above 0, is 422, which
    only the OpenAPI schema said."""
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    one, many = schemas["SightingIn"]["properties"], schemas["SightingsIn"]["properties"]["sightings"]
    assert (many["minItems"], many["maxItems"]) == (1, 500)
    assert (one["rssi"]["minimum"], one["rssi"]["maximum"]) == (-120, 0)
    assert (one["accuracy_m"]["exclusiveMinimum"], one["accuracy_m"]["maximum"]) == (0, 500)
    tx = next(x for x in one["tx_power"]["anyOf"] if x.get("type") == "integer")
    assert (tx["minimum"], tx["maximum"]) == (-100, 20)
    assert "Limits: 1–500 sightings a call, `rssi` −120 … 0 dBm, `accuracy_m` above 0 and at most 500, `tx_power`" \
        " −100 … 20 dBm" in MOBILE


def test_a_visit_without_a_time_is_now_and_one_ahead_is_refused(client: TestClient, app_engine: Engine) -> None:
    """The visits row did not say which fields a visit needs: `t` may be left out (the server's time is taken),
    and a `t` more than 5 minutes ahead (a phone clock running fast) is `visit_in_future`."""
    from datetime import UTC, datetime, timedelta

    tokens = _demo_tokens(app_engine)
    vol = {"Authorization": f"Bearer {tokens['volunteer1']}"}
    before = datetime.now(UTC)
    r = client.post("/api/v1/patients/7/visits", headers=vol, json={})
    assert r.status_code == 201, r.text
    assert abs((datetime.fromisoformat(r.json()["t"]) - before).total_seconds()) < 60
    ahead = (datetime.now(UTC) + timedelta(minutes=6)).isoformat()
    r = client.post("/api/v1/patients/7/visits", headers=vol, json={"t": ahead, "adl_score": 9})
    assert r.status_code == 422 and r.json()["code"] == "visit_in_future", r.text
    assert "`{t, adl_score, notes}`, each optional (`t` left out: now; more than 5 min ahead of the server's clock:" \
        " 422 `visit_in_future`)" in MOBILE


def test_the_length_limits_are_the_models(client: TestClient) -> None:
    """The limits said "codes ≤ 32"; `home_building_code` takes 40, and `village` (64), a band's `site` (64),
    `pid` and `hospcode` have limits of their own that the section did not give."""
    schemas = client.get("/openapi.json").json()["components"]["schemas"]

    def rule(model: str, field: str, key: str) -> object:
        prop = schemas[model]["properties"][field]
        return next(x[key] for x in prop.get("anyOf", [prop]) if key in x)

    assert rule("PatientIn", "home_parcel_code", "maxLength") == 32
    assert rule("PatientIn", "home_building_code", "maxLength") == rule("PatientPatch", "home_building_code",
                                                                         "maxLength") == 40
    assert rule("PatientIn", "village", "maxLength") == rule("BandIn", "site", "maxLength") == 64
    assert rule("PatientIn", "pid", "pattern") == "^[0-9A-Za-z]{1,15}$"
    assert rule("PatientIn", "hospcode", "pattern") == "^[0-9]{5}$"  # ASCII digits (Thai digits refused: test_ascii_digits28)
    assert "codes ≤ 32 (but `home_building_code` ≤ 40), `village` and a band's `site` ≤ 64" in MOBILE
    assert "`pid` letters and digits, at most 15; `hospcode` 5 digits." in MOBILE
