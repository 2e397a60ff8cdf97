"""gwsmall19: `chumphae-gateway --simulate SCENARIO --speed S` with a backend (GATEWAY_TOKEN) keeps the scenario's
clock within `MAX_AHEAD_S` of the wall clock, as `chumphae demo --scenario` does; stand-alone it runs free.

Through `gateway.cli.main` and the real `run_gateway`, simulator and uplink, against the fake backend on
loopback; only the cap is scaled down (3 s for 8 minutes) and the run stopped after 2.5 s."""

from __future__ import annotations

import asyncio
import socket
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from chumphae.timeutil import as_utc, utcnow
from gateway import cli, service
from tests.gateway.fake_backend import FakeBackend

TOKEN = "gw-test-token-0123456789"
CAP_S = 3.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, token: str, speed: str) -> tuple[float, list[Any]]:
    """`chumphae-gateway --simulate demo --speed SPEED` for 2.5 s: the simulated clock's lead on the wall clock
    at the end (seconds), and the positions the backend stored."""
    port = _free_port()
    monkeypatch.setenv("GATEWAY_BACKEND_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("GATEWAY_TOKEN", token)
    monkeypatch.setenv("GATEWAY_QUEUE_PATH", str(tmp_path / "outbox.db"))
    monkeypatch.setenv("GATEWAY_CONFIG_CACHE", str(tmp_path / "config.json"))
    monkeypatch.setenv("GATEWAY_HEARTBEAT_S", "1")
    monkeypatch.setattr(cli, "MAX_AHEAD_S", CAP_S)
    real = service.run_gateway
    seen: dict[str, Any] = {}

    async def run_gateway(*args: Any, **kw: Any) -> service.Gateway:
        backend = FakeBackend(TOKEN, config={}, port=port)  # in the gateway's own event loop
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
    assert cli.main(["--simulate", "demo", "--speed", speed]) == 0
    return seen["lead"], seen["positions"]


@pytest.mark.parametrize("speed", ["40", "0"])
def test_with_a_backend_a_sped_up_simulation_stays_within_the_cap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   speed: str) -> None:
    """Uncapped, `--speed 40` was 79 s ahead after 2.5 s (a scenario longer than ~10 minutes ran past the
    backend's +10 minute window and its positions were refused), `--speed 0` 288 s: the whole scenario."""
    lead, positions = _run_cli(tmp_path, monkeypatch, TOKEN, speed)
    assert positions, "nothing reached the backend: the test proves nothing"
    latest = max(as_utc(datetime.fromisoformat(p["body"]["t"])) for p in positions)
    assert lead <= CAP_S + 1.5, lead
    assert (latest - utcnow()).total_seconds() <= CAP_S + 1.5, latest


def test_stand_alone_a_simulation_runs_free(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No GATEWAY_TOKEN: nothing is sent, so no backend's window to keep to: `--speed 40` runs at 40."""
    lead, _positions = _run_cli(tmp_path, monkeypatch, "", "40")
    assert lead >= 40 * 2.0, lead
