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
