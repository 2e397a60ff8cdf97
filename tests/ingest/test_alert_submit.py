"""An alert read while its connection has no alert in store is handed to the workers by the reader itself.

The reader and the two processors of one gateway connection (`chumphae.ingest.connection._Session`) run on a
real event loop here; the socket is a list of real frames and the workers a recorder that holds each job
until the test lets it finish, so what is submitted when is seen exactly."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import create_engine

from chumphae.ingest import connection
from chumphae.ingest.connection import URGENT, IngestCounters, IngestOptions, _Session
from chumphae.ingest.envelope import Message
from chumphae.ingest.service import BatchResult


class FramesSocket:
    """`receive()` hands out the frames given, then waits until `close()`."""

    def __init__(self) -> None:
        self.frames: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.sent: list[dict[str, Any]] = []

    def push(self, text: str) -> None:
        self.frames.put_nowait({"type": "websocket.receive", "text": text})

    def close(self) -> None:
        self.frames.put_nowait({"type": "websocket.disconnect"})

    async def receive(self) -> dict[str, Any]:
        return await self.frames.get()

    async def send_text(self, text: str) -> None:
        self.sent.append(json.loads(text))


class HeldWorkers:
    """Records each submitted job (priority, messages) and runs it only when the test says so."""

    def __init__(self) -> None:
        self.jobs: list[tuple[int, list[str], Callable[[], Any], Future[Any]]] = []

    def submit(self, priority: int, fn: Callable[[], Any]) -> Future[Any]:
        items = fn.args[3] if hasattr(fn, "args") else []  # type: ignore[attr-defined]  # _parse_and_store's
        fut: Future[Any] = Future()
        self.jobs.append((priority, [i.id for i in items if isinstance(i, Message)], fn, fut))
        return fut

    def finish(self, n: int) -> None:
        """Complete job n as stored: every message acked."""
        _p, ids, _fn, fut = self.jobs[n]
        fut.set_result(([], BatchResult(acked=list(ids), stored=len(ids))))


def sos(address: str = "C0:FF:EE:00:00:01") -> tuple[str, str]:
    mid, t = str(uuid.uuid4()), datetime.now(UTC).isoformat()
    body = {"type": "sos", "severity": "critical", "address": address, "patient_id": 1, "t": t, "lat": 16.5,
            "lon": 102.1, "uncertainty_m": 15.0, "match": None, "details": {}}
    return mid, json.dumps({"id": mid, "type": "alert", "t": t, "seq": 0, "body": body})


def session(ws: FramesSocket, workers: HeldWorkers) -> _Session:
    s = _Session(ws, create_engine("sqlite://"), 1, IngestCounters(), IngestOptions())  # type: ignore[arg-type]
    s.workers = workers  # type: ignore[assignment]
    return s


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_the_reader_submits_an_alert_itself_when_none_is_ahead() -> None:
    """Without its processor running at all, the reader's alert is already with the workers (on main it
    waited in the queue for the processor's next step of the event loop)."""
    ws, workers = FramesSocket(), HeldWorkers()
    s = session(ws, workers)
    mid, text = sos()
    ws.push(text)
    reader = asyncio.create_task(s.read())
    await settle()
    assert [(p, ids) for p, ids, _f, _u in workers.jobs] == [(URGENT, [mid])]
    ws.close()
    await reader


async def test_alerts_read_while_one_is_stored_wait_and_go_together_in_order() -> None:
    """One urgent job per connection at a time: alerts read during it are stored after it, together, in the
    order read; once the connection is idle again the reader submits the next itself; every one acked."""
    ws, workers = FramesSocket(), HeldWorkers()
    s = session(ws, workers)
    reader = asyncio.create_task(s.read())
    alerts = asyncio.create_task(s.process(s.alerts, URGENT))
    (a, ta), (b, tb), (c, tc), (d, td) = sos(), sos(), sos(), sos()
    ws.push(ta)
    await settle()
    ws.push(tb)
    ws.push(tc)
    await settle()
    assert [ids for _p, ids, _f, _u in workers.jobs] == [[a]]  # b and c wait for a
    workers.finish(0)
    await settle()
    assert [ids for _p, ids, _f, _u in workers.jobs] == [[a], [b, c]]
    workers.finish(1)
    await settle()
    ws.push(td)
    await settle()
    assert [ids for _p, ids, _f, _u in workers.jobs] == [[a], [b, c], [d]]
    workers.finish(2)
    await settle()
    assert [f["ids"] for f in ws.sent if f["type"] == "ack"] == [[a], [b, c], [d]]
    ws.close()
    await asyncio.wait_for(asyncio.gather(reader, alerts), 5)
    connection._locks.pop(id(ws), None)
