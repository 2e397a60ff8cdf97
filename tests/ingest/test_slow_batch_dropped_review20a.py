"""review20a: a slow batch that no ingest worker had taken when its session ended is said as dropped.

debt20 (d172859) said a slow batch cut off by its session's end as still waiting, then its real end (stored, or
not stored: "dropped before a worker took it"). But the batch's future is awaited through `asyncio.wrap_future`,
whose cancellation cancels the worker's future first: a batch still queued (every worker busy with other
gateways' batches) was already cancelled when `_stored`'s `finally` ran, so the log said "that batch of 1
messages ended after N s" for a batch never stored, and the "dropped" line could not be reached.

Through the real socket and the server's real ingest workers (SQLite: one thread), kept busy by two jobs of
another gateway's kind standing in the queue, as slow batches do."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlmodel import Session
from websockets.asyncio.client import connect

from chumphae.alert.escalate import ClockOptions
from chumphae.ingest.connection import BULK, IngestOptions, workers_for
from chumphae.models import Gateway
from tests.feed.liveserver import LiveServer, live_server, recv_json
from tests.ingest.conftest import BAND, Site
from tests.ingest.test_faults19 import logged
from tests.ingest.test_gateway_socket import frame, url
from tests.ingest.test_radio_batch_debt20 import DEAF, heartbeat


@pytest.fixture
def slow_server(site: Site) -> Iterator[LiveServer]:
    with live_server(ingest_options=IngestOptions(config_check_s=5, slow_batch_s=0.3),
                     clock_options=ClockOptions(tick_s=0)) as srv:
        yield srv


def sos() -> tuple[str, str]:
    return frame("alert", {"type": "sos", "severity": "critical", "address": BAND, "patient_id": 1,
                           "t": datetime.now(UTC).isoformat(), "lat": 16.5443, "lon": 102.1001, "uncertainty_m": 20.0})


async def test_a_slow_batch_dropped_before_a_worker_took_it_is_said_dropped_not_ended(
        slow_server: LiveServer, site: Site, caplog: pytest.LogCaptureFixture) -> None:
    workers = workers_for(site.world.engine)  # the server's: SQLite, one thread, alerts first
    first, second = threading.Event(), threading.Event()
    try:
        with caplog.at_level(logging.WARNING, logger="chumphae.ingest.connection"):
            async with connect(url(slow_server), additional_headers=site.auth()) as ws:
                await recv_json(ws)  # welcome
                workers.submit(BULK, first.wait)  # the thread busy (another gateway's slow batch)
                await asyncio.sleep(0.1)
                workers.submit(BULK, second.wait)  # queued ahead of ours
                await ws.send(heartbeat(DEAF)[1])  # bulk: queued behind it
                await ws.send(sos()[1])  # urgent: the first the thread takes
                await logged(caplog, "a batch of 1 messages not stored after", 250)
                await logged(caplog, "a batch of 1 alerts not stored after", 250)
            # The gateway gone. The SOS is stored once the thread is free; its ack finds the socket closed and the
            # session ends while our heartbeat's batch is still queued behind the second job: it is dropped.
            first.set()
            await logged(caplog, "that batch of 1 messages", 250)
            said = [r.getMessage() for r in caplog.records]
            second.set()
            await asyncio.sleep(0.5)  # the thread free: a batch still queued would be stored now
    finally:
        first.set()
        second.set()
    with Session(site.world.engine) as s:
        gateway = s.get(Gateway, site.gateway_id)
        assert gateway is not None and "scanner_state" not in (gateway.health or {}), gateway.health  # not stored
    assert any("that batch of 1 alerts ended after" in m for m in said), said  # true: stored
    assert not any("that batch of 1 messages ended after" in m for m in said), said  # was: said, never stored
    assert any("that batch of 1 messages was not stored: dropped before a worker took it" in m for m in said), said
