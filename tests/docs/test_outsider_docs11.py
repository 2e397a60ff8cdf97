"""Statements of README.md and docs/ that docs11's outsider run (clients written from the documents alone,
against `chumphae serve --workers 2` on PostgreSQL with Redis) found different from the code."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from tests.conftest import World

ROOT = Path(__file__).resolve().parents[2]
MOBILE = " ".join((ROOT / "docs" / "mobile-api.md").read_text(encoding="utf-8").split())


def test_every_validation_problem_says_where_in_errors(client: TestClient, world: World) -> None:
    """docs/mobile-api.md: `validation` comes "with `errors`: where and what"; a time without an offset and a
    bad band key came with `detail` only, so a client reading `errors` failed."""
    assert "`validation` (with `errors`: where and what" in MOBILE
    own = world.own_patient
    cases = [
        (client.post(f"/api/v1/patients/{own}/visits", json={"t": "2025-13-15T10:30:00", "adl_score": 3},
                     headers=world.auth("volunteer")), ["body", "t"]),
        (client.put(f"/api/v1/patients/{own}/bands", json={"address": "C0:CA:FE:00:01:2B", "key_hex": "zz"},
                    headers=world.auth("volunteer")), ["body"]),
        (client.get("/api/v1/map/parcels", headers=world.auth("volunteer")), ["query", "bbox"]),
    ]
    for r, loc in cases:
        assert (r.status_code, r.json()["code"]) == (422, "validation"), r.text
        errors = r.json()["errors"]
        assert [e["loc"] for e in errors] == [loc] and all(e["msg"] for e in errors), errors
        assert "zz" not in r.text  # never the value sent
    r = client.post(f"/api/v1/patients/{own}/search/sightings", headers=world.auth("volunteer"), json={
        "sightings": [{"t": "2025-01-15T21:40:05", "lat": 16.5, "lon": 102.1, "accuracy_m": 5, "rssi": -70}]})
    assert r.status_code in (409, 422)  # the world's patient may have no band: 409 no_band comes first
    if r.status_code == 422:
        assert r.json()["errors"][0]["loc"] == ["body", "sightings"]


def test_the_demo_backend_writes_the_nightly_files(tmp_path: Path) -> None:
    """docs/daily-summary.md said `chumphae demo` runs no nightly export (nor retention); it now does, as `serve`:
    its backend, started as the demo starts it, catches up yesterday's files at start."""
    import asyncio

    from chumphae.db import set_engine
    from chumphae.demo import _serve
    from chumphae.report.nightly import file_name, last_complete_day
    from chumphae.timeutil import utcnow
    from tests.docs.conftest import demo_settings

    doc = " ".join((ROOT / "docs" / "daily-summary.md").read_text(encoding="utf-8").split())
    assert "`chumphae serve` and `chumphae demo` run this job" in doc
    settings = demo_settings(tmp_path)
    expected = settings.effective_export_dir / file_name(last_complete_day(utcnow()), "csv")

    async def run() -> bool:
        server, serving, _url = await _serve(settings)
        try:
            for _ in range(600):  # the catch-up runs in the background right after start-up
                if expected.exists():
                    return True
                await asyncio.sleep(0.05)
            return False
        finally:
            server.should_exit = True
            await serving

    try:
        assert asyncio.run(run()), f"no {expected.name} in {settings.effective_export_dir}"
    finally:
        set_engine(None)


def test_every_option_of_every_chumphae_command_is_in_the_readme() -> None:
    """An outsider reads README's commands table and `--help`: `serve --host/--port` (used by docs/postgresql.md),
    `map import --encoding/--source-layer/--dataset`, `map remove --dataset` were only in `--help`."""
    import typer

    from chumphae.cli import app

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    missing: list[str] = []

    def walk(cmd: object, path: list[str]) -> None:
        subs = getattr(cmd, "commands", None)
        if subs is not None:
            for name, sub in subs.items():
                walk(sub, [*path, name])
            return
        assert f"{path[-1]}" in readme, path
        for p in getattr(cmd, "params", []):
            if p.param_type_name == "option":
                names = [o for o in [*p.opts, *p.secondary_opts] if o != "--help"]
                if names and not any(o in readme for o in names):
                    missing.append(f"{' '.join(path)} {names[0]}")

    walk(typer.main.get_command(app), [])
    assert missing == []


def test_a_zone_put_answers_and_keeps_what_the_document_says(client: TestClient, mapped: World) -> None:
    """docs/mobile-api.md had no word on PUT …/zone's body beyond route and place codes, nor on its answer; the
    OpenAPI example (the live /docs page) used codes the shipped map does not have (R-0012, LM-004)."""
    from chumphae.api.app import create_app

    assert "**only the fields sent change**" in MOBILE and '`{"patient_id", "version", "warnings", "spec"}`' in MOBILE
    own, auth = mapped.own_patient, mapped.auth("volunteer")
    first = client.put(f"/api/v1/patients/{own}/zone", json={"route_codes": ["R1"], "margin_m": 15}, headers=auth)
    assert first.status_code == 200, first.text
    assert set(first.json()) == {"patient_id", "version", "warnings", "spec"}
    again = client.put(f"/api/v1/patients/{own}/zone", json={}, headers=auth)
    assert again.json()["version"] == first.json()["version"] + 1
    assert (again.json()["spec"]["route_codes"], again.json()["spec"]["margin_m"]) == (["R1"], 15)
    bad = client.put(f"/api/v1/patients/{own}/zone", json={"route_codes": ["R99999"]}, headers=auth)
    assert (bad.status_code, bad.json()["code"], bad.json()["detail"]) == (422, "zone_build", "no route R99999 on the map")
    schema = create_app(manage_engine=False).openapi()
    body = schema["components"]["schemas"]["ZoneIn"]["examples"][0]
    assert (body["route_codes"], body["place_codes"]) == (["R00468", "R00256"], ["LM013"])  # on the shipped map
    assert '"route_codes": ["R00468", "R00256"], "place_codes": ["LM013"]' in MOBILE


def test_a_bad_log_level_stops_the_start_with_one_line(tmp_path: Path) -> None:
    """README: "A bad setting … stops the command at start with one line saying what is wrong".
    CHUMPHAE_LOG_LEVEL=LOUD and GATEWAY_LOG_LEVEL=LOUD ended in a ValueError traceback instead."""
    import subprocess
    import sys

    import pytest
    from pydantic import ValidationError

    from chumphae.config import Settings
    from gateway.config import GatewaySettings

    assert (Settings(log_level="debug").log_level, GatewaySettings(log_level="warning").log_level) == (
        "DEBUG", "WARNING")
    for cls in (Settings, GatewaySettings):
        with pytest.raises(ValidationError):
            cls(log_level="LOUD")
    env = {"PATH": "/usr/bin:/bin", "GATEWAY_LOG_LEVEL": "LOUD", "GATEWAY_TOKEN": ""}
    recording = tmp_path / "r.jsonl"
    recording.write_text('{"format": "chumphae-adverts", "version": 1}\n', encoding="utf-8")
    out = subprocess.run([sys.executable, "-m", "gateway.cli", "--replay", str(recording)], env=env, capture_output=True,
                         text=True, timeout=120, cwd=ROOT, check=False)
    assert out.returncode != 0 and "Traceback" not in out.stderr, out.stderr
    assert out.stderr.strip().splitlines() == [
        "chumphae-gateway: error: bad setting GATEWAY_LOG_LEVEL: Value error, Input should be one of DEBUG, INFO, "
        "WARNING, ERROR, CRITICAL"]


def test_a_patient_registered_over_http_needs_a_valid_cid(client: TestClient, world: World) -> None:
    """POST /api/v1/patients stored `1234567890123` (wrong check digit) as a CID that import-43 refuses."""
    assert "`cid` must be 13 digits with a valid check digit" in MOBILE
    bad = client.post("/api/v1/patients", json={"name_th": "ทดสอบ", "cid": "1234567890123"}, headers=world.auth("admin"))
    assert (bad.status_code, bad.json()["code"]) == (422, "validation")
    assert bad.json()["errors"][0]["loc"] == ["body", "cid"] and "1234567890123" not in bad.text
    good = client.post("/api/v1/patients", json={"name_th": "ทดสอบ", "cid": "1234567890121"},
                       headers=world.auth("admin"))
    assert good.status_code == 201, good.text


def test_record_refuses_an_existing_file_at_once(tmp_path: Path) -> None:
    """docs/gateway-protocol.md §6: `--record` refuses an existing file, exit status 2. Without a site config at
    hand the gateway first failed on that (exit 1, "no site config"), so a script could not tell the two apart."""
    import subprocess
    import sys

    existing = tmp_path / "field.jsonl"
    existing.write_text("a field recording\n", encoding="utf-8")
    env = {"PATH": "/usr/bin:/bin", "GATEWAY_TOKEN": "", "GATEWAY_CONFIG_CACHE": str(tmp_path / "none.json"),
           "GATEWAY_BACKEND_URL": "http://127.0.0.1:9"}
    recording = tmp_path / "r.jsonl"
    recording.write_text('{"format": "chumphae-adverts", "version": 1}\n', encoding="utf-8")
    out = subprocess.run([sys.executable, "-m", "gateway.cli", "--replay", str(recording), "--record", str(existing)],
                         env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path, check=False)
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip().endswith("the file exists; choose a new name")
    assert existing.read_text(encoding="utf-8") == "a field recording\n"


def test_list_limits_are_the_documented_ones(client: TestClient, world: World) -> None:
    """docs/mobile-api.md named no page size: the outsider's client asked limit=100000 and got a 422."""
    table = {"/api/v1/mobile/patients": (50, 200), f"/api/v1/patients/{world.own_patient}/positions": (200, 1000),
             f"/api/v1/patients/{world.own_patient}/visits": (50, 200), "/api/v1/alerts": (50, 500),
             f"/api/v1/patients/{world.own_patient}/bands": (50, 500)}
    for path, (default, largest) in table.items():
        name = path.split("/")[-1] if not path.endswith("patients") else "/mobile/patients"
        assert f"{name}` {default} / {largest}" in MOBILE, name
        auth = world.auth("volunteer")
        assert client.get(path, headers=auth).json()["limit"] == default, path
        assert client.get(f"{path}?limit={largest}", headers=auth).status_code == 200, path
        over = client.get(f"{path}?limit={largest + 1}", headers=auth)
        assert (over.status_code, over.json()["code"]) == (422, "validation"), path
    admin = world.auth("admin")
    assert "`GET /api/v1/patients` 100 / 500" in MOBILE
    assert client.get("/api/v1/patients?limit=500", headers=admin).status_code == 200
    assert client.get("/api/v1/patients?limit=501", headers=admin).status_code == 422


def test_a_locked_out_address_still_gets_healthz(world: World) -> None:
    """README said "everything from it answers 429"; /healthz (a load balancer's check) still answers 200."""
    from chumphae.api.app import create_app
    from chumphae.config import Settings

    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    assert "what needs no token (`/healthz`, the page) still answers" in readme
    with TestClient(create_app(Settings(auth_max_failures=2, auth_window_s=60), manage_engine=False)) as c:
        for _ in range(3):
            c.get("/api/v1/me", headers={"Authorization": "Bearer chu_wrong"})
        assert c.get("/api/v1/me", headers=world.auth("admin")).status_code == 429
        assert (c.get("/healthz").status_code, c.get("/").status_code) == (200, 200)


def test_erase_answers_and_leaves_what_the_readme_says(client: TestClient, mapped: World) -> None:
    """README's erase row said nothing of `active: false`, of the band list emptying, of the zone route's empty
    answer nor of the counts the admin API returns; the outsider's client expected retired bands in the list."""
    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    assert "taken off the programme (`active: false`)" in readme and "bands retired and unlinked" in readme
    own, admin = mapped.own_patient, mapped.auth("admin")
    assert client.put(f"/api/v1/patients/{own}/zone", json={"route_codes": ["R1"]}, headers=admin).status_code == 200
    r = client.post(f"/api/v1/patients/{own}/erase", headers=admin)
    assert r.status_code == 200, r.text
    keys = '{"patient_id", "positions", "alerts", "feed_frames", "visits", "zones", "bands", "assignments"}'
    assert keys in readme and set(r.json()) == set(keys.strip("{}").replace('"', "").split(", "))
    assert (r.json()["bands"], r.json()["zones"]) == (1, 1)
    assert client.get(f"/api/v1/patients/{own}", headers=admin).json()["active"] is False
    assert client.get(f"/api/v1/patients/{own}/bands", headers=admin).json()["items"] == []
    zone = client.get(f"/api/v1/patients/{own}/zone", headers=admin).json()
    assert (zone["type"], zone["version"], zone["features"]) == ("FeatureCollection", None, [])


def test_no_site_config_stops_the_gateway_as_documented(tmp_path: Path) -> None:
    """docs/gateway-protocol.md §6 said a gateway with an unreadable cache "waits for the backend"; it stops."""
    import subprocess
    import sys

    doc = " ".join((ROOT / "docs" / "gateway-protocol.md").read_text(encoding="utf-8").split())
    line = "chumphae-gateway: no site config: backend unreachable and no cached copy"
    assert f"the gateway does not wait: it stops with `{line}`, exit status 1" in doc
    junk = tmp_path / "cache.json"
    junk.write_text('{"hello": 1}', encoding="utf-8")
    recording = tmp_path / "r.jsonl"
    recording.write_text('{"format": "chumphae-adverts", "version": 1}\n', encoding="utf-8")
    env = {"PATH": "/usr/bin:/bin", "GATEWAY_TOKEN": "chg_x", "GATEWAY_CONFIG_CACHE": str(junk),
           "GATEWAY_BACKEND_URL": "http://127.0.0.1:9", "GATEWAY_QUEUE_PATH": str(tmp_path / "q.sqlite3")}
    out = subprocess.run([sys.executable, "-m", "gateway.cli", "--replay", str(recording)], env=env,
                         capture_output=True, text=True, timeout=120, cwd=tmp_path, check=False)
    assert out.returncode == 1 and out.stderr.strip().splitlines()[-1] == line, out.stderr
    assert "ignoring unreadable config cache" in out.stderr
