"""faults19: the backend's side of the second fault pass (docs/gateway-protocol.md §4), through a real gateway socket."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from websockets.asyncio.client import connect

from chumphae.ingest import service as ingest_service
from chumphae.models import Alert, IngestedMessage
from tests.feed.liveserver import LiveServer, recv_json
from tests.ingest.conftest import BAND, Site
from tests.ingest.test_gateway_socket import frame, url


@contextlib.contextmanager
def held(engine: Engine, table: str, pg_sql: str | None = None) -> Iterator[None]:
    """Another session holds a lock a batch needs until the block ends: PostgreSQL's `table` locked (`LOCK TABLE
    … IN ACCESS EXCLUSIVE MODE`, as a migration or `VACUUM FULL` would; or what `pg_sql` locks), or SQLite's
    file write-locked."""
    locker = engine.connect()
    try:
        if engine.dialect.name == "sqlite":
            locker.exec_driver_sql("BEGIN EXCLUSIVE")
        else:
            locker.exec_driver_sql(pg_sql or f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
        yield
    finally:
        locker.rollback()
        locker.close()


async def logged(caplog: pytest.LogCaptureFixture, text: str, tries: int) -> None:
    """Wait (`tries` × 20 ms at most) for a log line containing `text`; the caller asserts what was said."""
    for _ in range(tries):
        if any(text in r.getMessage() for r in caplog.records):
            return
        await asyncio.sleep(0.02)


async def test_a_database_locked_by_another_program_is_said_in_the_log_and_the_sos_is_stored_once(
        server: LiveServer, site: Site, app_engine: Engine, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Fault 6: the backend's SQLite file write-locked by another program (someone's `sqlite3 backend.db`, a
    backup tool) for longer than the busy timeout. The backend retried the batch in silence (measured with the
    real 30 s timeout and a 40 s lock: not one line in its log, while the gateway timed out and reconnected).
    Now a WARNING names the database's error at the first failed try; the SOS is stored once when the lock
    goes. (The busy timeout is shortened here, on the same code path, so the test takes a second.)"""

    def short_busy(dbapi_conn: Any, _record: Any) -> None:  # after chumphae.db's own 30 s
        dbapi_conn.execute("PRAGMA busy_timeout=200")

    monkeypatch.setattr(ingest_service, "_said_waiting", [-ingest_service.SAY_WAITING_EVERY_S])  # not said lately
    event.listen(app_engine, "connect", short_busy)
    app_engine.dispose()  # new connections take it
    path = app_engine.url.database
    assert path
    locker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    body = {"type": "sos", "severity": "critical", "address": BAND, "patient_id": 1,
            "t": datetime.now(UTC).isoformat(), "lat": 16.5443, "lon": 102.1001, "uncertainty_m": 20.0}
    try:
        with caplog.at_level(logging.WARNING, logger="chumphae.ingest.service"):
            async with connect(url(server), additional_headers=site.auth()) as ws:
                await recv_json(ws)  # welcome
                locker.execute("BEGIN EXCLUSIVE")
                mid, text = frame("alert", body)
                await ws.send(text)
                await logged(caplog, "database busy or away", 100)
                locker.execute("COMMIT")
                ack = await asyncio.wait_for(recv_json(ws), 30)
        assert ack["type"] == "ack" and ack["ids"] == [mid]
        said = [r.getMessage() for r in caplog.records if "database busy or away" in r.getMessage()]
        assert said and "database is locked" in said[0]
        with Session(app_engine) as s:
            assert len(s.exec(select(IngestedMessage).where(IngestedMessage.msg_id == mid)).all()) == 1
            assert [a.type for a in s.exec(select(Alert)).all()] == ["sos"]
    finally:
        locker.close()
        event.remove(app_engine, "connect", short_busy)


async def test_a_batch_held_by_a_locked_table_is_said_while_it_waits_and_the_sos_is_stored_once(
        both_site: Site, caplog: pytest.LogCaptureFixture) -> None:
    """Fault 8: another session holds a lock the SOS's batch needs, shorter than any timeout: PostgreSQL's alert
    table locked (`LOCK TABLE alert IN ACCESS EXCLUSIVE MODE`, as a migration or `VACUUM FULL` would; measured
    45 s) or SQLite's file write-locked (under its 30 s busy timeout). The batch waited, which is right (the SOS
    was stored 0.2 s after the lock went), but the backend's log said nothing for the whole wait while the
    gateway timed out. Now the wait is said at WARNING after `slow_batch_s` (10 s; 0.3 s here), and its end."""
    from chumphae.alert.escalate import ClockOptions
    from chumphae.ingest.connection import IngestOptions
    from tests.feed.liveserver import live_server

    engine = both_site.world.engine
    body = {"type": "sos", "severity": "critical", "address": BAND, "patient_id": 1,
            "t": datetime.now(UTC).isoformat(), "lat": 16.5443, "lon": 102.1001, "uncertainty_m": 20.0}
    options = IngestOptions(config_check_s=5, slow_batch_s=0.3)
    with live_server(ingest_options=options, clock_options=ClockOptions(tick_s=0)) as server, \
            caplog.at_level(logging.WARNING, logger="chumphae.ingest.connection"):
        async with connect(url(server), additional_headers=both_site.auth()) as ws:
            await recv_json(ws)  # welcome
            with held(engine, "alert"):
                mid, text = frame("alert", body)
                await ws.send(text)
                await logged(caplog, "not stored after", 250)
            ack = await asyncio.wait_for(recv_json(ws), 30)
            await logged(caplog, "ended after", 100)
    assert ack["type"] == "ack" and ack["ids"] == [mid]
    said = [r.getMessage() for r in caplog.records if r.name == "chumphae.ingest.connection"]
    assert any("a batch of 1 alerts not stored after 0 s: the database is slow or locked" in m for m in said), said
    assert any("that batch of 1 alerts ended after" in m for m in said), said
    with Session(engine) as s:
        assert len(s.exec(select(IngestedMessage).where(IngestedMessage.msg_id == mid)).all()) == 1
        assert [a.type for a in s.exec(select(Alert)).all()] == ["sos"]


async def test_a_jump_of_the_backends_clock_makes_connected_gateways_measure_it_again(
        server: LiveServer, site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fault 9: the backend's wall clock jumps an hour ahead while gateways are connected (NTP stepping it, a
    resumed VM). A gateway measures the backend's clock only in the `welcome` (faults18), so it went on with
    the old offset until it happened to reconnect: to the backend its messages were an hour old (an SOS taken
    as late), or, for a jump back, an hour in the future (positions refused and dropped). Now the backend
    closes each gateway socket with 1012 within seconds of the jump; the gateway reconnects at once and its
    new welcome shows the clock as it is (`clock_offset_s` about +3600); an SOS after it is acked."""
    import chumphae.ingest.connection as connection
    from gateway.queue import ACKED, Outbox
    from gateway.uplink import Uplink
    from tests.gateway.fake_backend import wait_for

    real = connection.utcnow
    shift = [timedelta(0)]
    monkeypatch.setattr(connection, "utcnow", lambda: real() + shift[0])  # the backend's wall clock only
    monkeypatch.setattr(connection, "CLOCK_CHECK_S", 0.1, raising=False)
    ob = Outbox(tmp_path / "o.db")
    up = Uplink(url(server), site.token, ob, heartbeat_s=60, backoff_min_s=0.05, backoff_max_s=0.2)
    stop = asyncio.Event()
    task = asyncio.create_task(up.run(stop))
    try:
        await wait_for(lambda: up.stats.clock_offset_s is not None, timeout=20)
        assert abs(up.stats.clock_offset_s or 0) < 60 and up.stats.connects == 1
        shift[0] = timedelta(hours=1)
        await wait_for(lambda: up.stats.connects == 2, timeout=20)  # was: never (the same session went on)
        await wait_for(lambda: 3500 < (up.stats.clock_offset_s or 0) < 3700, timeout=20)
        body = {"type": "sos", "severity": "critical", "address": BAND, "patient_id": 1,
                "t": datetime.now(UTC).isoformat(), "lat": 16.5443, "lon": 102.1001, "uncertainty_m": 20.0}
        alert = ob.put("alert", body)
        up.notify()
        await wait_for(lambda: {i: st for i, _t, st in ob.all_ids()}[alert.id] == ACKED, timeout=20)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        ob.close()
