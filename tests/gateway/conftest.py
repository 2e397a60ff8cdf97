"""Fixtures shared by the gateway tests."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from gateway import siteconfig
from gateway.config import GatewaySettings
from gateway.service import Gateway
from tests.gateway.bluez import BlueZ
from tests.gateway.fake_backend import FakeBackend
from tests.gateway.sources import SITE, PushSource


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
