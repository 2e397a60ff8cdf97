"""debt20: `chumphae-gateway --replay FILE --now --speed S` with a backend (GATEWAY_TOKEN) keeps the recording's
clock within `MAX_AHEAD_S` of the wall clock, as `--simulate` does (gwsmall19); stand-alone it runs free.

Before, a fast replay re-dated to now ran ahead of the backend's clock without limit (a recording longer than
10 minutes at `--speed 0` or above 1: the backend refused its positions as from the future). Through
`gateway.cli.main` and the real `run_gateway`, replay source and uplink, against the fake backend on loopback;
only the cap is scaled down (3 s for 8 minutes) and the run stopped after 2.5 s."""

from __future__ import annotations

import asyncio
import json
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from chumphae.timeutil import as_utc, utcnow
from gateway import cli, service
from gateway.decode import chumphae_band as band
from gateway.record import FORMAT, VERSION
from tests.gateway.fake_backend import FakeBackend
from tests.gateway.sources import ADDR, KEY, SITE

TOKEN = "gw-test-token-0123456789"
CAP_S = 3.0
LENGTH_S = 300  # the recording: 5 minutes, a band heard twice a second by two receivers


def recording(path: Path) -> Path:
    t0 = datetime(2026, 11, 30, 22, 0, tzinfo=UTC)
    lines = [json.dumps({"format": FORMAT, "version": VERSION, "started": t0.isoformat()})]
    for i in range(LENGTH_S * 2):
        frame = band.encode(ADDR, KEY, band.BandState(seq=100 + i))
        for rx in ("rx-a", "rx-b"):
            lines.append(json.dumps({"t": (t0 + timedelta(seconds=i * 0.5)).isoformat(), "receiver": rx,
                                     "address": ADDR, "rssi": -60 - i % 5,
                                     "manufacturer_data": {"0xFFFF": frame.hex().upper()}}))
    lines.append(json.dumps({"end": (t0 + timedelta(seconds=LENGTH_S)).isoformat()}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _replay(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, token: str, speed: str) -> tuple[float, list[Any]]:
    """`chumphae-gateway --replay FILE --now --speed SPEED` for at most 2.5 s: the replay clock's lead on the wall
    clock at the end (seconds), and the positions the backend stored."""
    port = _free_port()
    monkeypatch.setenv("GATEWAY_BACKEND_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("GATEWAY_TOKEN", token)
    monkeypatch.setenv("GATEWAY_QUEUE_PATH", str(tmp_path / "outbox.db"))
    cache = tmp_path / "config.json"
    cache.write_text(json.dumps({"etag": None, "config": SITE}), encoding="utf-8")  # stand-alone: the site's bands
    monkeypatch.setenv("GATEWAY_CONFIG_CACHE", str(cache))
    monkeypatch.setenv("GATEWAY_HEARTBEAT_S", "1")
    monkeypatch.setenv("GATEWAY_POSITION_EVERY_S", "1")
    monkeypatch.setattr(cli, "MAX_AHEAD_S", CAP_S)
    real = service.run_gateway
    seen: dict[str, Any] = {}

    async def run_gateway(*args: Any, **kw: Any) -> service.Gateway:
        backend = FakeBackend(TOKEN, config=SITE, port=port)  # in the gateway's own event loop
        await backend.start()
        asyncio.get_running_loop().call_later(2.5, kw["stop"].set)
        try:
            gw = await real(*args, **kw)
        finally:
            await backend.stop()
        seen["lead"] = (gw.source.wall() - utcnow()).total_seconds()
        seen["positions"] = backend.of_type("position")
        return gw

    monkeypatch.setattr(service, "run_gateway", run_gateway)
    assert cli.main(["--replay", str(recording(tmp_path / "field.jsonl")), "--now", "--speed", speed]) == 0
    return seen["lead"], seen["positions"]


@pytest.mark.parametrize("speed", ["40", "0"])
def test_with_a_backend_a_fast_replay_re_dated_to_now_stays_within_the_cap(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, speed: str) -> None:
    """Uncapped, `--speed 40` was about 100 s ahead after 2.5 s, `--speed 0` the whole recording (300 s)."""
    lead, positions = _replay(tmp_path, monkeypatch, TOKEN, speed)
    assert positions, "nothing reached the backend: the test proves nothing"
    latest = max(as_utc(datetime.fromisoformat(p["body"]["t"])) for p in positions)
    assert lead <= CAP_S + 1.5, lead
    assert (latest - utcnow()).total_seconds() <= CAP_S + 1.5, latest


def test_stand_alone_a_replay_runs_free(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No GATEWAY_TOKEN: nothing is sent, so no backend's window to keep to: `--speed 40` runs at 40."""
    lead, _positions = _replay(tmp_path, monkeypatch, "", "40")
    assert lead >= 40 * 2.0, lead

