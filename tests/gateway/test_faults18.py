"""faults18: a field engineer's fault pass (docs/gateway-protocol.md), each defect it found pinned here.

Real components on loopback: the backend app served by uvicorn on a real port with a real SQLite
database (`tests.gateway.realbackend.district`), the gateway's own `Outbox` (SQLite) and `Uplink`
(WebSocket client).
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, select

from chumphae.db import set_engine
from chumphae.models import Alert, DeadLetter
from gateway.queue import ACKED, REJECTED, Outbox
from gateway.uplink import Uplink
from tests.feed.liveserver import live_server
from tests.gateway.bluez import BlueZ
from tests.gateway.fake_backend import wait_for
from tests.gateway.realbackend import BAND, district


def states(ob: Outbox) -> dict[str, int]:
    return {i: st for i, _t, st in ob.all_ids()}


def sos(patient: int, t: datetime) -> dict[str, object]:
    return {"type": "sos", "severity": "critical", "address": BAND, "patient_id": patient, "t": t.isoformat(),
            "lat": 16.5461, "lon": 102.1030, "uncertainty_m": 25.0}


async def test_clock_an_hour_ahead_still_raises_the_sos(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Fault 4: the gateway's clock jumped an hour ahead. The backend refused every message as `bad_body`
    (outside +10 min) and the gateway dropped them: the SOS pressed meanwhile was never raised. Now the
    alert is stored at the backend's time (the gateway's kept in details.gateway_t), positions are still
    refused (§3.5), and the gateway logs its clock's offset at ERROR and reports it (`clock_offset_s`)."""
    engine, patient, token = district(tmp_path / "backend.db")
    set_engine(engine)
    ob = Outbox(tmp_path / "o.db")
    ahead = datetime.now(UTC) + timedelta(hours=1)
    alert = ob.put("alert", sos(patient, ahead))
    pos = ob.put("position", {"address": BAND, "t": ahead.isoformat(), "lat": 16.5461, "lon": 102.1030,
                              "uncertainty_m": 20.0})
    import chumphae.timeutil
    import gateway.uplink as uplink_mod
    real = chumphae.timeutil.utcnow
    try:
        with live_server() as server:
            # the gateway's clock (only the uplink's: the backend in this process keeps the true one)
            uplink_mod.utcnow = lambda: real() + timedelta(hours=1)  # type: ignore[attr-defined]
            up = Uplink(f"{server.ws}/api/v1/gateway/ws", token, ob, heartbeat_s=60, backoff_min_s=0.05,
                        backoff_max_s=0.2)
            stop = asyncio.Event()
            task = asyncio.create_task(up.run(stop))
            try:
                with caplog.at_level(logging.ERROR, logger="gateway.uplink"):
                    await wait_for(lambda: states(ob)[alert.id] != 0 and states(ob)[pos.id] != 0, timeout=30)
                    await wait_for(lambda: up.stats.clock_offset_s is not None, timeout=10)
            finally:
                stop.set()
                await asyncio.wait_for(task, 30)
        assert states(ob)[alert.id] == ACKED  # was REJECTED (bad_body: outside the window)
        assert states(ob)[pos.id] == REJECTED  # a position from a broken clock is still refused, as documented
        with Session(engine) as s:
            alerts = s.exec(select(Alert).where(Alert.type == "sos")).all()
            dead = s.exec(select(DeadLetter)).all()
        assert len(alerts) == 1 and alerts[0].patient_id == patient
        assert abs((alerts[0].opened_at.replace(tzinfo=UTC) - datetime.now(UTC)).total_seconds()) < 120
        assert [d.code for d in dead] == ["bad_body"]
        assert up.stats.clock_offset_s is not None and -3700 < up.stats.clock_offset_s < -3500
        assert any("clock is +3600 s off" in r.getMessage() for r in caplog.records)
    finally:
        uplink_mod.utcnow = real  # type: ignore[attr-defined]
        ob.close()
        set_engine(None)
        engine.dispose()


async def test_revoked_token_is_said_at_error_once_and_the_outbox_waits_for_the_new_one(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Fault 5: the token is revoked while the gateway runs. The backend closes with 4001; the gateway used to
    log only websockets' words at WARNING, then `refused: HTTP 401` every retry: nothing said that it cannot
    heal without a new token. Now one ERROR line says so (and how many messages wait); the SOS queued after
    the revocation stays in the outbox and is stored once when the gateway runs with the rotated token."""
    from chumphae.auth.service import revoke_gateway, rotate_gateway_token
    from chumphae.models import Gateway, IngestedMessage

    engine, patient, token = district(tmp_path / "backend.db")
    set_engine(engine)
    ob = Outbox(tmp_path / "o.db")
    now = datetime.now(UTC)
    first = ob.put("alert", {**sos(patient, now - timedelta(seconds=5)), "type": "battery_low", "severity": "low"})
    try:
        with live_server(access_check_s=0.2) as server:
            url = f"{server.ws}/api/v1/gateway/ws"
            up = Uplink(url, token, ob, heartbeat_s=60, backoff_min_s=0.05, backoff_max_s=0.2)
            stop = asyncio.Event()
            with caplog.at_level(logging.WARNING, logger="gateway.uplink"):
                task = asyncio.create_task(up.run(stop))
                try:
                    await wait_for(lambda: states(ob)[first.id] == ACKED, timeout=30)
                    with Session(engine) as s:
                        revoke_gateway(s, gateway=s.exec(select(Gateway)).one())
                        s.commit()
                    await wait_for(lambda: up.stats.last_error == "refused: HTTP 401", timeout=30)
                    alert = ob.put("alert", sos(patient, datetime.now(UTC)))
                    await wait_for(lambda: sum("refused: HTTP 401" in r.getMessage() for r in caplog.records) >= 3)
                finally:
                    stop.set()
                    await asyncio.wait_for(task, 30)
            errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
            assert len(errors) == 1 and "4001 token revoked" in errors[0] and "kept in the outbox" in errors[0]
            assert states(ob)[alert.id] == 0  # kept, not sent, not dropped
            with Session(engine) as s:
                new = rotate_gateway_token(s, gateway=s.exec(select(Gateway)).one())
                s.commit()
            up = Uplink(url, new, ob, heartbeat_s=60, backoff_min_s=0.05, backoff_max_s=0.2)
            stop = asyncio.Event()
            task = asyncio.create_task(up.run(stop))
            try:
                await wait_for(lambda: states(ob)[alert.id] == ACKED, timeout=30)
            finally:
                stop.set()
                await asyncio.wait_for(task, 30)
        with Session(engine) as s:
            assert len(s.exec(select(IngestedMessage).where(IngestedMessage.msg_id == alert.id)).all()) == 1
            assert [a.type for a in s.exec(select(Alert).where(Alert.type == "sos")).all()] == ["sos"]
    finally:
        ob.close()
        set_engine(None)
        engine.dispose()


def test_a_gateway_started_on_a_full_disk_runs_from_memory_and_opens_its_outbox_when_space_returns(
        tmp_path: Path) -> None:
    """Fault 1: the gateway (re)started while its disk is full (a 2 MiB tmpfs filled to the last byte). It
    died at start: `save_cache` raised ENOSPC, and `Outbox()` raised `disk I/O error` (WAL cannot create its
    -shm file). Now the cache write is logged and skipped, the outbox runs from memory (`disk_full`), and when
    space returns it opens the real outbox: the message left pending before the restart and the SOS held in
    memory are both there, with unique, increasing seqs."""
    from types import SimpleNamespace

    from gateway import siteconfig
    from tests.gateway.sources import SITE
    from tests.gateway.test_disk_full import Tmpfs

    disk = Tmpfs(tmp_path / "disk", size="2m")
    path = disk.where / "outbox.sqlite3"
    try:
        ob = Outbox(path)
        before = ob.put("position", {"n": 1})
        ob.close()
        disk.fill(SimpleNamespace(path=path))  # type: ignore[arg-type]
        siteconfig.save_cache(disk.where / "config.json", siteconfig.parse(SITE))  # raised OSError (ENOSPC)
        assert not (disk.where / "config.json.tmp").exists()
        ob = Outbox(path, retry_s=0.0)  # raised sqlite3.OperationalError: disk I/O error
        try:
            assert ob.disk_full and ob.last_disk_error
            held = ob.put("alert", {"type": "sos"})
            assert [q.id for q in ob.pending(10)] == [held.id] and ob.memory_queue() == 1
            assert not ob.recover()  # still full
            disk.filler.unlink()
            assert ob.recover() and not ob.disk_full and ob.memory_queue() == 0
            assert [q.id for q in ob.pending(10)] == [held.id, before.id]  # the SOS first
            rows = {i: st for i, _t, st in ob.all_ids()}
            assert rows == {before.id: 0, held.id: 0}
            assert ob.next_seq() > max(q.seq for q in ob.pending(10))
        finally:
            ob.close()
        again = Outbox(path)
        assert {i for i, _t, _s in again.all_ids()} == {before.id, held.id}  # durable
        again.close()
    finally:
        disk.unmount()


async def test_a_frame_too_big_or_a_damaged_row_is_rejected_at_the_gateway_and_the_rest_flows(tmp_path: Path) -> None:
    """Fault 2: poison rows in the outbox, against the backend with `chumphae serve`'s own uvicorn options
    (frames up to 1 MiB). A 2 MiB frame made the backend drop the socket ("no close frame": not a close code the
    poison rule counts), every session, before any ack came back: nothing was acknowledged again, not even the
    SOS the backend had stored (34 connects in 65 s, measured). A damaged row (not JSON, its id unreadable) got
    an `error` with a null id, stayed in flight and ended the session every 30 s. Now both are rejected at the
    gateway (counted in `rejected`, kept in the outbox as rejected, never sent) and everything else is acked on
    the first connection."""
    import sqlite3
    import threading

    import uvicorn

    from chumphae.api.app import create_app
    from chumphae.cli import server_options
    from tests.feed.liveserver import LiveServer

    engine, patient, token = district(tmp_path / "backend.db")
    set_engine(engine)
    ob = Outbox(tmp_path / "o.db")
    now = datetime.now(UTC)

    def pos(i: int, **kw: object) -> tuple[str, dict[str, object], None]:
        return ("position", {"address": BAND, "t": (now - timedelta(seconds=60 - i)).isoformat(), "lat": 16.5461,
                             "lon": 102.1030, "uncertainty_m": 20.0, **kw}, None)

    huge = ob.put(*pos(0, pad="x" * (2 << 20)))
    damaged = ob.put(*pos(1))
    db = sqlite3.connect(tmp_path / "o.db")
    db.execute("UPDATE outbox SET msg=? WHERE id=?", (damaged.text[:40] + "\x00\x17garbage", damaged.id))
    db.commit()
    db.close()
    rest = [q.id for q in ob.put_many([pos(2 + i) for i in range(20)])]
    alert = ob.put("alert", sos(patient, now))
    app = create_app(manage_engine=False)
    server = LiveServer(app)
    server.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on",
                                                  **server_options()))
    server.thread = threading.Thread(target=server.server.run, daemon=True)
    server.start()
    try:
        up = Uplink(f"{server.ws}/api/v1/gateway/ws", token, ob, heartbeat_s=60, backoff_min_s=0.05,
                    backoff_max_s=0.2)
        stop = asyncio.Event()
        task = asyncio.create_task(up.run(stop))
        try:
            await wait_for(lambda: all(states(ob)[i] == ACKED for i in [*rest, alert.id]), timeout=20)
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)
        assert states(ob)[huge.id] == REJECTED and states(ob)[damaged.id] == REJECTED
        assert up.stats.rejected == 2 and up.stats.connects == 1
        with Session(engine) as s:
            assert [a.type for a in s.exec(select(Alert)).all()] == ["sos"]
    finally:
        server.stop()
        ob.close()
        set_engine(None)
        engine.dispose()


async def test_bluez_not_answering_a_stop_is_given_up_and_the_heartbeat_says_so(
        bluez: BlueZ, caplog: pytest.LogCaptureFixture) -> None:
    """Fault 4: the radio fails. BlueZ raising from StartDiscovery/StopDiscovery was handled (retried, state
    `failed`/`retrying`, back to `scanning` 0.1 s after the adapter answered again: measured). BlueZ not
    answering at all (a wedged bluetoothd; here StopDiscovery takes 4 s) held the watchdog's restart in
    `stop()` for as long, with no bound, while the heartbeat's `scanner_state` still said `scanning`. Now each
    start/stop is given up after `call_timeout_s`, said at WARNING, and the state says what is going on."""
    from gateway.scan import Scanner
    from tests.gateway.test_scan_dbus import ADDR

    scanner = Scanner("hci0", "local", watchdog_s=0.5, retry_delay_s=0.05, start_retries=3, call_timeout_s=0.5)
    stop = asyncio.Event()
    task = asyncio.create_task(scanner.run(stop, check_every_s=0.1))
    try:
        await wait_for(lambda: scanner.state == "scanning", timeout=5)
        bluez.adapter_mock().AddMethod("org.bluez.Adapter1", "StopDiscovery", "", "", "import time\ntime.sleep(4)\n")
        await wait_for(lambda: scanner.restarts == 1, timeout=5)  # the watchdog (no advert for 0.5 s)
        await asyncio.sleep(1.5)
        assert scanner.state in ("stopped", "retrying", "failed")  # was "scanning", stuck in stop() for 4 s
        assert any("scanner stop did not return" in m for m in caplog.messages)
        await asyncio.to_thread(time.sleep, 3)  # BlueZ answers again
        await wait_for(lambda: scanner.state == "scanning", timeout=15)
        bluez.adapter_mock().AddMethod("org.bluez.Adapter1", "StopDiscovery", "", "",
                                       "self.props['org.bluez.Adapter1']['Discovering'] = False\n")
        await asyncio.to_thread(bluez.advertise, ADDR, -65, {0xFFFF: bytes(22)})
        adv = await asyncio.wait_for(scanner.queue.get(), 5)
        assert adv.rssi == -65
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


def _uplink_on_clock(ws: str, token: str, ob: Outbox, now: Any) -> tuple[Uplink, Any]:
    """An uplink whose wall clock (and the radio's `BackendClock`) is `now` (the caller restores `utcnow`)."""
    import gateway.uplink as uplink_mod
    from gateway.uplink import BackendClock

    uplink_mod.utcnow = now  # type: ignore[attr-defined]
    clock = BackendClock(now=now)
    return Uplink(f"{ws}/api/v1/gateway/ws", token, ob, heartbeat_s=60, backoff_min_s=0.05, backoff_max_s=0.2,
                  clock=clock), clock


async def test_clock_an_hour_behind_does_not_file_a_new_sos_as_history(tmp_path: Path) -> None:
    """Fault 4: the gateway's clock an hour behind (a Pi without a real-time clock, booted before NTP). Its
    messages were stored an hour old; the backend's late rule then filed a new SOS, pressed minutes after the
    patient's last SOS was resolved, as history of that resolved alert: nobody was told. Now the radio's wall
    clock is the backend's (the welcome's `server_time` carried forward on the monotonic clock) while the
    gateway's own is more than 300 s off, so the SOS carries the true time and opens an alert."""
    from chumphae.models import AlertStatus

    engine, patient, token = district(tmp_path / "backend.db")
    set_engine(engine)
    now = datetime.now(UTC)
    with Session(engine) as s:
        s.add(Alert(patient_id=patient, type="sos", severity="critical", status=AlertStatus.RESOLVED,
                    opened_at=now - timedelta(minutes=20), last_triggered_at=now - timedelta(minutes=20),
                    resolved_at=now - timedelta(minutes=10)))
        s.commit()
    ob = Outbox(tmp_path / "o.db")
    import chumphae.timeutil
    import gateway.uplink as uplink_mod
    real = chumphae.timeutil.utcnow
    behind = lambda: real() - timedelta(hours=1)  # noqa: E731 - the gateway's clock
    try:
        with live_server() as server:
            up, clock = _uplink_on_clock(server.ws, token, ob, behind)
            stop = asyncio.Event()
            task = asyncio.create_task(up.run(stop))
            try:
                await wait_for(lambda: up.stats.clock_offset_s is not None, timeout=10)
                alert = ob.put("alert", sos(patient, clock()))  # stamped as the pipeline stamps it: source.wall()
                await wait_for(lambda: states(ob)[alert.id] == ACKED, timeout=30)
            finally:
                stop.set()
                await asyncio.wait_for(task, 30)
        assert abs((clock() - datetime.now(UTC)).total_seconds()) < 5
        with Session(engine) as s:
            open_ = s.exec(select(Alert).where(Alert.type == "sos", Alert.status == AlertStatus.OPEN)).all()
        assert len(open_) == 1 and not open_[0].late
    finally:
        uplink_mod.utcnow = real  # type: ignore[attr-defined]
        ob.close()
        set_engine(None)
        engine.dispose()


async def test_a_gateway_gone_before_its_welcome_leaves_no_traceback_and_no_claim(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Fault 2 (backend side): a gateway whose connection dies right after the upgrade (here: dropped at once;
    in the field, a frame over 1 MiB sent before the welcome came) made the backend's welcome send raise outside
    the session's handling: "Exception in ASGI application" with a traceback at ERROR, and the socket left
    claimed for the gateway. Now that is a plain disconnect."""
    from websockets.asyncio.client import connect

    engine, _patient, token = district(tmp_path / "backend.db")
    set_engine(engine)
    try:
        with live_server() as server, caplog.at_level(logging.ERROR):
            for _ in range(10):
                ws = await connect(f"{server.ws}/api/v1/gateway/ws",
                                   additional_headers={"Authorization": f"Bearer {token}"})
                ws.transport.abort()
            await asyncio.sleep(1.0)
            sockets = getattr(server.app.state, "gateway_sockets", None)
            assert sockets is not None and sockets.by_gateway == {}
        assert not [r for r in caplog.records if "Exception in ASGI application" in r.getMessage()]
    finally:
        set_engine(None)
        engine.dispose()


async def test_a_simulation_with_a_token_and_no_site_config_stops_as_the_radio_does(tmp_path: Path) -> None:
    """Found on the way (fault 3, the backend away when the gateway started): `--simulate` with a token, the
    backend unreachable and no cached config, ran the scenario's own built-in site and sent its bands under the
    real gateway's token: every message was refused (`bad_body`, not a band of the site: 24 dead letters in
    one run). Now it stops as the radio gateway and a replay do (§6): no site config, exit status 1."""
    import socket

    from gateway.config import GatewaySettings
    from gateway.service import run_gateway
    from gateway.simulate import scenario as scenarios

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once closed
    settings = GatewaySettings(token="gw-test-token-0123456789", backend_url=f"http://127.0.0.1:{port}",
                               queue_path=tmp_path / "o.db", config_cache=tmp_path / "none.json")
    with pytest.raises(RuntimeError, match="no site config"):
        await asyncio.wait_for(run_gateway(settings, scenario=scenarios.load("everything"), speed=50), 10)


async def test_a_clock_jump_while_connected_is_measured_again(tmp_path: Path) -> None:
    """Fault 4, the jump itself: the clock was right at the connect, then jumped an hour back while the
    session lasted. Only a welcome measured it, so the radio went on stamping messages an hour old until some
    later reconnect (hours, days). Now a jump of more than 60 s against the monotonic clock ends the session
    (nothing blamed); the next welcome measures it and the radio's clock follows the backend's again."""

    engine, _patient, token = district(tmp_path / "backend.db")
    set_engine(engine)
    ob = Outbox(tmp_path / "o.db")
    import chumphae.timeutil
    import gateway.uplink as uplink_mod
    real = chumphae.timeutil.utcnow
    jump = [timedelta(0)]

    def local() -> datetime:
        return real() + jump[0]

    try:
        with live_server() as server:
            up, clock = _uplink_on_clock(server.ws, token, ob, local)
            stop = asyncio.Event()
            task = asyncio.create_task(up.run(stop))
            try:
                await wait_for(lambda: up.stats.clock_offset_s is not None, timeout=10)
                assert up.stats.connects == 1 and abs(up.stats.clock_offset_s or 0) < 5
                jump[0] = timedelta(hours=-1)
                await wait_for(lambda: (up.stats.clock_offset_s or 0) > 3500, timeout=10)
            finally:
                stop.set()
                await asyncio.wait_for(task, 30)
        assert up.stats.connects == 2 and up.stats.deferred == 0
        assert abs((clock() - real()).total_seconds()) < 5  # the radio's clock: the backend's, not ours
    finally:
        uplink_mod.utcnow = real  # type: ignore[attr-defined]
        ob.close()
        set_engine(None)
        engine.dispose()
