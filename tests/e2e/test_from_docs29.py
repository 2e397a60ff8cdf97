"""The field engineer's fault drill, written from README.md and docs/gateway-protocol.md only (outside29).

Real processes: `chumphae serve` on SQLite in a temporary data directory on a free port, and the real
`chumphae-gateway --replay FILE` with the settings the README lists (GATEWAY_TOKEN, GATEWAY_BACKEND_URL,
GATEWAY_QUEUE_PATH, GATEWAY_CONFIG_CACHE, GATEWAY_HEARTBEAT_S, GATEWAY_BACKOFF_MAX_S). Band frames are
built by hand (tests/e2e/docs20_frames.py, itself from docs/band-frame.md).

1. The backend is SIGKILLed while the gateway runs; an SOS is pressed meanwhile; the backend comes back:
   the SOS is stored once, at the time it was pressed (§4 / the two promises at the top of the page).
2. The gateway's token is revoked while it runs (`chumphae gateways revoke SLUG`): one ERROR line, it
   keeps running and keeps its outbox (an SOS pressed meanwhile); `gateways rotate`, restart with the
   new token: the SOS is sent once, with its true time (§4, "The token is revoked").
3. The outbox file is damaged between runs (§7): the gateway starts anyway, moves it aside as
   `NAME.damaged-<UTC time>`, logs one ERROR line and runs.
4. The heartbeat, kept in the `gateway` table's `health` column (§3.4; read here from the table as §9 first said; `GET /api/v1/gateways/{id}` shows it since debt30), says
   `outbox_replaced: 1` after that, with `last_error` `outbox: outbox file …`.
"""

from __future__ import annotations

import json
import os
import re
import signal
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

import httpx
import pytest

from tests.e2e.docs20_frames import FLAG_SOS, FLAG_WORN, Body, Heard, advertisement, payload, write_recording

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
SITE = "ban-outside29"
SLUG = "gw-outside29"
BAND_A = ("C0:FF:EE:29:29:01", "29a1b2c3d4e5f60718293a4b5c6d7e8f")
BAND_B = ("C0:FF:EE:29:29:02", "29f0e1d2c3b4a5968778695a4b3c2d1e")
REVOKED_LINE = "backend refuses this gateway's token (4001 token revoked)"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def token_of(output: str) -> str:
    m = re.search(r"^token: (\S+)$", output, re.MULTILINE)
    assert m, "no `token: …` line"
    return m.group(1)


@dataclass
class Backend:
    data: Path
    port: int
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [str(BIN / "chumphae"), "serve", "--port", str(self.port)],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()[-2000:]
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError("serve did not answer /healthz within 60 s")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def cli(self, *args: str) -> str:
        done = subprocess.run(
            [str(BIN / "chumphae"), *args], env=self.env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[Backend]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHUMPHAE_", "GATEWAY_"))}
    env["CHUMPHAE_DATA_DIR"] = str(tmp_path / "data")
    env["CHUMPHAE_DELIVERY_POLL_S"] = "0"  # nobody to tell: no LINE/SMS configured anyway
    b = Backend(tmp_path / "data", free_port(), env, tmp_path / "serve.log")
    b.start()
    try:
        yield b
    finally:
        if b.proc is not None and b.proc.poll() is None:
            b.proc.terminate()
            try:
                b.proc.wait(15)
            except subprocess.TimeoutExpired:
                b.proc.kill()
                b.proc.wait()


def frames(band: tuple[str, str], start: datetime, seconds: int, sos_at: set[int]) -> list[Heard]:
    """One advert a second from the gateway's own adapter (`local`), the SOS flag at the given seconds."""
    address, key = band
    out = []
    for i in range(seconds):
        flags = FLAG_WORN | (FLAG_SOS if i in sos_at else 0)
        body = Body(flags, 80, 1.05, 0.95, 1.0, 0, 0, 100 + i)
        assert len(advertisement(address, key, 1000 + i, body)) == 29
        out.append(Heard(start + timedelta(seconds=i), "local", address, -60, payload(address, key, 1000 + i, body)))
    return out


def gateway(
    tmp: Path, b: Backend, token: str, recording: Path, log: Path, cache: str = "gateway-config.json"
) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHUMPHAE_", "GATEWAY_"))}
    env.update(
        GATEWAY_BACKEND_URL=b.url,
        GATEWAY_TOKEN=token,
        GATEWAY_QUEUE_PATH=str(tmp / "gw" / "gateway-outbox.sqlite3"),
        GATEWAY_CONFIG_CACHE=str(tmp / "gw" / cache),
        GATEWAY_HEARTBEAT_S="1",
        GATEWAY_BACKOFF_MAX_S="2",
        GATEWAY_ALERT_URL="off",
    )
    with log.open("wb") as out:
        return subprocess.Popen(
            [str(BIN / "chumphae-gateway"), "--replay", str(recording)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def sos_alerts(b: Backend, admin: str, patient_id: int) -> list[dict[str, Any]]:
    r = httpx.get(
        f"{b.url}/api/v1/alerts",
        params={"patient_id": patient_id, "type": "sos"},
        headers={"Authorization": f"Bearer {admin}"},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    items = r.json()
    return list(items["items"] if isinstance(items, dict) else items)


def health(b: Backend) -> dict[str, Any]:
    """The last heartbeat: the `gateway` table's `health` column (docs/gateway-protocol.md §3.4)."""
    con = sqlite3.connect(b.data / "chumphae.db")
    try:
        row = con.execute("SELECT health FROM gateway WHERE slug = ?", (SLUG,)).fetchone()
    finally:
        con.close()
    assert row is not None and row[0] is not None
    value = json.loads(row[0]) if isinstance(row[0], str) else row[0]
    assert isinstance(value, dict)
    return value


def at(t0: float, seconds: float) -> None:
    time.sleep(max(0.0, t0 + seconds - time.monotonic()))


def parse(t: str) -> datetime:
    return datetime.fromisoformat(t)


def test_field_engineer_fault_drill(backend: Backend, tmp_path: Path) -> None:
    b = backend
    admin = token_of(b.cli("users", "create", "--role", "admin", "--name", "outside29 admin"))
    gw_token = token_of(
        b.cli("gateways", "create", "--slug", SLUG, "--name", "outside29 drill", "--site", SITE,
              "--receiver", "local,16.5451,102.1002")
    )
    api = httpx.Client(base_url=b.url, headers={"Authorization": f"Bearer {admin}"}, timeout=10)
    patients = []
    for n, band in enumerate((BAND_A, BAND_B), start=1):
        r = api.post("/api/v1/patients", json={"name_th": f"ผู้ทดสอบ {n}", "name_en": f"Drill {n}"})
        assert r.status_code == 201, r.text
        pid = int(r.json()["id"])
        r = api.put(f"/api/v1/patients/{pid}/bands", json={"address": band[0], "key_hex": band[1], "site": SITE})
        assert r.status_code == 200, r.text
        patients.append(pid)
    (tmp_path / "gw").mkdir()

    # 1. The backend killed while the gateway runs; an SOS meanwhile; the backend back.
    start = datetime.now(UTC)
    rec1 = tmp_path / "drill1.jsonl"
    write_recording(rec1, start, frames(BAND_A, start, 24, {10, 11}), start + timedelta(seconds=26))
    sos_t = start + timedelta(seconds=10)
    t0 = time.monotonic()
    g = gateway(tmp_path, b, gw_token, rec1, tmp_path / "gw1.log")
    at(t0, 5)
    b.kill()
    at(t0, 15)
    assert g.poll() is None, "the gateway must keep running while the backend is away"
    b.start()
    back = datetime.now(UTC)  # the backend answers /healthz again
    assert g.wait(60) == 0, (tmp_path / "gw1.log").read_text()[-3000:]
    alerts = sos_alerts(b, admin, patients[0])
    assert len(alerts) == 1, alerts
    assert alerts[0]["count"] == 1
    assert abs((parse(alerts[0]["opened_at"]) - sos_t).total_seconds()) < 1.5, (alerts[0]["opened_at"], sos_t)
    # stored after the restart, so received later than it happened
    assert (parse(alerts[0]["received_at"]) - sos_t).total_seconds() > 4
    print(f"outside29 figure: drill 1 SOS stored {(parse(alerts[0]['received_at']) - back).total_seconds():.1f} s "
          "after the backend answered /healthz again")
    assert gw_token not in (tmp_path / "gw1.log").read_text()

    # 2. The token revoked while the gateway runs; an SOS meanwhile; rotate, restart: sent once.
    start = datetime.now(UTC)
    rec2 = tmp_path / "drill2.jsonl"
    write_recording(rec2, start, frames(BAND_B, start, 14, {8}), start + timedelta(seconds=14))
    sos_t = start + timedelta(seconds=8)
    t0 = time.monotonic()
    g = gateway(tmp_path, b, gw_token, rec2, tmp_path / "gw2.log")
    at(t0, 4)
    b.cli("gateways", "revoke", SLUG)
    at(t0, 18)
    assert g.poll() is None, "a revoked gateway keeps running (§4)"
    g.terminate()
    g.wait(20)
    log2 = (tmp_path / "gw2.log").read_text()
    assert log2.count(REVOKED_LINE) == 1, log2[-3000:]
    assert re.search(r"ERROR [\w.]+: " + re.escape(REVOKED_LINE), log2)
    assert gw_token not in log2
    assert sos_alerts(b, admin, patients[1]) == []
    new_token = token_of(b.cli("gateways", "rotate", SLUG))
    assert new_token != gw_token
    # The engineer forgets to set the new token on a gateway with no cached config (a new SD card): it stops,
    # saying why in one line (§6: exit status 1). The backend answered; it is not "unreachable".
    start = datetime.now(UTC)
    rec0 = tmp_path / "drill2a.jsonl"
    write_recording(rec0, start, frames(BAND_B, start, 2, set()), start + timedelta(seconds=2))
    g = gateway(tmp_path, b, gw_token, rec0, tmp_path / "gw2a.log", cache="fresh-card/config.json")
    assert g.wait(30) == 1
    last = (tmp_path / "gw2a.log").read_text().strip().splitlines()[-1]
    assert last == ("chumphae-gateway: no site config: the backend refuses this gateway's token (HTTP 401) "
                    "and no cached copy"), last
    # While it was off, the SD card lost its first bytes (the file's header): SQLite says `file is not a database`.
    # §7: the gateway keeps every pending message it can still read, so the SOS is still sent.
    outbox = tmp_path / "gw" / "gateway-outbox.sqlite3"
    with outbox.open("r+b") as f:
        f.write(b"\x00" * 16)
    start = datetime.now(UTC)
    rec3 = tmp_path / "drill2b.jsonl"
    write_recording(rec3, start, frames(BAND_B, start, 3, set()), start + timedelta(seconds=3))
    restarted = datetime.now(UTC)
    g = gateway(tmp_path, b, new_token, rec3, tmp_path / "gw3.log")
    assert g.wait(40) == 0, (tmp_path / "gw3.log").read_text()[-3000:]
    alerts = sos_alerts(b, admin, patients[1])
    assert len(alerts) == 1, alerts
    assert abs((parse(alerts[0]["opened_at"]) - sos_t).total_seconds()) < 1.5, (alerts[0]["opened_at"], sos_t)
    log3 = (tmp_path / "gw3.log").read_text()
    assert re.search(r"ERROR gateway[\w.]*: outbox file damaged \(file is not a database\); moved aside to "
                     r"gateway-outbox\.sqlite3\.damaged-\S+: a new outbox is made at .* with the \d+ pending "
                     r"messages \(1 alerts\) that could be read", log3), log3[-3000:]
    for aside in (tmp_path / "gw").glob("gateway-outbox.sqlite3.damaged-*"):
        aside.rename(tmp_path / aside.name)  # looked at by a person; out of the way of drill 3's count
    print(f"outside29 figure: drill 2 SOS stored {(parse(alerts[0]['received_at']) - restarted).total_seconds():.1f} s "
          "after the gateway was started with the rotated token")

    # 3. The outbox damaged between runs (§7): moved aside, one ERROR line, the gateway runs.
    assert outbox.exists()
    size = max(outbox.stat().st_size, 8192)
    outbox.write_bytes(b"\xa5\x5a" * (size // 2))
    start = datetime.now(UTC)
    rec4 = tmp_path / "drill3.jsonl"
    write_recording(rec4, start, frames(BAND_A, start, 4, set()), start + timedelta(seconds=4))
    g = gateway(tmp_path, b, new_token, rec4, tmp_path / "gw4.log")
    assert g.wait(40) == 0, (tmp_path / "gw4.log").read_text()[-3000:]
    log4 = (tmp_path / "gw4.log").read_text()
    assert "Traceback" not in log4, log4[-3000:]
    damaged = list((tmp_path / "gw").glob("gateway-outbox.sqlite3.damaged-*"))
    assert len(damaged) == 1, list((tmp_path / "gw").iterdir())
    assert re.fullmatch(r"gateway-outbox\.sqlite3\.damaged-\d{8}T\d{6}(\.\d+)?Z", damaged[0].name)
    lines = [x for x in log4.splitlines() if "outbox file damaged" in x]
    assert len(lines) == 1 and " ERROR " in lines[0], lines
    assert "(file is not a database); moved aside to" in lines[0]

    # 4. The heartbeat, as the backend keeps it.
    h = health(b)
    assert h["outbox_replaced"] == 1, h  # this process's count: drill 2's damage was another run's
    assert str(h["last_error"]).startswith("outbox: outbox file"), h
    assert h["queue_depth"] == 0 and h["disk_full"] is False, h
    assert isinstance(h["clock_offset_s"], int | float) and abs(h["clock_offset_s"]) < 5, h


def test_no_token_and_no_cache_says_so(tmp_path: Path) -> None:
    """§6: a replay with neither a GATEWAY_TOKEN nor a cached config stops, exit status 1, with a line naming
    the missing token (it said `backend unreachable`, though no backend was asked)."""
    start = datetime.now(UTC)
    rec = tmp_path / "r.jsonl"
    write_recording(rec, start, frames(BAND_A, start, 2, set()), None)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHUMPHAE_", "GATEWAY_"))}
    env.update(GATEWAY_QUEUE_PATH=str(tmp_path / "q.sqlite3"), GATEWAY_CONFIG_CACHE=str(tmp_path / "none.json"))
    done = subprocess.run([str(BIN / "chumphae-gateway"), "--replay", str(rec)], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 1
    last = (done.stdout + done.stderr).strip().splitlines()[-1]
    assert last == "chumphae-gateway: no site config: no GATEWAY_TOKEN to fetch one with and no cached copy", last
