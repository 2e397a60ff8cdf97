"""faults19: the backend's side of the second fault pass (docs/gateway-protocol.md §4), through a real gateway socket."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from datetime import UTC, datetime
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
                for _ in range(100):
                    if any("database busy or away" in r.getMessage() for r in caplog.records):
                        break
                    await asyncio.sleep(0.02)
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
            locker = engine.connect()
            try:
                if engine.dialect.name == "sqlite":
                    locker.exec_driver_sql("BEGIN EXCLUSIVE")
                else:
                    locker.exec_driver_sql("LOCK TABLE alert IN ACCESS EXCLUSIVE MODE")
                mid, text = frame("alert", body)
                await ws.send(text)
                for _ in range(250):
                    if any("not stored after" in r.getMessage() for r in caplog.records):
                        break
                    await asyncio.sleep(0.02)
            finally:
                locker.rollback()
                locker.close()
            ack = await asyncio.wait_for(recv_json(ws), 30)
            for _ in range(100):
                if any("ended after" in r.getMessage() for r in caplog.records):
                    break
                await asyncio.sleep(0.02)
    assert ack["type"] == "ack" and ack["ids"] == [mid]
    said = [r.getMessage() for r in caplog.records if r.name == "chumphae.ingest.connection"]
    assert any("a batch of 1 alerts not stored after 0 s: the database is slow or locked" in m for m in said), said
    assert any("that batch of 1 alerts ended after" in m for m in said), said
    with Session(engine) as s:
        assert len(s.exec(select(IngestedMessage).where(IngestedMessage.msg_id == mid)).all()) == 1
        assert [a.type for a in s.exec(select(Alert)).all()] == ["sos"]
