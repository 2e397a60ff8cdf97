"""The uplink's alert socket (docs/gateway-protocol.md §3.3) against a real WebSocket server: alerts go on the
socket the backend's welcome names as well as on the main one; they never wait for it (down, or up and slow)."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

from gateway.queue import Outbox
from gateway.uplink import Uplink
from tests.gateway.fake_backend import ALERT_PATH, MAIN_PATH, FakeBackend, wait_for

TOKEN = "gw-test-token-0123456789"


def _closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _run(backend: FakeBackend, ob: Outbox, **kw: object) -> tuple[Uplink, asyncio.Event, asyncio.Task[None]]:
    up = Uplink(backend.url.replace("http", "ws") + MAIN_PATH, TOKEN, ob, heartbeat_s=60, backoff_min_s=0.05,
                backoff_max_s=0.2, **kw)  # type: ignore[arg-type]
    stop = asyncio.Event()
    return up, stop, asyncio.create_task(up.run(stop))


async def test_an_alert_goes_on_the_alert_socket_the_welcome_names_and_is_acked_there(tmp_path: Path) -> None:
    """The main socket is busy (it holds its acks): the SOS is acked on the alert socket, stored once,
    and the positions still go on the main socket only."""
    backend = FakeBackend(TOKEN)
    await backend.start()
    backend.alert_socket = {"port": backend.port, "path": ALERT_PATH}
    backend.hold_acks = {"position", "alert"}
    ob = Outbox(tmp_path / "o.db")
    ob.put_many([("position", {"n": i}, None) for i in range(3)])
    up, stop, task = await _run(backend, ob)
    try:
        await wait_for(lambda: up.stats.alert_connected, timeout=10)
        sos = ob.put("alert", {"type": "sos"})
        up.notify()
        await wait_for(lambda: ob.depth()[1] == 0, timeout=10)  # no alert left unacked
        assert backend.by_path[(ALERT_PATH, sos.id)] == 1
        assert up.stats.alert_acked == 1 and up.stats.alert_sent == 1
        assert up.lane_health() == {"connected": True, "connects": 1, "sent": 1, "acked": 1, "last_error": None}
        assert len(backend.of_type("alert")) == 1  # stored once whatever socket it came on
        assert not any(path == ALERT_PATH and mid != sos.id for path, mid in backend.by_path)
        assert ob.depth()[0] == 3  # the positions wait for the main socket's acks
        await backend.release_acks()
        await wait_for(lambda: ob.depth()[0] == 0)
        assert backend.by_path[(MAIN_PATH, sos.id)] == 1  # it went on the main socket too
    finally:
        stop.set()
        await task
        await backend.stop()
        ob.close()


async def test_an_alert_does_not_wait_for_an_alert_socket_that_is_down(tmp_path: Path) -> None:
    """The welcome names an alert socket where nothing listens: the SOS is sent and acked on the main socket
    at once, while the alert socket keeps being retried."""
    backend = FakeBackend(TOKEN)
    await backend.start()
    backend.alert_socket = {"port": _closed_port(), "path": ALERT_PATH}
    ob = Outbox(tmp_path / "o.db")
    up, stop, task = await _run(backend, ob)
    try:
        await wait_for(lambda: up.stats.connected and up.stats.alert_last_error is not None, timeout=10)
        sos = ob.put("alert", {"type": "sos"})
        up.notify()
        await wait_for(lambda: ob.depth() == (0, 0), timeout=5)
        assert backend.by_path[(MAIN_PATH, sos.id)] == 1 and up.stats.alert_acked == 0
        assert not up.stats.alert_connected and up.stats.alert_connects == 0
        health = up.lane_health()  # the heartbeat says the alert socket is down, and why
        assert health is not None and health["connected"] is False and health["connects"] == 0
        assert health["sent"] == 0 and "Error" in str(health["last_error"])
    finally:
        stop.set()
        await task
        await backend.stop()
        ob.close()


async def test_an_alert_does_not_wait_for_an_alert_socket_that_is_up_but_slow(tmp_path: Path) -> None:
    """The alert socket takes the SOS but never acks it (its processes stalled): the main socket's ack is enough."""
    backend = FakeBackend(TOKEN)
    await backend.start()
    backend.alert_socket = {"port": backend.port, "path": ALERT_PATH}
    backend.hold_alert_lane = True
    ob = Outbox(tmp_path / "o.db")
    up, stop, task = await _run(backend, ob)
    try:
        await wait_for(lambda: up.stats.alert_connected, timeout=10)
        sos = ob.put("alert", {"type": "sos"})
        up.notify()
        await wait_for(lambda: ob.depth() == (0, 0), timeout=5)
        assert backend.by_path[(ALERT_PATH, sos.id)] == 1 and backend.by_path[(MAIN_PATH, sos.id)] == 1
        assert up.stats.alert_acked == 0 and len(backend.of_type("alert")) == 1
    finally:
        stop.set()
        await task
        await backend.stop()
        ob.close()


async def test_off_opens_no_alert_socket(tmp_path: Path) -> None:
    backend = FakeBackend(TOKEN)
    await backend.start()
    backend.alert_socket = {"port": backend.port, "path": ALERT_PATH}
    ob = Outbox(tmp_path / "o.db")
    up, stop, task = await _run(backend, ob, alert_url="off")
    try:
        sos = ob.put("alert", {"type": "sos"})
        up.notify()
        await wait_for(lambda: ob.depth() == (0, 0), timeout=5)
        assert backend.by_path[(ALERT_PATH, sos.id)] == 0 and up.stats.alert_connects == 0
        assert up.lane_health() is None  # no alert socket: the heartbeat says null
    finally:
        stop.set()
        await task
        await backend.stop()
        ob.close()
