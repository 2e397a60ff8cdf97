"""An outsider's end-to-end run of the health volunteer's (อสม.) app, written from README.md and docs/*.md.

outside27: the real `chumphae serve` (SQLite in a temporary folder, a free port), an admin who sets up a
village with the CLI and the admin API (README "Commands", docs/mobile-api.md), a volunteer who works only
from her token (docs/mobile-api.md "What the app calls"), a real `chumphae-gateway --replay` of a recording
written per docs/gateway-protocol.md §6 with band frames per docs/band-frame.md (tests/e2e/docs20_frames.py,
itself written from the docs), and the volunteer's live feed (docs/feed-protocol.md). Every expectation
below is a sentence of those documents; the guesses the documents left open are logged in
/work/notes/outside27_plan.md (the dwell: no document says how to set a patient's own, so the patient is
a wanderer, NHSO group 2, and a night rule covering now gives the documented 30 s night dwell).
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
import re
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import websockets
from shapely.geometry import Point, shape

from tests.e2e.docs20_frames import FLAG_WORN, Body, Heard, payload, write_recording

BANGKOK = ZoneInfo("Asia/Bangkok")
BIN = Path(sys.executable).parent
SITE = "ban-e2e27"
ADDRESS = "C0:CA:FE:27:00:01"
KEY_HEX = "27112233445566778899aabbccddeeff"
HOME_BUILDING = "37E009-B001"  # a house (use_en "residential") in Chumphae town on the shipped map
P1M_DBM = -55
PATH_LOSS_N = 2.0
SENSITIVITY_DBM = -98  # wander-detection.md: "median below sensitivity (−100 dBm)"
M_PER_DEG = 111_320.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Backend:
    url: str
    env: dict[str, str]
    data_dir: Path

    def cli(self, *args: str) -> str:
        done = subprocess.run(
            [str(BIN / "chumphae"), *args], env=self.env, capture_output=True, text=True, timeout=120, check=False
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    def token_of(self, *args: str) -> str:
        """README: `users create` / `gateways create` print the token once, on a line `token: …`."""
        found = re.search(r"^token: (\S+)$", self.cli(*args), re.MULTILINE)
        assert found is not None
        return found.group(1)


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[Backend]:
    port = _free_port()
    data_dir = tmp_path / "data"
    env = {
        **os.environ,
        "CHUMPHAE_DATA_DIR": str(data_dir),
        "CHUMPHAE_HOST": "127.0.0.1",
        "CHUMPHAE_PORT": str(port),
        "CHUMPHAE_PUBLIC_URL": f"http://127.0.0.1:{port}",
    }
    env.pop("CHUMPHAE_DATABASE_URL", None)
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen([str(BIN / "chumphae"), "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:  # README: GET /healthz answers once the database answers (the map loads first)
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                if httpx.get(f"{url}/healthz", timeout=2).json().get("status") == "ok":
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "serve did not answer /healthz"
            time.sleep(0.3)
        yield Backend(url=url, env=env, data_dir=data_dir)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _local_xy(lat0: float, lon0: float, lat: float, lon: float) -> tuple[float, float]:
    return (lon - lon0) * M_PER_DEG * math.cos(math.radians(lat0)), (lat - lat0) * M_PER_DEG


def _latlon(lat0: float, lon0: float, x: float, y: float) -> tuple[float, float]:
    return lat0 + y / M_PER_DEG, lon0 + x / (M_PER_DEG * math.cos(math.radians(lat0)))


def _hhmm(t: datetime) -> str:
    return t.astimezone(BANGKOK).strftime("%H:%M")


def _bangkok(t: str) -> datetime:
    """A UTC answer time (`+00:00`) shown in Asia/Bangkok, to the second (as the `*_local` twins)."""
    assert t.endswith("+00:00"), t
    return datetime.fromisoformat(t).astimezone(BANGKOK).replace(microsecond=0)


class Feed:
    """The volunteer's /ws/alerts socket (docs/feed-protocol.md), every frame kept in order."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.frames: list[dict[str, Any]] = []

    async def next_matching(self, want: Any, timeout: float) -> dict[str, Any]:
        for frame in self.frames:
            if want(frame):
                return frame
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                kinds = [(f.get("type"), f.get("event")) for f in self.frames]
                raise AssertionError(f"no such frame within {timeout} s; frames seen: {kinds}")
            try:
                frame = json.loads(await asyncio.wait_for(self.ws.recv(), left))
            except TimeoutError:
                continue
            self.frames.append(frame)
            if want(frame):
                return frame


def _walk(home: tuple[float, float], night_zone: Any) -> tuple[list[tuple[float, float, float]], float]:
    """(t, x, y) once a second in metres from home: 5 s at home, out at 1.6 m/s for 50 s, then standing.

    The bearing chosen is the one whose end point (80 m out) lies furthest from the night zone.
    """
    lat0, lon0 = home
    best_bearing, best_far = 0.0, -1.0
    for deg in range(0, 360, 10):
        bx, by = math.sin(math.radians(deg)) * 80, math.cos(math.radians(deg)) * 80
        lat, lon = _latlon(lat0, lon0, bx, by)
        far = night_zone.distance(Point(lon, lat)) * M_PER_DEG
        if far > best_far:
            best_bearing, best_far = float(deg), far
    assert best_far > 0, "no way out of the night zone within 80 m"
    ux, uy = math.sin(math.radians(best_bearing)), math.cos(math.radians(best_bearing))
    track = []
    for t in range(0, 120):
        d = 0.0 if t < 5 else min(80.0, (t - 5) * 1.6)
        track.append((float(t), ux * d, uy * d))
    return track, best_bearing


def _recording(
    path: Path,
    start: datetime,
    track: list[tuple[float, float, float]],
    receivers: dict[str, tuple[float, float]],
) -> int:
    """One advert a second (band-frame.md: the counter moves once a second), heard by every receiver the
    log-distance model of its own registered calibration puts above sensitivity."""
    rng = random.Random(27)
    heard: list[Heard] = []
    for counter, (t, x, y) in enumerate(track, start=1000):
        body = Body(
            flags=FLAG_WORN, battery_pct=80, max_g=1.2, min_g=0.9, mean_g=1.0, pitch_deg=5, roll_deg=10,
            steps=counter,
        )
        data = payload(ADDRESS, KEY_HEX, counter, body)
        for rx, (rx_x, rx_y) in receivers.items():
            d = max(1.0, math.hypot(x - rx_x, y - rx_y))
            rssi = round(P1M_DBM - 10 * PATH_LOSS_N * math.log10(d) + rng.gauss(0, 2))
            if rssi >= SENSITIVITY_DBM:
                at = start + timedelta(seconds=t, milliseconds=rng.randint(0, 200))
                heard.append(Heard(t=at, receiver=rx, address=ADDRESS, rssi=rssi, payload=data))
    write_recording(path, start, heard, start + timedelta(seconds=track[-1][0] + 1))
    return len(heard)


@pytest.fixture
def children() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes the story starts; any still running when it ends (an assert failed midway) are stopped."""
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=20)


def test_volunteer_day_from_the_documents(backend: Backend, tmp_path: Path,
                                          children: list[subprocess.Popen[bytes]]) -> None:
    asyncio.run(_volunteer_day(backend, tmp_path, children))


async def _volunteer_day(backend: Backend, tmp_path: Path, children: list[subprocess.Popen[bytes]]) -> None:  # noqa: PLR0915 - one story
    api = f"{backend.url}/api/v1"
    # README: the first admin comes from the CLI, `token: …` printed once.
    admin_token = backend.token_of("users", "create", "--role", "admin", "--name", "ผู้ดูแลระบบ")
    admin = httpx.AsyncClient(base_url=api, headers={"Authorization": f"Bearer {admin_token}"}, timeout=30)

    # docs/mobile-api.md: POST /api/v1/users, 201 with the token, shown once.
    r = await admin.post("/users", json={"name": "อสม. วันดี", "role": "volunteer", "lang": "th"})
    assert r.status_code == 201, r.text
    volunteer_id, volunteer_token = r.json()["id"], r.json()["token"]
    assert r.json()["role"] == "volunteer"

    # Her patient: a wanderer (NHSO group 2) at home in a house of the shipped map; another one not hers.
    r = await admin.post(
        "/patients",
        json={
            "prename": "นาง", "name_th": "บัวผัน ใจดี", "name_en": "Buaphan Jaidee", "sex": "2",
            "birth_date": "1941-03-09", "nhso_group": 2, "village": "Chumphae town",
            "home_building_code": HOME_BUILDING,
        },
    )
    assert r.status_code == 201, r.text
    patient_id = r.json()["id"]
    r = await admin.post("/patients", json={"name_th": "สมหมาย มีสุข", "village": "Chumphae town"})
    assert r.status_code == 201, r.text
    other_id = r.json()["id"]
    r = await admin.post(f"/users/{volunteer_id}/patients", json={"patient_id": patient_id, "relation": "volunteer"})
    assert r.status_code == 204, r.text
    assert r.content == b""

    vol = httpx.AsyncClient(base_url=api, headers={"Authorization": f"Bearer {volunteer_token}"}, timeout=30)
    me = (await vol.get("/me")).json()
    assert me == {"id": volunteer_id, "name": "อสม. วันดี", "role": "volunteer", "lang": "th"}

    # Home screen: her one patient, no band yet (band_off, no_band).
    r = await vol.get("/mobile/patients")
    assert r.status_code == 200, r.text
    page = r.json()
    # Item fields are not in docs/mobile-api.md (outside27 finding): read from the answer, `patient_id`.
    assert [p["patient_id"] for p in page["items"]] == [patient_id]
    assert page["total"] == 1 and page["next_offset"] is None
    assert page["items"][0]["status"] == "band_off"
    assert "no_band" in [reason["code"] for reason in page["items"][0]["reasons"]]

    # Not hers, and an id no patient has: 403 patient_forbidden alike.
    for pid in (other_id, 999_999):
        r = await vol.get(f"/patients/{pid}")
        assert r.status_code == 403, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["code"] == "patient_forbidden"
    r = await vol.get(f"/patients/{patient_id}")
    assert r.status_code == 200, r.text
    assert r.json()["cid"] is None and r.json()["name_th"] == "บัวผัน ใจดี"

    # Where she lives, from the map the app draws (docs/mobile-api.md: GET /api/v1/map/{layer}).
    r = await vol.get("/map/buildings", params={"lat": 16.5440, "lon": 102.0993, "radius_m": 100})
    assert r.status_code == 200, r.text
    house = next(f for f in r.json()["features"] if f["properties"]["code"] == HOME_BUILDING)
    home_pt = shape(house["geometry"]).centroid
    home = (home_pt.y, home_pt.x)

    # The gateway of her village with its receivers (README: gateways create --site --receiver …).
    # Receivers around the house and out along every way she might walk (placed after the zone is known).
    r = await vol.get("/map/routes", params={"lat": home[0], "lon": home[1], "radius_m": 150})
    assert r.status_code == 200, r.text
    routes = sorted(
        r.json()["features"], key=lambda f: shape(f["geometry"]).distance(home_pt)
    )
    route_codes = [f["properties"]["code"] for f in routes[:2]]
    assert len(route_codes) == 2

    # The safe zone from the map routes, with a night rule (home only) covering now (Asia/Bangkok).
    now = datetime.now(UTC)
    night = {"start": _hhmm(now - timedelta(hours=1)), "end": _hhmm(now + timedelta(hours=2))}
    r = await vol.put(f"/patients/{patient_id}/zone", json={"route_codes": route_codes, "night": night})
    assert r.status_code == 200, r.text
    saved = r.json()
    assert saved["patient_id"] == patient_id and saved["version"] == 1
    assert saved["spec"]["route_codes"] == route_codes
    assert saved["spec"]["schedules"]["night"] == {**night, "only": "home"}  # as the zone_night feature
    r = await vol.get(f"/patients/{patient_id}/zone")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/geo+json")
    zone = r.json()
    assert zone["version"] == 1 and zone["patient_id"] == patient_id
    kinds = {f["properties"]["kind"]: f for f in zone["features"] if f["properties"]["kind"] != "route"}
    assert sorted(f["properties"]["code"] for f in zone["features"] if f["properties"]["kind"] == "route") == sorted(
        route_codes
    )
    assert kinds["zone_night"]["properties"]["schedule"] == {**night, "only": "home"}
    night_zone = shape(kinds["zone_night"]["geometry"])
    day_zone = shape(kinds["zone_day"]["geometry"])
    assert night_zone.area < day_zone.area
    etag = r.headers["etag"]
    r = await vol.get(f"/patients/{patient_id}/zone", headers={"If-None-Match": etag})
    assert r.status_code == 304

    track, bearing = _walk(home, night_zone)
    ux, uy = math.sin(math.radians(bearing)), math.cos(math.radians(bearing))
    px, py = -uy, ux
    receivers_xy = {
        "rx-home": (0.0, 0.0),
        "rx-back": (-ux * 50, -uy * 50),
        "rx-out-40": (ux * 40, uy * 40),
        "rx-out-90": (ux * 90, uy * 90),
        "rx-left": (ux * 50 + px * 50, uy * 50 + py * 50),
        "rx-right": (ux * 50 - px * 50, uy * 50 - py * 50),
    }
    receiver_args: list[str] = []
    for rx, (x, y) in receivers_xy.items():
        lat, lon = _latlon(home[0], home[1], x, y)
        receiver_args += ["--receiver", f"{rx},{lat:.7f},{lon:.7f},{P1M_DBM},{PATH_LOSS_N}"]
    gateway_token = backend.token_of(
        "gateways", "create", "--slug", "gw-e2e27", "--name", "ศาลาหมู่บ้าน", "--site", SITE, *receiver_args
    )

    # Her band, registered with the gateway's site and the key from its label.
    r = await vol.put(
        f"/patients/{patient_id}/bands",
        json={"address": ADDRESS, "key_hex": KEY_HEX, "site": SITE, "model": "chumphae-v1"},
    )
    assert r.status_code == 200, r.text  # docs/mobile-api.md "What the answers hold" (outside27)
    band = r.json()["band"]
    assert r.json()["replaced"] == []
    assert band["site"] == SITE and band["has_key"] is True and band["active"] is True
    assert band["address"] == ADDRESS and "key_hex" not in band

    # Her live feed (docs/feed-protocol.md): welcome, then a snapshot (no cursor).
    async with websockets.connect(
        backend.url.replace("http", "ws") + "/ws/alerts",
        additional_headers={"Authorization": f"Bearer {volunteer_token}"},
    ) as ws:
        feed = Feed(ws)
        welcome = await feed.next_matching(lambda f: f["type"] == "welcome", 10)
        assert welcome["user"] == {"id": volunteer_id, "name": "อสม. วันดี", "role": "volunteer"}
        assert welcome["resumed_from"] is None
        snapshot = await feed.next_matching(lambda f: f["type"] == "snapshot", 10)
        assert [p["id"] for p in snapshot["patients"]] == [patient_id]
        assert snapshot["alerts"] == []

        # The gateway replays the walk out of the night zone, at real speed, starting now.
        recording = tmp_path / "walk.jsonl"
        adverts = _recording(recording, datetime.now(UTC), track, receivers_xy)
        gw_env = {
            **os.environ,
            "GATEWAY_TOKEN": gateway_token,
            "GATEWAY_BACKEND_URL": backend.url,
            "GATEWAY_QUEUE_PATH": str(tmp_path / "outbox.sqlite3"),
            "GATEWAY_CONFIG_CACHE": str(tmp_path / "gateway-config.json"),
            "GATEWAY_RECEIVER_ID": "rx-home",
        }
        gw_log = (tmp_path / "gateway.log").open("w")
        replay = subprocess.Popen(
            [str(BIN / "chumphae-gateway"), "--replay", str(recording), "--now", "--speed", "1"],
            env=gw_env, stdout=gw_log, stderr=subprocess.STDOUT,
        )
        children.append(replay)
        try:
            opened = await feed.next_matching(
                lambda f: f["type"] == "alert" and f["event"] == "opened" and f["alert"]["type"] == "wander", 150
            )
        except AssertionError:
            replay.terminate()
            replay.wait(timeout=20)
            gw_log.close()
            raise AssertionError(
                f"no wander; {adverts} adverts; gateway log:\n{(tmp_path / 'gateway.log').read_text()[-3000:]}"
            ) from None
        alert = opened["alert"]
        alert_id = alert["id"]
        # The alert's `patient.name_th` is the prename and the name as one (feed-protocol.md's example), not the
        # record's bare `name_th` (outside27 finding: the docs did not say).
        assert alert["patient_id"] == patient_id and alert["patient"]["name_th"] == "นางบัวผัน ใจดี"
        assert alert["type_th"] == "ออกนอกเขตปลอดภัย" and alert["type_en"] == "Left the safe zone"
        assert alert["severity"] == "high" and alert["status"] == "open"
        # She is the patient's only carer: the caregiver rung (0) is empty, so the alert opens at her rung and
        # her phone is asked to ring at once; it climbs after her rung's 900 s for a wander (docs/mobile-api.md
        # "What the answers hold"; docs/delivery.md "A rung of nobody"; outside27 finding, fixed by rung27).
        assert (alert["escalation_level"], alert["escalated_to"], opened["attention"]) == (1, "volunteer", True)
        assert datetime.fromisoformat(alert["next_escalation_at"]) - datetime.fromisoformat(
            alert["received_at"]
        ) == timedelta(seconds=900)
        assert alert["opened_at_local"] == _bangkok(alert["opened_at"]).isoformat()
        details = alert["details"]
        assert details["night"] is True
        # wander-detection.md: "Patient outside the safe zone for 2 min, about 140 m from it: …" /
        # "ผู้ป่วยออกนอกเขตปลอดภัยมา 2 นาที ห่างจากเขตประมาณ 140 ม.: …" (seconds under two minutes).
        en = re.match(r"Patient outside the safe zone for (\d+) (s|min), about (\d+) m from it", details["summary_en"])
        th = re.match(r"ผู้ป่วยออกนอกเขตปลอดภัยมา (\d+) (วินาที|นาที) ห่างจากเขตประมาณ (\d+) ม\.", details["summary_th"])
        assert en is not None, details["summary_en"]
        assert th is not None, details["summary_th"]
        assert en.group(1) == th.group(1) and en.group(3) == th.group(3)
        assert (en.group(2), th.group(2)) in {("s", "วินาที"), ("min", "นาที")}
        assert details["outside_for_s"] >= 30  # the wanderers' night dwell
        assert (en.group(2) == "s") == (details["outside_for_s"] < 120)
        assert alert["last_seen"]["description_en"] and alert["last_seen"]["description_th"]

        # Over REST too: her open alerts.
        r = await vol.get("/alerts", params={"patient_id": patient_id, "status": "open"})
        assert r.status_code == 200, r.text
        assert [a["id"] for a in r.json()["items"]] == [alert_id]

        # She is on it (REST) …
        r = await vol.post(f"/alerts/{alert_id}/acknowledge", json={"note": "กำลังไป"})
        assert r.status_code == 200, r.text
        acked = r.json()
        assert acked["status"] == "acknowledged" and acked["acknowledged_by"] == volunteer_id
        assert acked["acknowledged_by_name"] == "อสม. วันดี"
        assert acked["acknowledged_at_local"] == _bangkok(acked["acknowledged_at"]).isoformat()
        await feed.next_matching(
            lambda f: f["type"] == "alert" and f["event"] == "acknowledged" and f["alert"]["id"] == alert_id, 10
        )
        # … and resolves it from the feed (feed-protocol.md §5).
        await ws.send(
            json.dumps(
                {"type": "resolve", "req": "r1", "alert_id": alert_id, "outcome": "patient_safe",
                 "note": "นั่งอยู่หน้าบ้าน"},
                ensure_ascii=False,
            )
        )
        result = await feed.next_matching(lambda f: f["type"] in ("result", "error") and f.get("req") == "r1", 10)
        assert result["type"] == "result" and result["ok"] is True, result
        resolved = result["alert"]
        assert resolved["status"] == "resolved" and resolved["outcome"] == "patient_safe"
        assert resolved["resolved_by"] == volunteer_id and resolved["resolved_by_name"] == "อสม. วันดี"
        assert resolved["resolution_note"] == "นั่งอยู่หน้าบ้าน"
        await feed.next_matching(
            lambda f: f["type"] == "alert" and f["event"] == "resolved" and f["alert"]["id"] == alert_id, 10
        )
        r = await vol.post(f"/alerts/{alert_id}/resolve", json={"outcome": "found"})
        assert r.status_code == 409 and r.json()["code"] == "alert_conflict"

        replay.terminate()
        replay.wait(timeout=20)
        gw_log.close()

    # The alert's history: who did what when (docs/mobile-api.md: events `t`, `kind`, `user_id`, `details`;
    # `t` has no Bangkok twin: converted here, as the doc says to).
    r = await vol.get(f"/alerts/{alert_id}")
    assert r.status_code == 200, r.text
    events = r.json()["events"]
    by_kind = {e["kind"]: e for e in events}
    assert {"opened", "acknowledged", "resolved"} <= set(by_kind), events
    assert by_kind["acknowledged"]["user_id"] == volunteer_id
    assert by_kind["resolved"]["user_id"] == volunteer_id
    assert _bangkok(by_kind["acknowledged"]["t"]).isoformat() == acked["acknowledged_at_local"]
    assert _bangkok(by_kind["resolved"]["t"]) == _bangkok(resolved["resolved_at"])
    times = [datetime.fromisoformat(by_kind[k]["t"]) for k in ("opened", "acknowledged", "resolved")]
    assert times == sorted(times), events

    # Who was told (docs/mobile-api.md "Alert deliveries").
    r = await vol.get(f"/alerts/{alert_id}/deliveries")
    assert r.status_code == 200, r.text
    assert r.json()["alert_id"] == alert_id
    told = r.json()["deliveries"]
    assert r.json()["summary"]["total"] == len(told) >= 1  # she was told at her rung (rung27)
    assert {(d["user_id"], d["level"]) for d in told} == {(volunteer_id, 1)}, told
    assert ("opened", "feed") in {(d["event"], d["channel"]) for d in told}, told

    # Where she was: positions with the place in words, the newest outside.
    r = await vol.get(f"/patients/{patient_id}/positions", params={"limit": 5})
    assert r.status_code == 200, r.text
    newest = r.json()["items"][0]
    assert newest["source"] == "ble" and newest["zone_status"] in ("outside", "uncertain")
    assert newest["t_local"] == _bangkok(newest["t"]).isoformat()

    # The home visit (Bangkok time without an offset), 201 with the visit.
    visit_local = datetime.now(BANGKOK).replace(microsecond=0, tzinfo=None) - timedelta(minutes=1)
    r = await vol.post(
        f"/patients/{patient_id}/visits",
        json={"t": visit_local.isoformat(), "adl_score": 12, "notes": "เดินได้เองในบ้าน"},
    )
    assert r.status_code == 201, r.text
    visit = r.json()
    assert datetime.fromisoformat(visit["t"]) == visit_local.replace(tzinfo=BANGKOK)
    r = await vol.get(f"/patients/{patient_id}/visits")
    assert r.status_code == 200 and r.json()["total"] == 1
    r = await vol.get(f"/patients/{patient_id}")
    assert r.json()["adl_score"] == 12

    await vol.aclose()
    await admin.aclose()

    # The audit log (README: every read of a patient's record is written with the user who made it).
    # No route or command reads it (docs/mobile-api.md "What the answers hold"): the `audit_log` table.
    with sqlite3.connect(backend.data_dir / "chumphae.db") as db:
        rows = db.execute(
            "SELECT action, entity, patient_id, route, detail FROM audit_log WHERE user_id = ?", (volunteer_id,)
        ).fetchall()
    acts = {(action, entity, patient, route) for action, entity, patient, route, _ in rows}
    assert ("read", "patient", patient_id, f"GET /api/v1/patients/{patient_id}") in acts, rows
    assert ("read", "patient", patient_id, f"GET /api/v1/patients/{patient_id}/zone") in acts, rows
    assert ("denied", "patient", other_id, f"GET /api/v1/patients/{other_id}") in acts, rows
    assert ("update", "alert", patient_id, f"POST /api/v1/alerts/{alert_id}/acknowledge") in acts, rows
    assert ("update", "alert", patient_id, "WS /ws/alerts") in acts, rows
    lists = [json.loads(detail) for action, entity, _, _, detail in rows if entity == "patient_status_list"]
    assert lists and lists[0]["patients"] == [patient_id]
