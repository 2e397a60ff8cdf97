"""An outsider's pass (issue 13) over production and operations, written from README.md and docs/*.md alone:
docs/postgresql.md's `chumphae serve --workers 2 --alert-port A` on PostgreSQL with Redis, a gateway client and
a feed client written from docs/gateway-protocol.md and docs/feed-protocol.md (a worker killed, `serve` killed
and started again, feeds resumed by cursor), docs/performance.md's benchmark commands as printed,
docs/daily-summary.md's `chumphae export daily` / `export catch-up`, a band's advertisement written from
docs/band-frame.md byte by byte and replayed from a hand-written recording, and README's settings tables.
Each test names the mismatch it found; it failed before the fix beside it."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from chumphae.timeutil import as_utc
from tests.conftest import World
from tests.feed.liveserver import LiveServer
from tests.feed.test_fanout import pg_world, schema_url  # noqa: F401  (fixture)
from tests.ingest.conftest import BAND, Site, server, site  # noqa: F401  (the fixtures)

ROOT = Path(__file__).resolve().parents[2]


def _doc(name: str) -> str:
    return " ".join((ROOT / name).read_text(encoding="utf-8").split())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().split(") ", 1)[1][:1] != "Z"
    except (FileNotFoundError, IndexError):
        return False


# --- docs/postgresql.md §3: `serve --workers N`, killed

def test_a_killed_serve_takes_its_workers_with_it(pg_world: World, tmp_path: Path) -> None:  # noqa: F811
    """Mismatch: after `kill -9` of `chumphae serve --workers 2 --alert-port A` the alert processes went (as
    docs/postgresql.md says) but the two workers of the main port served on, orphans, and the operator's next
    `chumphae serve` stopped at once with `[Errno 98] Address already in use`. Now every worker ends with its
    parent (PR_SET_PDEATHSIG, as the alert processes), so the port is free for the restart."""
    assert "stops them with itself (also when it is killed)" in _doc("docs/postgresql.md")
    assert "its workers end with it too" in _doc("docs/postgresql.md")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHUMPHAE_")}
    env.update(CHUMPHAE_DATABASE_URL=schema_url(pg_world.engine), CHUMPHAE_DATA_DIR=str(tmp_path / "d"),
               CHUMPHAE_LOG_LEVEL="WARNING")
    port = _free_port()
    exe = Path(sys.executable).parent / "chumphae"
    proc = subprocess.Popen([str(exe), "serve", "--workers", "2", "--host", "127.0.0.1", "--port", str(port)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "chumphae serve did not start"
            time.sleep(0.2)
        workers = [p for p in _children(proc.pid) if "spawn_main" in Path(f"/proc/{p}/cmdline").read_text()]
        assert len(workers) == 2, workers
        proc.kill()
        proc.wait(10)
        deadline = time.monotonic() + 30  # a worker's graceful shutdown, then the port is free
        while any(_alive(p) for p in workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not [p for p in workers if _alive(p)], "workers outlived their killed parent"
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))  # what the next `chumphae serve` does
    finally:
        for p in workers:  # the processes this test started, by id
            if _alive(p):
                os.kill(p, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


# --- docs/daily-summary.md: `chumphae export daily`, the nightly files, `export catch-up`

def _cli(*args: str) -> Any:
    from typer.testing import CliRunner

    from chumphae.cli import app

    return CliRunner().invoke(app, list(args))


def test_a_days_file_written_by_hand_while_it_ran_does_not_stand_for_the_nights(
        world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Mismatch: `chumphae export daily --date TODAY` (an operator looking at the day so far) wrote
    `daily-TODAY.csv` into the export folder, and `--format xlsx` its twin: the nightly job then took the day as
    written and never wrote it, so the hospital's file for that day stopped at the hour it was looked at. Now a
    day's files count as written only if written after the day was over; `export catch-up` (and the night)
    writes the whole day."""
    from chumphae.report.nightly import catch_up
    from chumphae.timeutil import BANGKOK, utcnow

    monkeypatch.setenv("CHUMPHAE_DATABASE_URL", str(world.engine.url))
    folder = tmp_path / "data" / "exports"
    today = utcnow().astimezone(BANGKOK).date()
    for fmt in ("csv", "xlsx"):
        r = _cli("export", "daily", "--date", today.isoformat(), "--format", fmt)
        assert r.exit_code == 0 and f"daily-{today.isoformat()}.{fmt}" in r.output, r.output
    after_midnight = datetime.combine(today + timedelta(days=1), dtime(0, 20), tzinfo=BANGKOK)
    written = catch_up(world.engine, folder=folder, hospcode="10707", now=after_midnight)
    assert sorted(p.name for p in written) == [f"daily-{today.isoformat()}.csv", f"daily-{today.isoformat()}.xlsx"]
    assert "were written after the day was over" in _doc("docs/daily-summary.md")


def test_with_cid_never_writes_into_the_export_folder(world: World, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Mismatch: docs/daily-summary.md says the nightly files carry no CID ("a file at rest gets copied
    around"), but `chumphae export daily --with-cid` without `--out` wrote the CID column into the export folder
    under the nightly file's own name, replacing yesterday's file with one holding every national ID. Now
    `--with-cid` needs `--out`; with it the column comes, after `pid` as documented."""
    from chumphae.report.nightly import last_complete_day
    from chumphae.timeutil import utcnow

    monkeypatch.setenv("CHUMPHAE_DATABASE_URL", str(world.engine.url))
    day = last_complete_day(utcnow()).isoformat()
    refused = _cli("export", "daily", "--date", day, "--with-cid")
    assert refused.exit_code != 0 and "--with-cid needs --out PATH" in str(refused.exception), refused.output
    assert not (tmp_path / "data" / "exports").exists()
    out = tmp_path / "for-the-hospital.csv"
    r = _cli("export", "daily", "--date", day, "--with-cid", "--out", str(out))
    assert r.exit_code == 0, r.output
    header = out.read_text(encoding="utf-8-sig").splitlines()[0].split(",")
    assert header[:5] == ["date", "hospcode", "pid", "cid", "hn"]
    assert "1409900000011" in out.read_text(encoding="utf-8-sig")  # the world's own patient's CID
    plain = _cli("export", "daily", "--date", day, "--format", "json")
    assert plain.exit_code == 0
    doc = json.loads((tmp_path / "data" / "exports" / f"daily-{day}.json").read_text(encoding="utf-8"))
    assert "cid" not in doc["columns"] and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+07:00", doc["generated_at"])
    assert "`--with-cid` needs `--out`" in _doc("docs/daily-summary.md")
    assert "[--out PATH [--with-cid]]" in _doc("README.md")


# --- docs/band-frame.md: a band's advertisement from the document alone, replayed (gateway-protocol §6)

def _band_payload(address: str, key_hex: str, counter: int, *, sos: bool = False, fall: bool = False,
                  worn: bool = True, charging: bool = False, low: bool = False, battery: int = 64,
                  max_g: float = 1.06, min_g: float = 0.94, mean_g: float = 1.0, pitch: int = 5, roll_deg: int = 10,
                  steps: int = 0) -> bytes:
    """The 22-byte payload after the company id, as the document's tables give it (no gateway code)."""
    from cryptography.hazmat.primitives.ciphers.aead import AESCCM

    flags = sos | fall << 1 | worn << 2 | charging << 3 | low << 4
    body = struct.pack("<BBBBBbbH", flags, battery, round(max_g * 16), round(min_g * 16), round(mean_g * 16), pitch,
                       roll_deg // 2, steps & 0xFFFF)
    nonce = bytes.fromhex(address.replace(":", "")) + struct.pack("<H", 0xFFFF) + b"\xc1" + struct.pack("<I", counter)
    return b"\xc1" + struct.pack("<I", counter) + AESCCM(bytes.fromhex(key_hex), tag_length=8).encrypt(nonce, body, None)


def test_the_documents_golden_vector_from_its_tables() -> None:
    body = "05 40 38 04 10 ba 14 f0 05"  # SOS, worn, 64 %, 3.5 g, 0.25 g, 1.0 g, −70°, 40°, 1520 steps
    assert body in _doc("docs/band-frame.md")
    p = _band_payload("C0:FF:EE:00:00:01", "00112233445566778899aabbccddeeff", 1000, sos=True, battery=64, max_g=3.5,
                      min_g=0.25, mean_g=1.0, pitch=-70, roll_deg=40, steps=1520)
    assert "02 01 06 19 ff ff ff " + p.hex() in _doc("docs/band-frame.md")


async def test_a_hand_written_recording_of_document_built_frames_replayed_against_a_backend(
        server: LiveServer, site: Site, tmp_path: Path) -> None:  # noqa: F811
    """A band's 90 s written from docs/band-frame.md (SOS pressed, a fall: free fall, impact, lying still with the
    band's fall flag; then its battery-low bit at 40 %, then 9 %), in a recording written from gateway-protocol §6,
    replayed with `chumphae-gateway --replay` against the backend: SOS and fall alerts with the summaries'
    figures, the battery and steps decoded. Mismatch: docs/band-frame.md gave flag bit 4, "battery low (band's own
    threshold)", as if it raised something; the gateway reads it and uses it for nothing: `battery_low` comes from
    the percent against the patient's threshold (20 % by default), so a band flagging low at 40 % raises none.
    The document now says so."""
    from sqlmodel import Session, select

    from chumphae.models import Alert, Wristband

    assert "the gateway decodes it and raises nothing on it" in _doc("docs/band-frame.md")
    key = "00112233445566778899aabbccddeeff"
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=120)
    lines = [{"format": "chumphae-adverts", "version": 1, "started": t0.isoformat(), "source": "radio"}]
    for s in range(90):
        kw: dict[str, Any] = {"steps": 1520 + s}
        if 10 <= s < 14:
            kw["sos"] = True
        if s == 30:
            kw.update(max_g=1.2, min_g=0.25, mean_g=0.6)  # free fall
        if s == 31:
            kw.update(max_g=3.5, min_g=0.5, mean_g=1.4, fall=True)  # impact
        if 32 <= s < 60:
            kw.update(max_g=1.03, min_g=0.97, pitch=-70, roll_deg=40, fall=s < 50)  # lying still, turned
        if 60 <= s < 75:
            kw.update(battery=40, low=True)
        if s >= 75:
            kw.update(battery=9)
        hexed = _band_payload(BAND, key, 5000 + s, **kw).hex()
        for k in range(2):  # the site's one receiver hears each frame twice in its second
            lines.append({"t": (t0 + timedelta(seconds=s, milliseconds=100 + 300 * k)).isoformat(), "receiver": "rx-rph",
                          "address": BAND.lower(), "rssi": -62, "manufacturer_data": {"0xFFFF": hexed}})
    lines.append({"end": (t0 + timedelta(seconds=95)).isoformat()})
    rec = tmp_path / "field.jsonl"
    rec.write_text("\n".join(json.dumps(o) for o in lines) + "\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "CHUMPHAE_"))}
    env |= {"GATEWAY_TOKEN": site.token, "GATEWAY_BACKEND_URL": server.http, "GATEWAY_ALERT_URL": "off",
            "GATEWAY_QUEUE_PATH": str(tmp_path / "q.sqlite3"), "GATEWAY_CONFIG_CACHE": str(tmp_path / "c.json")}
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "gateway.cli", "--replay", str(rec), "--speed",
                                                "0", env=env, cwd=tmp_path, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()[-2000:]
    assert "adverts 180 readings 180 " in out.decode() and "bad lines skipped 0" in out.decode(), out.decode()
    with Session(site.world.engine) as s:
        alerts = {str(a.type): a for a in s.exec(select(Alert).where(Alert.patient_id == site.world.own_patient))}
        band = s.exec(select(Wristband).where(Wristband.address == BAND)).one()
    assert set(alerts) == {"sos", "fall", "battery_low"}, alerts
    assert alerts["sos"].details["authenticated"] is True and alerts["sos"].details["receiver"] == "rx-rph"
    fall = alerts["fall"].details
    assert (fall["peak_g"], fall["free_fall"], fall["band_flag"]) == (3.5, True, True), fall
    assert fall["turn_deg"] > 60  # upright (5°, 10°) → lying (−70°, 40°)
    assert as_utc(alerts["battery_low"].opened_at) >= t0 + timedelta(seconds=75)  # the 9 %, not the 40 % flag
    # readings go on change (§3.4): the last one is the second the battery fell to 9 %, counter 5000 + 75
    assert (band.battery_pct, band.worn, band.charging, band.last_seq) == (9.0, True, False, 5075)


def test_a_search_path_naming_no_schema_stops_with_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """Mismatch: docs/postgresql.md §2 puts an installation in its own schema (`?options=-csearch_path%3D…`,
    "the schema must exist"), and README promises that a bad database setting stops the command with one line;
    a schema not created yet made `chumphae db upgrade` (and `serve`) end in a 121-line traceback
    (`InvalidSchemaName: no schema has been selected to create in`). Now one line names the URL (password
    hidden) and says to create the schema."""
    from chumphae.errors import ConfigError
    from tests.conftest import PG_URL, _pg_admin_engine

    _pg_admin_engine().dispose()  # skips, saying why, when no server answers
    schema = f"docs18_missing_{os.getpid()}"
    monkeypatch.setenv("CHUMPHAE_DATABASE_URL", f"{PG_URL}?options=-csearch_path%3D{schema}")
    r = _cli("db", "upgrade")
    assert isinstance(r.exception, ConfigError), r.exception
    assert "its search_path names no schema that exists; create it first" in str(r.exception)
    assert "`CREATE SCHEMA my_schema;` first, else the start stops with one line" in _doc("docs/postgresql.md")


# --- README's settings tables

ABOVE_ZERO = ("WATCHDOG_S", "SCAN_QUEUE_SIZE", "HEARTBEAT_S", "ACK_TIMEOUT_S", "MAX_IN_FLIGHT", "BACKOFF_MIN_S",
              "BACKOFF_MAX_S", "POSITION_EVERY_S", "LOCATE_WINDOW_S", "COVERAGE_TIMEOUT_S")


def test_a_gateway_period_of_zero_is_a_bad_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Mismatch: README says a bad setting stops the command at start with one line, but `GATEWAY_HEARTBEAT_S=0`
    (read as "off", as `GATEWAY_CONFIG_POLL_S=0` is) was taken: the gateway then sent heartbeats back to back,
    each a write of the backend's gateway row (355 in 10 s against 10 with the default), and a 0 or negative
    ack timeout, window, backoff or queue size was taken as well. Now each must be above 0."""
    from pydantic import ValidationError

    from gateway.config import GatewaySettings

    for name in ABOVE_ZERO:
        monkeypatch.setenv(f"GATEWAY_{name}", "0")
        with pytest.raises(ValidationError):
            GatewaySettings()
        monkeypatch.delenv(f"GATEWAY_{name}")
    monkeypatch.setenv("GATEWAY_CONFIG_POLL_S", "0")  # documented: 0 = never
    monkeypatch.setenv("GATEWAY_REPLAY_MARGIN", "0")
    assert (GatewaySettings().config_poll_s, GatewaySettings().replay_margin) == (0, 0)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")} | {"GATEWAY_HEARTBEAT_S": "0"}
    r = subprocess.run([sys.executable, "-m", "gateway.cli", "--replay", str(tmp_path / "none.jsonl")], env=env,
                       cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        "chumphae-gateway: error: bad setting GATEWAY_HEARTBEAT_S: Input should be greater than 0"], r.stderr
    assert "`GATEWAY_HEARTBEAT_S=0` is refused" in _doc("README.md")


def test_every_retention_setting_says_what_0_means(monkeypatch: pytest.MonkeyPatch) -> None:
    """README gave "0 keeps them for ever" for positions and audit rows only; the hourly job reads 0 the same
    way for gateway message ids and feed rows (an operator setting 0 to mean "keep nothing" keeps everything)."""
    from chumphae.config import Settings
    from chumphae.retention import cutoffs
    from chumphae.timeutil import utcnow

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for kind in ("POSITIONS", "MESSAGES", "FEED", "AUDIT"):
        row = next(line for line in readme.splitlines() if line.startswith(f"| `CHUMPHAE_RETENTION_{kind}_DAYS`"))
        assert "0: for ever" in row or "0 keeps them for ever" in row, row
        monkeypatch.setenv(f"CHUMPHAE_RETENTION_{kind}_DAYS", "0")
    assert cutoffs(Settings(), utcnow()) == {}


def test_every_chumphae_variable_read_from_the_environment_is_in_the_readme() -> None:
    """README lists the settings and, apart, the variables that are not settings; the tests' Redis URL (which
    docs/postgresql.md §5 names), their Chromium and the fuzzing's example count were read but in no list."""
    read = set()
    for folder in ("chumphae", "gateway", "scripts", "tests"):
        for path in (ROOT / folder).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            read |= set(re.findall(r"environ(?:\.get\(|\[)\"(CHUMPHAE_[A-Z_]+)\"", text))
            read |= set(re.findall(r"getenv\(\"(CHUMPHAE_[A-Z_]+)\"", text))
    assert {"CHUMPHAE_TEST_PG_URL", "CHUMPHAE_TEST_REDIS_URL"} <= read
    assert sorted(n for n in read if f"`{n}`" not in (ROOT / "README.md").read_text(encoding="utf-8")) == []


# --- docs/postgresql.md §3: Redis fan-out that does not answer

async def test_a_redis_that_does_not_answer_does_not_hold_an_sos(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    """Mismatch: docs/postgresql.md says a lost fan-out message delays a frame by at most the 2 s poll and never
    loses one; it did not say, and the code did not keep, that it delays nothing else. The publish ran in the
    committing thread before the ack, so with `CHUMPHAE_REDIS_URL` naming a Redis that accepts connections and
    never answers (hung, or a path that drops packets), every SOS was acknowledged, and shown on this
    process's own feed, 2,013-2,042 ms late (the client's timeout). Now a thread of its own publishes: the ack
    and the local feed do not wait for Redis."""
    from chumphae.alert.escalate import ClockOptions
    from chumphae.config import reset_settings
    from chumphae.ingest.connection import IngestOptions
    from tests.feed.liveserver import live_server, recv_json
    from tests.ingest.test_gateway_socket import frame, url

    assert "Publishing never holds a commit" in _doc("docs/postgresql.md")
    with socket.socket() as hung:  # listens (the kernel completes the handshake), never reads nor answers
        hung.bind(("127.0.0.1", 0))
        hung.listen(16)
        monkeypatch.setenv("CHUMPHAE_REDIS_URL", f"redis://127.0.0.1:{hung.getsockname()[1]}/0")
        reset_settings()
        with live_server(ingest_options=IngestOptions(config_check_s=5), clock_options=ClockOptions(tick_s=0)) as srv:
            async with connect(url(srv), additional_headers=site.auth()) as ws:
                await recv_json(ws)
                took = []
                for kind in ("sos", "fall", "band_removed"):
                    mid, text = frame("alert", {"type": kind, "address": BAND, "t": datetime.now(UTC).isoformat()})
                    t0 = time.monotonic()
                    await ws.send(text)
                    while mid not in (await recv_json(ws, 10)).get("ids", []):
                        pass
                    took.append(time.monotonic() - t0)
    assert max(took) < 1.0, took
