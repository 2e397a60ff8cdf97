"""An outsider's end-to-end run, written from README.md and docs/*.md only (outside20).

A band advert built by hand (docs/band-frame.md, checked against its golden vector), a recording of the
site's receivers hearing it (docs/gateway-protocol.md §6), a real `chumphae serve` on a temporary SQLite
database (the shipped map loaded at start) with an admin from `chumphae users create`, our own gateway and
its site's receivers from `chumphae gateways create --receiver`, our own patient, caregiver, band and zone
registered over REST (docs/mobile-api.md), and the real
`chumphae-gateway --replay FILE`. The SOS is read back over REST (`GET /api/v1/alerts`) and over the
caregiver's live feed (`/ws/alerts`, docs/feed-protocol.md); the ordinary frames as a position and the
band's battery; the day's summary (docs/daily-summary.md) has the documented columns.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import math
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from datetime import time as clock
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.e2e.docs20_frames import (
    FLAG_SOS,
    FLAG_WORN,
    Body,
    Heard,
    advertisement,
    payload,
    write_recording,
)

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ADDRESS = "C0:FF:EE:20:20:01"
KEY_HEX = "2f1e0d3c4b5a69788796a5b4c3d2e1f0"
HOME = (16.5450, 102.1001)  # near the town's centre on the shipped map (docs/gateway-protocol.md §2 example)
SITE = "ban-outside20"  # our own site: its receivers come with our gateway (`gateways create --receiver`)
# The gateway's own adapter in the house (`local`, GATEWAY_RECEIVER_ID's default) and three on poles
# about 80-110 m away: ID,LAT,LON[,P1M_DBM[,PATH_LOSS_N]] (README, `chumphae gateways create`).
RECEIVERS = [
    "local,16.5451,102.1002",
    "rx-north,16.5458,102.1000,-61,2.2",
    "rx-east,16.5449,102.1009,-57,2.2",
    "rx-south-west,16.5442,102.0994",
]
NAME_TH = "นางทดสอบ ยี่สิบคนนอก"
BATTERY = 77
SOS_FROM_S = 12
SECONDS = 20
BANGKOK = ZoneInfo("Asia/Bangkok")  # docs/daily-summary.md: a day is a calendar day in Bangkok


def test_golden_vector_by_hand() -> None:
    """docs/band-frame.md "Golden vector", rebuilt with `cryptography` alone."""
    body = Body(FLAG_SOS | FLAG_WORN, 64, 3.5, 0.25, 1.0, -70, 40, 1520)
    assert body.pack() == bytes.fromhex("05 40 38 04 10 ba 14 f0 05")
    key = "00112233445566778899aabbccddeeff"
    assert payload("C0:FF:EE:00:00:01", key, 1000, body) == bytes.fromhex(
        "c1 e8030000 bd007c22007e4713d6 3a05fffec96b2ebd"
    )
    assert advertisement("C0:FF:EE:00:00:01", key, 1000, body) == bytes.fromhex(
        "02 01 06 19 ff ff ff c1e8030000bd007c22007e4713d63a05fffec96b2ebd"
    )
    assert len(advertisement("C0:FF:EE:00:00:01", key, 1000, body)) == 29


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHUMPHAE_", "GATEWAY_"))}
    env.update(extra)
    return env


def _run(args: list[str], env: dict[str, str], cwd: Path) -> str:
    done = subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, f"{args[:3]} exit {done.returncode}: {done.stderr[-2000:]}"
    return done.stdout + done.stderr


def _token(output: str) -> str:
    found = re.search(r"^token: (\S+)$", output, re.MULTILINE)
    assert found, "no `token:` line printed"
    return found.group(1)


@dataclass
class Backend:
    url: str
    ws: str
    admin: str
    gateway: str
    env: dict[str, str]
    log: Path
    tmp: Path


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[Backend]:
    port = _free_port()
    env = _clean_env(
        CHUMPHAE_DATA_DIR=str(tmp_path / "data"),
        CHUMPHAE_HOST="127.0.0.1",
        CHUMPHAE_PORT=str(port),
        CHUMPHAE_PUBLIC_URL=f"http://127.0.0.1:{port}",
    )
    chumphae = str(BIN / "chumphae")
    admin = _token(_run([chumphae, "users", "create", "--role", "admin", "--name", "e2e admin"], env, tmp_path))
    gateway = _token(
        _run(
            [chumphae, "gateways", "create", "--slug", "gw-outside20", "--name", "e2e replay", "--site", SITE]
            + [arg for rx in RECEIVERS for arg in ("--receiver", rx)],
            env,
            tmp_path,
        )
    )
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [chumphae, "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text(errors="replace")[-2000:]
            try:
                if httpx.get(f"{url}/healthz", timeout=2).json().get("status") == "ok":
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "backend not healthy within 60 s"
            time.sleep(0.2)
        yield Backend(url, f"ws://127.0.0.1:{port}", admin, gateway, env, log, tmp_path)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _rssi(rx: dict[str, Any], lat: float, lon: float) -> int:
    """Log-distance model of docs/gateway-protocol.md §2 (`p1m_dbm`, `path_loss_n`)."""
    dy = (lat - rx["lat"]) * 111_320.0
    dx = (lon - rx["lon"]) * 111_320.0 * math.cos(math.radians(lat))
    d = max(1.0, math.hypot(dx, dy))
    return round(rx.get("p1m_dbm", -59) - 10 * rx.get("path_loss_n", 2.7) * math.log10(d))


def _near(receivers: list[dict[str, Any]], lat: float, lon: float, n: int) -> list[dict[str, Any]]:
    return sorted(receivers, key=lambda rx: -_rssi(rx, lat, lon))[:n]


def _recording_start(now: datetime) -> datetime:
    """The recording's first instant: it ends (its end line, SECONDS + 2 s after it) before `now`, and it lies
    inside one Bangkok day, so the day the SOS falls in holds the band's positions too. Its usual place, ending
    3 s before `now`, would span midnight Bangkok (17:00 UTC) when run within SECONDS + 5 s after it: then it
    ends 1 s before that midnight instead."""
    start = now - timedelta(seconds=SECONDS + 5)
    end = start + timedelta(seconds=SECONDS + 2)
    midnight = datetime.combine(end.astimezone(BANGKOK).date(), clock(0), tzinfo=BANGKOK)
    if start < midnight:
        start = midnight - timedelta(seconds=SECONDS + 3)
    return start


def test_recording_lies_inside_one_bangkok_day_at_any_time() -> None:
    """Every second of a day, midnight's minute and the day's edges included, as `now`."""
    day = datetime(2026, 12, 3, 16, 59, tzinfo=UTC)
    nows = [day + timedelta(seconds=s) for s in range(-5, 120)]
    nows += [datetime(2026, 12, 3, tzinfo=UTC) + timedelta(seconds=s) for s in range(0, 86_400, 7)]
    for now in nows:
        start = _recording_start(now)
        end = start + timedelta(seconds=SECONDS + 2)
        assert end < now and now - start < timedelta(seconds=60), now
        assert start.astimezone(BANGKOK).date() == end.astimezone(BANGKOK).date(), now


def _recording(path: Path, receivers: list[dict[str, Any]], start: datetime) -> int:
    """SECONDS one-second frames of our band, SOS pressed from SOS_FROM_S on, each heard by the 4 nearest."""
    near = _near(receivers, *HOME, 4)
    heard = []
    for s in range(SECONDS):
        flags = FLAG_WORN | (FLAG_SOS if s >= SOS_FROM_S else 0)
        body = Body(flags, BATTERY, 1.1, 0.9, 1.0, 10, 0, 300 + s)
        frame = payload(ADDRESS, KEY_HEX, 7000 + s, body)
        for i, rx in enumerate(near):
            t = start + timedelta(seconds=s + 0.1 + 0.02 * i)
            heard.append(Heard(t, rx["id"], ADDRESS, _rssi(rx, *HOME), frame))
    write_recording(path, start, heard, start + timedelta(seconds=SECONDS + 2))
    return len(heard)


async def _frames(ws: ClientConnection, until: float) -> AsyncIterator[dict[str, Any]]:
    while (left := until - time.monotonic()) > 0:
        try:
            raw = await asyncio.wait_for(ws.recv(), timeout=left)
        except TimeoutError:
            return
        yield json.loads(raw)


def _doc_columns() -> list[str]:
    """The column list of docs/daily-summary.md "Columns", `alerts_<type>` expanded in its own order."""
    text = (ROOT / "docs" / "daily-summary.md").read_text(encoding="utf-8")
    section = text.split("## Columns", 1)[1]
    columns: list[str] = []
    for row in re.findall(r"^\| `([a-z_<>]+)` \| (.*) \|$", section, re.MULTILINE):
        name, definition = row
        if name == "alerts_<type>":
            types = re.findall(r"`([a-z_]+)`", definition.split(";", 1)[0])
            columns += [f"alerts_{t}" for t in types]
        else:
            columns.append(name)
    return columns


async def test_sos_from_hand_built_recording_reaches_rest_and_feed(backend: Backend) -> None:
    admin = {"Authorization": f"Bearer {backend.admin}"}
    async with httpx.AsyncClient(base_url=backend.url, timeout=20) as http:
        # docs/mobile-api.md: patient, caregiver, assignment, band (site + key), zone.
        r = await http.post(
            "/api/v1/patients",
            headers=admin,
            json={
                "name_th": NAME_TH,
                "name_en": "Outsider Twenty",
                "adl_score": 9,
                "nhso_group": 2,
                "village": "Chumphae town",
                "home_lat": HOME[0],
                "home_lon": HOME[1],
            },
        )
        assert r.status_code == 201, r.text
        patient_id = r.json()["id"]
        r = await http.post("/api/v1/users", headers=admin, json={"name": "ลูกสาว e2e", "role": "caregiver"})
        assert r.status_code == 201, r.text
        caregiver_id, caregiver_token = r.json()["id"], r.json()["token"]
        r = await http.post(
            f"/api/v1/users/{caregiver_id}/patients",
            headers=admin,
            json={"patient_id": patient_id, "relation": "caregiver"},
        )
        assert r.status_code == 204, r.text
        r = await http.put(
            f"/api/v1/patients/{patient_id}/bands",
            headers=admin,
            json={"address": ADDRESS, "key_hex": KEY_HEX, "site": SITE, "model": "chumphae-v1"},
        )
        assert r.status_code == 200, r.text
        assert r.json()["band"]["site"] == SITE and r.json()["band"]["has_key"] is True
        r = await http.get(
            "/api/v1/map/routes", headers=admin, params={"lat": HOME[0], "lon": HOME[1], "radius_m": 150}
        )
        assert r.status_code == 200, r.text
        codes = [f["properties"]["code"] for f in r.json()["features"]][:1]
        r = await http.put(f"/api/v1/patients/{patient_id}/zone", headers=admin, json={"route_codes": codes})
        assert r.status_code == 200, r.text

        # docs/gateway-protocol.md §2: our gateway's site config names our band (with its key) and the
        # site's receivers, whose ids the recording must use.
        r = await http.get("/api/v1/gateway/config", headers={"Authorization": f"Bearer {backend.gateway}"})
        assert r.status_code == 200, r.text
        config = r.json()
        assert config["site_id"] == SITE and config["gateway_id"] == "gw-outside20"
        ours = [b for b in config["bands"] if b["address"] == ADDRESS]
        assert ours == [{"address": ADDRESS, "key_hex": KEY_HEX, "patient_id": patient_id, "model": "chumphae-v1"}]
        assert [rx["id"] for rx in config["receivers"]] == [rx.split(",")[0] for rx in RECEIVERS]
        assert all("name" not in p for p in config["patients"])

        recording = backend.tmp / "field.jsonl"
        start = _recording_start(datetime.now(UTC))
        n_adverts = _recording(recording, config["receivers"], start)

        cg = {"Authorization": f"Bearer {caregiver_token}"}
        async with connect(f"{backend.ws}/ws/alerts", additional_headers=cg) as feed:
            welcome = json.loads(await asyncio.wait_for(feed.recv(), 10))
            assert welcome["type"] == "welcome" and welcome["protocol"] == 1
            assert welcome["user"]["id"] == caregiver_id and welcome["user"]["role"] == "caregiver"
            assert welcome["resumed_from"] is None
            snapshot = json.loads(await asyncio.wait_for(feed.recv(), 10))
            assert snapshot["type"] == "snapshot"
            assert [p["id"] for p in snapshot["patients"]] == [patient_id]
            assert snapshot["alerts"] == []

            replay = await asyncio.create_subprocess_exec(
                str(BIN / "chumphae-gateway"),
                "--replay",
                str(recording),
                "--speed",
                "0",
                env=_clean_env(
                    GATEWAY_TOKEN=backend.gateway,
                    GATEWAY_BACKEND_URL=backend.url,
                    GATEWAY_QUEUE_PATH=str(backend.tmp / "gw" / "outbox.sqlite3"),
                    GATEWAY_CONFIG_CACHE=str(backend.tmp / "gw" / "config.json"),
                ),
                cwd=backend.tmp,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            try:
                out_b, err_b = await asyncio.wait_for(replay.communicate(), 60)
            finally:
                if replay.returncode is None:
                    replay.kill()
                    await replay.wait()
            out, err = out_b.decode(), err_b.decode()
            assert replay.returncode == 0, err[-3000:]
            # docs/gateway-protocol.md §6 "What it prints"
            summary = re.search(
                r"^adverts (\d+) readings (\d+) positions (\d+) alerts (\{.*\}) queued (\d+)$", out, re.M
            )
            assert summary, out + err[-2000:]
            assert int(summary.group(1)) == n_adverts
            assert int(summary.group(2)) == n_adverts  # every sighting authenticated, none a replay
            assert int(summary.group(3)) >= 1
            assert summary.group(4) == "{'sos': 1}"
            # reading messages (§3.4): the band's first frame and the one whose SOS flag changed
            assert int(summary.group(5)) - int(summary.group(3)) - 1 == 2
            assert f"replayed {n_adverts} adverts from {recording}; bad lines skipped 0" in out

            # docs/feed-protocol.md §3: the SOS as an `alert` delta that rings this caregiver.
            alert_frame: dict[str, Any] | None = None
            position_frame: dict[str, Any] | None = None
            async for frame in _frames(feed, time.monotonic() + 15):
                if frame["type"] == "alert" and frame["alert"]["type"] == "sos":
                    alert_frame = alert_frame or frame
                if frame["type"] == "position" and frame["position"]["patient_id"] == patient_id:
                    position_frame = frame
                if alert_frame and position_frame:
                    break
        assert alert_frame is not None, "no SOS alert frame on the caregiver's feed"
        assert alert_frame["event"] == "opened" and alert_frame["ring"] is True and alert_frame["attention"] is True
        feed_alert = alert_frame["alert"]
        assert feed_alert["patient_id"] == patient_id and feed_alert["severity"] == "critical"
        assert feed_alert["status"] == "open" and feed_alert["escalated_to"] == "caregiver"
        sos_t = start + timedelta(seconds=SOS_FROM_S)
        opened = datetime.fromisoformat(feed_alert["opened_at"])
        assert abs((opened - sos_t).total_seconds()) < 2, (feed_alert["opened_at"], sos_t)
        assert feed_alert["opened_at"].endswith("+00:00") and feed_alert["opened_at_local"].endswith("+07:00")
        assert feed_alert["patient"]["id"] == patient_id
        assert feed_alert["details"]["authenticated"] is True
        assert feed_alert["details"]["summary_th"] and feed_alert["details"]["summary_en"]
        assert feed_alert["details"]["receiver"] in {rx["id"] for rx in config["receivers"]}
        assert position_frame is not None, "no position frame for the patient on the feed"
        assert position_frame["position"]["source"] == "ble"
        assert position_frame["position"]["description_en"]  # a live frame names the place from the map
        assert position_frame["cursor"] > snapshot["cursor"]

        # docs/mobile-api.md: the alerts list (the alert object of feed-protocol.md §3).
        r = await http.get("/api/v1/alerts", headers=cg, params={"patient_id": patient_id, "status": "open"})
        assert r.status_code == 200, r.text
        page = r.json()
        assert page["total"] == 1 and page["next_offset"] is None
        [listed] = page["items"]
        assert listed["id"] == feed_alert["id"] and listed["type"] == "sos" and listed["count"] == 1
        assert listed["severity"] == "critical" and listed["opened_at"] == feed_alert["opened_at"]

        # The ordinary frames: a located position near the home, the band's battery and worn flag.
        r = await http.get(f"/api/v1/patients/{patient_id}/positions", headers=cg)
        assert r.status_code == 200, r.text
        assert r.json()["total"] >= 1
        newest = r.json()["items"][0]
        assert newest["source"] == "ble" and newest["in_coverage"] is True
        dy = (newest["lat"] - HOME[0]) * 111_320.0
        dx = (newest["lon"] - HOME[1]) * 111_320.0 * math.cos(math.radians(HOME[0]))
        assert math.hypot(dx, dy) < 300, newest
        r = await http.get(f"/api/v1/patients/{patient_id}/bands", headers=cg)
        assert r.status_code == 200, r.text
        [band] = r.json()["items"]
        assert band["address"] == ADDRESS and band["battery_pct"] == BATTERY and band["worn"] is True

        # docs/feed-protocol.md §1-2: the `?token=` way, resuming from the first snapshot's cursor: the
        # same SOS replayed (no snapshot), cursors above it.
        query = f"?token={caregiver_token}&cursor={snapshot['cursor']}"
        async with connect(f"{backend.ws}/ws/alerts{query}") as feed:
            welcome = json.loads(await asyncio.wait_for(feed.recv(), 10))
            assert welcome["type"] == "welcome" and welcome["resumed_from"] == snapshot["cursor"]
            replayed = None
            async for frame in _frames(feed, time.monotonic() + 10):
                assert frame["type"] != "snapshot", frame
                if "cursor" in frame and frame["type"] in ("alert", "position"):
                    assert frame["cursor"] > snapshot["cursor"]
                if frame["type"] == "alert":
                    replayed = frame
                    break
            assert replayed is not None and replayed["alert"]["id"] == feed_alert["id"]
            assert replayed["cursor"] == alert_frame["cursor"]

        # docs/feed-protocol.md §1: the first-message `auth` way, for the admin (a district role):
        # the snapshot holds the open SOS.
        async with connect(f"{backend.ws}/ws/alerts") as feed:
            await feed.send(json.dumps({"type": "auth", "token": backend.admin}))
            welcome = json.loads(await asyncio.wait_for(feed.recv(), 10))
            assert welcome["type"] == "welcome" and welcome["user"]["role"] == "admin"
            snapshot = json.loads(await asyncio.wait_for(feed.recv(), 10))
            assert snapshot["type"] == "snapshot"
            assert [a["id"] for a in snapshot["alerts"] if a["patient_id"] == patient_id] == [feed_alert["id"]]
            [latest] = [p for p in snapshot["positions"] if p["patient_id"] == patient_id]
            assert latest["source"] == "ble" and "parcel_code" in latest
            assert latest["description_th"] is None and latest["description_en"] is None  # §3: not in a snapshot

        # docs/daily-summary.md: the day's summary over HTTP, its columns as the document lists them.
        day = feed_alert["opened_at_local"][:10]
        r = await http.get("/api/v1/reports/daily", headers=admin, params={"date": day, "format": "csv"})
        assert r.status_code == 200, r.text
        assert f'filename="daily-{day}.csv"' in r.headers["content-disposition"]
        assert r.content.startswith(b"\xef\xbb\xbf") and b"\r\n" in r.content
        rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"), newline="")))
        documented = _doc_columns()
        assert "cid" in documented and "alerts_sos" in documented
        assert rows[0] == [c for c in documented if c != "cid"]  # the cid column: hospital role only
        mine = [
            dict(zip(rows[0], row, strict=True))
            for row in rows[1:]
            if row[rows[0].index("patient_id")] == str(patient_id)
        ]
        assert len(mine) == 1
        assert mine[0]["date"] == day and mine[0]["alerts_sos"] == "1" and int(mine[0]["positions"]) >= 1
        r = await http.get("/api/v1/reports/daily", headers=admin, params={"date": day, "format": "json"})
        assert r.status_code == 200, r.text
        assert r.json()["columns"] == rows[0]
        r = await http.post("/api/v1/users", headers=admin, json={"name": "โรงพยาบาล e2e", "role": "hospital"})
        assert r.status_code == 201, r.text
        hospital = {"Authorization": f"Bearer {r.json()['token']}"}
        r = await http.get("/api/v1/reports/daily", headers=hospital, params={"date": day})
        assert r.status_code == 200, r.text
        assert next(csv.reader(io.StringIO(r.content.decode("utf-8-sig")))) == documented  # with `cid`
        r = await http.get("/api/v1/reports/daily", headers=cg, params={"date": day})
        assert r.status_code == 403 and r.json()["code"] == "forbidden"

    # README "Configuration": no name in the logs, at any level.
    logs = backend.log.read_text(encoding="utf-8", errors="replace") + out + err
    assert NAME_TH not in logs and "Outsider Twenty" not in logs
    # The map was asked for around the home (lat=&lon=): neither coordinate, as the query (`16.545`) or as the
    # 4- and 6-decimal forms a log might print (`16.5450`, `16.545000`); a receiver's `16.5451` is not the home.
    for coordinate in HOME:
        home = re.compile(rf"(?<![\d.]){re.escape(f'{coordinate:.4f}'.rstrip('0'))}0{{0,3}}(?!\d)")
        assert not home.search(logs), home.pattern
    assert caregiver_token not in logs and backend.gateway not in logs
