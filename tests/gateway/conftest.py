"""Fixtures shared by the gateway tests."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from chumphae.timeutil import as_utc, utcnow
from gateway import siteconfig
from gateway.config import GatewaySettings
from gateway.service import Gateway
from tests.gateway.bluez import BlueZ
from tests.gateway.fake_backend import FakeBackend
from tests.gateway.sources import SITE, PushSource

CLI_TOKEN = "gw-test-token-0123456789"  # the fake backend's token in `run_cli_briefly`


@pytest.fixture
def bluez() -> Iterator[BlueZ]:
    """BlueZ as python-dbusmock plays it, on a private system bus (never the machine's). When python-dbusmock,
    dbus-python or dbus-daemon is missing, the test that asked for it is skipped with the reason; the other tests
    of its module still run."""
    pytest.importorskip("dbusmock", reason="python-dbusmock not installed (pip install -e '.[test]')")
    pytest.importorskip("dbus", reason="dbus-python not installed (needs Debian libdbus-1-dev libglib2.0-dev)")
    if shutil.which("dbus-daemon") is None:
        pytest.skip("dbus-daemon missing (Debian package dbus)")
    old = os.environ.get("DBUS_SYSTEM_BUS_ADDRESS")
    b = BlueZ()
    try:
        yield b
    finally:
        b.close()
        if old is None:
            os.environ.pop("DBUS_SYSTEM_BUS_ADDRESS", None)
        else:
            os.environ["DBUS_SYSTEM_BUS_ADDRESS"] = old


@contextlib.asynccontextmanager
async def running(tmp_path: Path, queue: Path, backend: FakeBackend) -> AsyncIterator[tuple[Gateway, PushSource]]:
    """A gateway (pipeline, outbox at `queue`, uplink) on `SITE` with a pushed source, sending to `backend` with its
    token; short heartbeats and back-offs; stopped and awaited at the end (test_faults19, test_disk_full)."""
    s = GatewaySettings(backend_url=backend.url, token=backend.token, queue_path=queue,
                        config_cache=tmp_path / "c.json", heartbeat_s=0.2, backoff_min_s=0.05,
                        backoff_max_s=0.2, config_poll_s=0, position_every_s=5.0)
    source = PushSource(tick_real_s=0.02)
    gw = Gateway(s, siteconfig.parse(SITE), source, simulated=False)
    stop = asyncio.Event()
    task = asyncio.create_task(gw.run(stop))
    try:
        yield gw, source
    finally:
        stop.set()
        await task


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_cli_briefly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, token: str, argv: list[str], *, cap_s: float,
                    config: dict[str, Any] | None = None, seconds: float = 2.5) -> tuple[float, list[Any]]:
    """`chumphae-gateway ARGV` (`gateway.cli.main`, the real `run_gateway`) for `seconds` against a fake backend
    on loopback serving `config`, with `MAX_AHEAD_S` scaled down to `cap_s`; GATEWAY_CONFIG_CACHE is
    `tmp_path / "config.json"` (write it first for a stand-alone run). Returns the source clock's lead on the wall
    clock at the end (seconds) and the positions the backend stored (gwsmall19, debt20)."""
    from gateway import cli, service

    port = free_port()
    monkeypatch.setenv("GATEWAY_BACKEND_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("GATEWAY_TOKEN", token)
    monkeypatch.setenv("GATEWAY_QUEUE_PATH", str(tmp_path / "outbox.db"))
    monkeypatch.setenv("GATEWAY_CONFIG_CACHE", str(tmp_path / "config.json"))
    monkeypatch.setenv("GATEWAY_HEARTBEAT_S", "1")
    monkeypatch.setattr(cli, "MAX_AHEAD_S", cap_s)
    real = service.run_gateway
    seen: dict[str, Any] = {}

    async def run_gateway(*args: Any, **kw: Any) -> service.Gateway:
        backend = FakeBackend(CLI_TOKEN, config=config, port=port)  # in the gateway's own event loop
        await backend.start()
        asyncio.get_running_loop().call_later(seconds, kw["stop"].set)
        try:
            gw = await real(*args, **kw)
        finally:
            await backend.stop()
        seen["lead"] = (gw.source.wall() - utcnow()).total_seconds()
        seen["positions"] = backend.of_type("position")
        return gw

    monkeypatch.setattr(service, "run_gateway", run_gateway)
    assert cli.main(argv) == 0
    return seen["lead"], seen["positions"]


def assert_held_at_cap(lead: float, positions: list[Any], cap_s: float) -> None:
    """What `run_cli_briefly` returned shows a clock held within `cap_s` (+1.5 s) of the wall clock: its lead at
    the end and the latest position the backend stored."""
    assert positions, "nothing reached the backend: the test proves nothing"
    latest = max(as_utc(datetime.fromisoformat(p["body"]["t"])) for p in positions)
    assert lead <= cap_s + 1.5, lead
    assert (latest - utcnow()).total_seconds() <= cap_s + 1.5, latest
