"""Uplink against a real WebSocket server: auth, ack, dedupe, backend killed, gateway restarted."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.config import GatewaySettings
from gateway.queue import Outbox
from gateway.service import run_gateway
from gateway.simulate import scenario as scenarios
from gateway.uplink import Uplink
from tests.gateway.fake_backend import FakeBackend, wait_for

TOKEN = "gw-test-token-0123456789"
ROOT = Path(__file__).resolve().parents[2]


def settings(tmp_path: Path, backend: FakeBackend, **kw: object) -> GatewaySettings:
    return GatewaySettings(
        backend_url=backend.url, token=TOKEN, queue_path=tmp_path / "outbox.db",
        config_cache=tmp_path / "config.json", heartbeat_s=1.0, backoff_min_s=0.1, backoff_max_s=0.5,
        ack_timeout_s=5.0, **kw,  # type: ignore[arg-type]
    )


def outbox_rows(path: Path) -> list[tuple[str, str, int]]:
    db = sqlite3.connect(path)
    try:
        return [tuple(r) for r in db.execute("SELECT id, type, state FROM outbox ORDER BY seq")]  # type: ignore[misc]
    finally:
        db.close()


def assert_exactly_once(rows: list[tuple[str, str, int]], backend: FakeBackend) -> None:
    queued = {i for i, t, _s in rows if t in ("alert", "position", "reading")}
    stored = {i for i, m in backend.stored.items() if m["type"] in ("alert", "position", "reading")}
    assert queued == stored  # nothing lost, nothing invented
    assert all(s == 1 for _i, _t, s in rows)  # every message acked
    assert len(backend.stored) == len(set(backend.stored))


async def test_alerts_go_first_and_acks_empty_the_outbox(tmp_path: Path) -> None:
    backend = FakeBackend(TOKEN)
    await backend.start()
    ob = Outbox(tmp_path / "o.db")
    ob.put_many([("position", {"n": i}, None) for i in range(20)])
    alert = ob.put("alert", {"type": "sos"})
    up = Uplink(backend.url.replace("http", "ws") + "/api/v1/gateway/ws", TOKEN, ob, max_in_flight=5, heartbeat_s=60)
    stop = asyncio.Event()
    task = asyncio.create_task(up.run(stop))
    try:
        await wait_for(lambda: ob.depth()[0] == 0)
        order = [m["type"] for m in backend.stored.values() if m["type"] != "heartbeat"]
        assert order[:2] == ["hello", "alert"] and backend.stored[alert.id]["body"] == {"type": "sos"}
        assert len(backend.of_type("position")) == 20
    finally:
        stop.set()
        await task
        await backend.stop()
        ob.close()


async def test_an_alert_does_not_wait_for_room_in_a_full_window(tmp_path: Path) -> None:
    """A busy backend holds its acks with a full window of positions in flight: SOS alerts queued then leave at
    once, up to `alert_room` beyond the window (they waited for the next ack before), and the positions still
    keep to the window."""
    backend = FakeBackend(TOKEN)
    backend.hold_acks = {"position", "alert"}
    await backend.start()
    ob = Outbox(tmp_path / "o.db")
    ob.put_many([("position", {"n": i}, None) for i in range(12)])
    up = Uplink(backend.url.replace("http", "ws") + "/api/v1/gateway/ws", TOKEN, ob, max_in_flight=5, alert_room=2,
                heartbeat_s=60)
    stop = asyncio.Event()
    task = asyncio.create_task(up.run(stop))
    try:
        await wait_for(lambda: len(backend.of_type("position")) == 5)
        sos = [ob.put("alert", {"type": "sos", "n": i}) for i in range(3)]
        up.notify()
        await wait_for(lambda: len(backend.of_type("alert")) == 2, timeout=5)
        await asyncio.sleep(0.3)
        # two alerts beyond the window (alert_room), the third waits for an ack like the positions
        assert {m["id"] for m in backend.of_type("alert")} == {sos[0].id, sos[1].id}
        assert len(backend.of_type("position")) == 5
        await backend.release_acks()
        await wait_for(lambda: ob.depth()[0] == 0)
        assert len(backend.of_type("position")) == 12 and len(backend.of_type("alert")) == 3
    finally:
        stop.set()
        await task
        await backend.stop()
        ob.close()


async def test_wrong_token_is_refused_and_nothing_leaves(tmp_path: Path) -> None:
    backend = FakeBackend(TOKEN)
    await backend.start()
    ob = Outbox(tmp_path / "o.db")
    ob.put("alert", {"type": "sos"})
    up = Uplink(backend.url.replace("http", "ws") + "/api/v1/gateway/ws", "wrong", ob, backoff_min_s=0.05, backoff_max_s=0.1)
    stop = asyncio.Event()
    task = asyncio.create_task(up.run(stop))
    try:
        await wait_for(lambda: backend.refused >= 2)
        assert ob.depth() == (1, 1) and not backend.stored
        assert up.stats.last_error == "refused: HTTP 401"
    finally:
        stop.set()
        await task
        await backend.stop()
        ob.close()


async def test_malformed_message_gets_error_and_connection_stays(tmp_path: Path) -> None:
    backend = FakeBackend(TOKEN)
    await backend.start()
    ob = Outbox(tmp_path / "o.db")
    bad = ob.put("gossip", {"x": 1})  # a type the backend does not know
    good = ob.put("position", {"n": 1})
    up = Uplink(backend.url.replace("http", "ws") + "/api/v1/gateway/ws", TOKEN, ob)
    stop = asyncio.Event()
    task = asyncio.create_task(up.run(stop))
    try:
        await wait_for(lambda: ob.depth()[0] == 0)
        assert backend.errors == [{"id": bad.id, "code": "unknown_type"}]
        assert good.id in backend.stored and up.stats.rejected == 1 and up.stats.connects == 1
    finally:
        stop.set()
        await task
        await backend.stop()
        ob.close()


@pytest.mark.slow
async def test_backend_killed_mid_scenario_every_message_once(tmp_path: Path) -> None:
    scen = scenarios.load("everything")
    backend = FakeBackend(TOKEN, config={})
    await backend.start()
    s = settings(tmp_path, backend)
    stop = asyncio.Event()
    task = asyncio.create_task(run_gateway(s, scenario=scen, speed=40.0, stop=stop, exit_when_done=True))
    await wait_for(lambda: len(backend.of_type("position")) >= 5)
    await backend.stop()  # the backend goes away, for real, mid-scenario
    down_at = len(backend.stored)
    await asyncio.sleep(2.5)
    assert len(backend.stored) == down_at
    await backend.start()  # same port
    gw = await asyncio.wait_for(task, 60)
    rows = outbox_rows(s.queue_path)
    assert_exactly_once(rows, backend)
    alerts = {m["body"]["type"] for m in backend.of_type("alert")}
    assert {"sos", "fall", "band_removed", "battery_low", "left_coverage"} <= alerts
    assert gw.uplink is not None and gw.uplink.stats.connects >= 2
    # alerts queued while the backend was away went first when it came back (none waited behind positions)
    assert len(backend.of_type("alert")) == len([r for r in rows if r[1] == "alert"])


@pytest.mark.slow
async def test_gateway_killed_and_restarted_mid_scenario_every_message_once(tmp_path: Path) -> None:
    backend = FakeBackend(TOKEN, config={})
    await backend.start()
    s = settings(tmp_path, backend)
    env = {**os.environ, "GATEWAY_BACKEND_URL": backend.url, "GATEWAY_TOKEN": TOKEN,
           "GATEWAY_QUEUE_PATH": str(s.queue_path), "GATEWAY_CONFIG_CACHE": str(s.config_cache),
           "GATEWAY_HEARTBEAT_S": "1", "GATEWAY_BACKOFF_MIN_S": "0.1", "GATEWAY_LOG_LEVEL": "WARNING"}
    cmd = [sys.executable, "-m", "gateway.cli", "--simulate", "everything", "--speed", "40", "--exit-when-done"]
    errlog = tmp_path / "gateway-1.log"  # a file, not a pipe nobody reads: a full pipe would block the gateway
    with errlog.open("wb") as err1:
        proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err1)
    try:
        await wait_for(lambda: len(backend.of_type("alert")) >= 1 or proc.poll() is not None, timeout=60)
        assert proc.poll() is None, errlog.read_text(errors="replace")[-2000:]
        await backend.stop()  # so that some messages are certainly unacked when the gateway dies
        await asyncio.sleep(1.0)
        proc.send_signal(signal.SIGKILL)  # no goodbye, no flush
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    before = outbox_rows(s.queue_path)
    assert any(st == 0 for _i, _t, st in before), "nothing was pending at the kill: the test proves nothing"
    await backend.start()
    # the backend runs in this event loop: the second gateway must not block it
    proc2 = await asyncio.create_subprocess_exec(*cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _out, err = await asyncio.wait_for(proc2.communicate(), 120)
    assert proc2.returncode == 0, err.decode()[-2000:]
    after = outbox_rows(s.queue_path)
    assert {r[0] for r in before} <= {r[0] for r in after}
    assert_exactly_once(after, backend)
    # two runs of the scenario: two SOS alerts, each stored once
    assert [m["body"]["type"] for m in backend.of_type("alert")].count("sos") == 2
    json.dumps(list(backend.stored.values()))  # everything stored is plain JSON
    await backend.stop()
