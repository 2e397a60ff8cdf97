"""debt20: what the backend logs for a batch still in the database when its gateway socket has closed (1012).

A batch slower than `slow_batch_s` is said at WARNING, and again when it ends (faults19). When the socket's session
ends while such a batch still waits (the backend's clock jumped: closed with 1012, and the other lane's late ack
found the socket closed), its processor is cancelled, and "that batch … ended after N s" was logged although the
batch had not ended: it was still waiting for the database, and was stored after that line, unacked (the gateway
sends it again; stored once). PostgreSQL only: SQLite's single ingest thread cannot store one lane's batch while
the other's waits."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.engine import Engine
from websockets.asyncio.client import connect

from chumphae.alert.escalate import ClockOptions
from chumphae.ingest.connection import IngestOptions
from tests.feed.liveserver import live_server, recv_json
from tests.ingest.conftest import BAND, Site
from tests.ingest.test_faults19 import held, logged
from tests.ingest.test_gateway_socket import frame, url
from tests.ingest.test_lost_connection import pg_site  # noqa: F401  (the fixture)
from tests.ingest.test_radio_batch_debt20 import DEAF, heartbeat

pytestmark = pytest.mark.postgres


def sos() -> tuple[str, str]:
    return frame("alert", {"type": "sos", "severity": "critical", "address": BAND, "patient_id": 1,
                           "t": datetime.now(UTC).isoformat(), "lat": 16.5443, "lon": 102.1001, "uncertainty_m": 20.0})


@pytest.fixture
def clock_jump(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[timedelta]]:
    """The backend's wall clock (chumphae.ingest.connection's), shifted by what the test puts in the list."""
    import chumphae.ingest.connection as connection

    real = connection.utcnow
    shift = [timedelta(0)]
    monkeypatch.setattr(connection, "utcnow", lambda: real() + shift[0])
    monkeypatch.setattr(connection, "CLOCK_CHECK_S", 0.1)
    yield shift


async def test_a_slow_batch_cut_off_by_a_closed_socket_is_not_said_to_have_ended(
        pg_site: Site, clock_jump: list[timedelta], caplog: pytest.LogCaptureFixture) -> None:  # noqa: F811
    engine: Engine = pg_site.world.engine
    options = IngestOptions(config_check_s=5, slow_batch_s=0.3)
    with live_server(ingest_options=options, clock_options=ClockOptions(tick_s=0)) as server, \
            caplog.at_level(logging.WARNING, logger="chumphae.ingest.connection"):
        async with connect(url(server), additional_headers=pg_site.auth()) as ws:
            await recv_json(ws)  # welcome
            for mid, text in (sos(), heartbeat(DEAF)):  # each lane has read its gateway's site
                await ws.send(text)
                assert (await recv_json(ws))["ids"] == [mid]
            # The heartbeat's batch waits for the gateway row (its update; an alert's reference to it does not wait).
            with held(engine, "gateway", f"SELECT id FROM gateway WHERE id = {pg_site.gateway_id} FOR NO KEY UPDATE"):
                with held(engine, "alert"):  # the SOS's for the alert table
                    await ws.send(heartbeat(DEAF)[1])
                    await ws.send(sos()[1])
                    await logged(caplog, "a batch of 1 messages not stored after", 250)
                    await logged(caplog, "a batch of 1 alerts not stored after", 250)
                    clock_jump[0] = timedelta(hours=1)  # closed with 1012 within 0.1 s
                    await logged(caplog, "closing with 1012", 250)
                # The SOS is stored; its ack finds the socket closed; the session ends while the heartbeat waits.
                await logged(caplog, "that batch of 1 alerts ended after", 250)
                await logged(caplog, "that batch of 1 messages", 250)
                while_held = [r.getMessage() for r in caplog.records]
            await logged(caplog, "that batch of 1 messages was stored after", 250)
    said = [r.getMessage() for r in caplog.records]
    assert any("closing with 1012" in m for m in while_held), said
    assert any("that batch of 1 alerts ended after" in m for m in while_held), said  # true: it had
    assert not any("that batch of 1 messages ended after" in m for m in while_held), said  # was: said, still held
    assert any("gateway gw-nong-phai-1: that batch of 1 messages still waits for the database after" in m
               and "will not be acked" in m for m in while_held), said
    assert any("that batch of 1 messages was stored after" in m for m in said), said  # its real end, said
    assert not any("storing failed" in m for m in said), said
