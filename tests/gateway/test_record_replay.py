"""Record and replay (issue 13): a simulated run against the real backend is recorded; the file,
replayed into a fresh gateway and a fresh backend, gives the same alerts (types and patients).

Also: the file format as documented (header, one line per advert, end line), written by hand the
way another tool would; bad lines reported with their line number, skipped and counted, nothing
else lost; a file that is not a recording refused at start with one clear line.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from chumphae.db import set_engine
from chumphae.models import Alert
from gateway import siteconfig
from gateway.config import GatewaySettings
from gateway.decode import chumphae_band as band
from gateway.record import FORMAT, VERSION, advert_line, header
from gateway.replay import BadRecording
from gateway.service import run_gateway
from gateway.simulate import scenario as scenarios
from tests.feed.liveserver import live_server
from tests.gateway.realbackend import BAND, KEY, district

ROOT = Path(__file__).resolve().parents[2]
def scenario(duration_s: float) -> scenarios.Scenario:
    """SOS, a fall and a battery running low, on the backend's own site and band; all in the past."""
    return scenarios.parse({
        "name": "record-replay", "seed": 3, "duration_s": duration_s, "prefer_backend_site": True,
        "start": (datetime.now(UTC) - timedelta(seconds=duration_s + 30)).isoformat(),
        "radio": {"p1m_dbm": -59, "path_loss_n": 2.0, "noise_db": 2.0, "shadowing_db": 1.0,
                  "drop_rate": 0.05, "sensitivity_dbm": -98, "repeats": 1},
        "patients": [{
            "band": 0, "at": [16.5443, 102.0998], "speed_mps": 0.5, "battery_pct": 16, "drain_pct_per_h": 900,
            "events": [{"at": 10, "type": "sos", "duration_s": 15}, {"at": 60, "type": "fall"},
                       {"at": 120, "type": "resume"}],
        }],
    })


def stored_alerts(engine: Engine) -> list[tuple[str, int | None]]:
    with Session(engine) as s:
        return sorted((a.type, a.patient_id) for a in s.exec(select(Alert)).all())


def gateway_settings(url: str, token: str, where: Path) -> GatewaySettings:
    return GatewaySettings(backend_url=url, token=token, queue_path=where / "outbox.sqlite3",
                           config_cache=where / "config.json", heartbeat_s=1.0, backoff_min_s=0.1,
                           backoff_max_s=0.5, config_poll_s=0)


async def test_replayed_recording_gives_the_live_runs_alerts(tmp_path: Path) -> None:
    recording = tmp_path / "village.jsonl"
    # live: simulated gateway → real backend A, recording everything the simulator hands over
    engine_a, patient_a, token_a = district(tmp_path / "a.db")
    set_engine(engine_a)
    with live_server() as server:
        live = await run_gateway(gateway_settings(server.http, token_a, tmp_path / "gw-a"), scenario=scenario(200),
                                 speed=0, exit_when_done=True, record=recording)
    set_engine(None)
    live_alerts = stored_alerts(engine_a)
    assert live.recorder is not None and live.recorder.adverts == live.pipeline.stats.adverts > 100
    assert {t for t, _p in live_alerts} >= {"sos", "fall", "battery_low"}, live_alerts

    # replay: the file alone → a fresh gateway and a fresh backend B (same bands, other database)
    engine_b, patient_b, token_b = district(tmp_path / "b.db")
    set_engine(engine_b)
    with live_server() as server:
        replayed = await run_gateway(gateway_settings(server.http, token_b, tmp_path / "gw-b"), replay=recording,
                                     speed=0)
    set_engine(None)
    assert replayed.replaying is not None
    assert replayed.replaying.adverts == live.recorder.adverts and replayed.replaying.bad_lines == 0
    assert patient_a == patient_b
    assert stored_alerts(engine_b) == live_alerts
    assert replayed.pipeline.stats.by_alert == live.pipeline.stats.by_alert
    assert replayed.outbox.path != live.outbox.path
    engine_a.dispose()
    engine_b.dispose()


SITE = {
    "site_id": "s1", "gateway_id": "gw1", "version": 1,
    "receivers": [{"id": "rx-a", "lat": 16.5442, "lon": 102.0997}],
    "bands": [{"address": BAND, "key_hex": KEY, "patient_id": 1}],
    "patients": [{"id": 1}],
}


def hand_written(path: Path, extra: dict[int, str] | None = None) -> int:
    """A recording as another tool would write it from the document: an SOS press among frames.
    `extra` inserts raw lines before the given advert index. Returns the number of good adverts."""
    t0 = datetime(2026, 11, 30, 22, 0, tzinfo=UTC)
    lines = [json.dumps({"format": FORMAT, "version": VERSION, "started": t0.isoformat().replace("+00:00", "Z")})]
    key = bytes.fromhex(KEY)
    n = 0
    for i in range(40):
        frame = band.encode(BAND, key, band.BandState(seq=100 + i, sos=20 <= i < 25))
        for raw in (extra or {}).get(i, "").splitlines():
            lines.append(raw)
        t = t0 + timedelta(seconds=i * 0.5)
        lines.append(json.dumps({"t": t.isoformat(), "receiver": "rx-a", "address": BAND.lower(), "rssi": -60 - i % 5,
                                 "manufacturer_data": {"0xFFFF": frame.hex().upper()}}))
        n += 1
    lines.append(json.dumps({"end": (t0 + timedelta(seconds=30)).isoformat()}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return n


async def replay_alone(path: Path, tmp_path: Path) -> Any:
    s = GatewaySettings(token="", queue_path=tmp_path / "o.sqlite3", config_cache=tmp_path / "c.json")
    return await run_gateway(s, replay=path, speed=0, config=siteconfig.parse(SITE))


async def test_bad_lines_are_reported_with_their_number_skipped_and_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clean = tmp_path / "clean.jsonl"
    good = hand_written(clean)
    dirty = tmp_path / "dirty.jsonl"
    bad = {
        3: "this is not json",
        7: json.dumps({"t": "2026-11-30T22:00:03", "receiver": "rx-a", "address": BAND, "rssi": -60}),  # no offset
        12: json.dumps({"t": "2026-11-30T22:00:06Z", "receiver": "rx-a", "address": BAND, "rssi": 2**70}),
        21: json.dumps({"t": "2026-11-30T22:00:10Z", "receiver": "rx-a", "address": BAND, "rssi": -60,
                        "manufacturer_data": {"65535": "abc"}}),  # odd hex: during the SOS press
        30: "[" * 5_000,  # nested too deep for any JSON reader
        35: "x" * 20_000,  # longer than any advert can be
    }
    assert hand_written(dirty, bad) == good
    gw_clean = await replay_alone(clean, tmp_path / "clean")
    with caplog.at_level(logging.ERROR, logger="gateway.replay"):
        gw_dirty = await replay_alone(dirty, tmp_path / "dirty")
    assert gw_clean.replaying.adverts == gw_dirty.replaying.adverts == good
    assert gw_clean.replaying.bad_lines == 0 and gw_dirty.replaying.bad_lines == 6
    assert gw_dirty.pipeline.stats.by_alert == gw_clean.pipeline.stats.by_alert == {"sos": 1}
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    # line numbers: header is line 1; a bad line before advert i sits at 2 + i + (bad lines before it)
    assert [e.split(": ", 1)[0].rsplit(":", 1)[1] for e in errors] == ["5", "10", "16", "26", "36", "42"]
    assert "not JSON" in errors[0] and "UTC offset" in errors[1] and "rssi" in errors[2]
    assert "hex" in errors[3] and "not JSON" in errors[4] and "longer than" in errors[5]
    assert all("skipped" in e for e in errors)


async def test_now_shifts_every_time_by_the_same_amount(tmp_path: Path) -> None:
    from gateway.replay import ReplaySource

    path = tmp_path / "old.jsonl"
    hand_written(path)  # recorded on 2026-11-30 22:00 UTC
    before = datetime.now(UTC)
    src = ReplaySource(path, speed=0, shift_to_now=True)
    times = [a.t async for a in src if a is not None]
    assert len(times) == 40 and before <= times[0] <= datetime.now(UTC)
    assert [round((t - times[0]).total_seconds(), 3) for t in times] == [i * 0.5 for i in range(40)]


async def test_a_recording_round_trips_through_the_format(tmp_path: Path) -> None:
    """What `--record` writes, `--replay` reads back identically (times, bytes, service data)."""
    from chumphae.values import Advert
    from gateway.record import parse_advert

    a = Advert(address="AA:BB:CC:DD:EE:FF", rssi=-77, receiver="rx-1", t=datetime(2026, 12, 1, 5, 0, 1, 250000, tzinfo=UTC),
               monotonic=0.0, manufacturer_data={0x004C: bytes.fromhex("0215aa"), 65535: b"\x01\x02"},
               service_data={"0000feaa-0000-1000-8000-00805f9b34fb": bytes.fromhex("20000bb8")},
               local_name="band", tx_power=-4)
    line = json.loads(json.dumps(advert_line(a)))
    assert line["manufacturer_data"] == {"76": "0215aa", "65535": "0102"}
    assert parse_advert(line) == a
    short = dict(line, service_data={"FEAA": "20000bb8"})  # 16-bit UUIDs are accepted too
    assert parse_advert(short).service_data == a.service_data
    assert header(a.t, "radio") == {"format": FORMAT, "version": 1, "started": a.t.isoformat(), "source": "radio"}


@pytest.mark.parametrize(("content", "why"), [
    ("", "empty"),
    ('{"t": "2026-11-30T22:00:00Z", "receiver": "rx-a", "address": "C0:FF:EE:00:00:01", "rssi": -60}\n',
     "first line must be"),
    ('{"format": "chumphae-adverts", "version": 9}\n', "version 9 is not supported"),
])
def test_cli_refuses_a_file_that_is_not_a_recording(tmp_path: Path, content: str, why: str) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(BadRecording, match=why):
        from gateway.replay import ReplaySource
        ReplaySource(path)
    done = subprocess.run([sys.executable, "-m", "gateway.cli", "--replay", str(path)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith(f"chumphae-gateway: error: --replay {path}: line 1:")


def test_cli_record_refuses_an_existing_file_and_replays_a_simulation(tmp_path: Path) -> None:
    rec = tmp_path / "sim.jsonl"
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "GATEWAY_QUEUE_PATH": str(tmp_path / "q1.sqlite3"),
           "GATEWAY_CONFIG_CACHE": str(tmp_path / "none.json"), "GATEWAY_LOG_LEVEL": "ERROR"}
    cmd = [sys.executable, "-m", "gateway.cli", "--simulate", "fall", "--speed", "0", "--exit-when-done",
           "--record", str(rec)]
    first = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env)
    assert first.returncode == 0, first.stderr[-2000:]
    recorded = Counter(json.loads(x).keys().__contains__("address") for x in rec.read_text().splitlines())
    assert recorded[True] > 0 and recorded[False] == 2  # adverts, plus the header and the end line
    assert f"recorded {recorded[True]} adverts" in first.stdout
    again = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env)
    assert again.returncode == 2 and "the file exists" in again.stderr
    # the fall scenario's own site (no backend): replay it with the site config cached from the scenario
    site = scenarios.load("fall").site
    assert site is not None
    siteconfig.save_cache(tmp_path / "site.json", site)  # what a gateway keeps of its backend's config
    env2 = dict(env, GATEWAY_QUEUE_PATH=str(tmp_path / "q2.sqlite3"), GATEWAY_CONFIG_CACHE=str(tmp_path / "site.json"))
    replayed = subprocess.run([sys.executable, "-m", "gateway.cli", "--replay", str(rec), "--speed", "0"],
                              cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env2)
    assert replayed.returncode == 0, replayed.stderr[-2000:]
    live_line = next(x for x in first.stdout.splitlines() if x.startswith("adverts "))
    replay_line = next(x for x in replayed.stdout.splitlines() if x.startswith("adverts "))
    assert live_line.split(" queued")[0] == replay_line.split(" queued")[0]  # same adverts, readings, positions, alerts
    assert f"replayed {recorded[True]} adverts" in replayed.stdout and "bad lines skipped 0" in replayed.stdout
