"""One gateway's WebSocket session (protocol §3): read frames, store in batches, ack after commit.

connect → `welcome` → loop: take every frame waiting (up to `batch_max`),
answer malformed ones with `error` at once, store the rest in one
transaction (a worker thread), then `ack` their ids. A database failure acks
nothing and closes the socket (1011): the gateway keeps its outbox and
re-sends after reconnecting. A second connection of the same gateway closes
the older one (4008). Every few seconds the site configuration's ETag is
compared, and `config_changed` sent when it moved.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy.engine import Engine
from sqlmodel import Session
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from chumphae.deliver.notify import dispatch
from chumphae.ingest import envelope, siteconfig
from chumphae.ingest.envelope import Message, Rejection
from chumphae.ingest.service import BatchResult, ingest_batch
from chumphae.timeutil import utcnow

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class IngestOptions:
    batch_max: int = 256  # the gateway keeps at most 256 in flight
    inbox_max: int = 1024  # frames read ahead of storage; then the socket stops reading
    config_check_s: float = 10.0


@dataclass
class IngestCounters:
    """This process's counts since start (frames, stored, duplicates, rejected by code)."""

    frames: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: Counter[str] = field(default_factory=Counter)


class GatewaySockets:
    """The live gateway sockets of this process: one per gateway."""

    def __init__(self) -> None:
        self.by_gateway: dict[int, WebSocket] = {}
        self.counters = IngestCounters()

    async def claim(self, gateway_id: int, ws: WebSocket) -> None:
        older = self.by_gateway.get(gateway_id)
        self.by_gateway[gateway_id] = ws
        if older is not None and older.application_state == WebSocketState.CONNECTED:
            with contextlib.suppress(Exception):
                await older.close(code=4008, reason="newer connection for this gateway")

    def release(self, gateway_id: int, ws: WebSocket) -> None:
        if self.by_gateway.get(gateway_id) is ws:
            del self.by_gateway[gateway_id]


def _store(engine: Engine, gateway_id: int, messages: list[Message]) -> BatchResult:
    with Session(engine, expire_on_commit=False) as session:
        result = ingest_batch(session, gateway_id=gateway_id, messages=messages)
        session.commit()
    dispatch(engine, result.changes)
    return result


def _etag(engine: Engine, gateway_id: int) -> str:
    with Session(engine) as session:
        return siteconfig.config_and_etag(session, gateway_id)[1]


_locks: dict[int, asyncio.Lock] = {}


async def _send(ws: WebSocket, frame: dict[str, object]) -> None:
    """One writer at a time per socket (the config watcher and the acks share it)."""
    lock = _locks.setdefault(id(ws), asyncio.Lock())
    async with lock:
        await ws.send_text(json.dumps(frame, ensure_ascii=False))


async def serve(ws: WebSocket, *, engine: Engine, gateway_id: int, slug: str, site: str,
                sockets: GatewaySockets, options: IngestOptions) -> None:
    await ws.accept()
    await sockets.claim(gateway_id, ws)
    etag = await asyncio.to_thread(_etag, engine, gateway_id)
    await _send(ws, {"type": "welcome", "gateway_id": slug, "site_id": site, "config_etag": etag,
                     "server_time": utcnow().isoformat()})
    inbox: asyncio.Queue[str | None] = asyncio.Queue(options.inbox_max)
    reader = asyncio.create_task(_read(ws, inbox))
    watcher = asyncio.create_task(_watch_config(ws, engine, gateway_id, etag, options.config_check_s))
    try:
        await _process(ws, inbox, engine=engine, gateway_id=gateway_id, counters=sockets.counters,
                       options=options)
    except WebSocketDisconnect:
        pass
    except Exception:
        log.exception("gateway %s: storing failed; closing so it re-sends", slug)
        with contextlib.suppress(Exception):
            await ws.close(code=1011)
    finally:
        for task in (reader, watcher):
            task.cancel()
        await asyncio.gather(reader, watcher, return_exceptions=True)
        sockets.release(gateway_id, ws)
        _locks.pop(id(ws), None)


async def _read(ws: WebSocket, inbox: asyncio.Queue[str | None]) -> None:
    try:
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                break
            text = message.get("text")
            if text is None and message.get("bytes") is not None:
                text = message["bytes"].decode("utf-8", "replace")
            await inbox.put(text or "")
    finally:
        await inbox.put(None)


async def _process(ws: WebSocket, inbox: asyncio.Queue[str | None], *, engine: Engine, gateway_id: int,
                   counters: IngestCounters, options: IngestOptions) -> None:
    while True:
        frames = [await inbox.get()]
        while len(frames) < options.batch_max and not inbox.empty():
            frames.append(inbox.get_nowait())
        closed = None in frames
        messages: list[Message] = []
        for text in frames:
            if text is None:
                break
            counters.frames += 1
            parsed = envelope.parse(text)
            if isinstance(parsed, Rejection):
                await _reject(ws, parsed, counters)
            else:
                messages.append(parsed)
        if messages:
            result = await asyncio.to_thread(_store, engine, gateway_id, messages)
            counters.stored += result.stored
            counters.duplicates += result.duplicates
            for rejection in result.rejected:
                await _reject(ws, rejection, counters)
            if result.acked and not closed:
                await _send(ws, {"type": "ack", "ids": result.acked})
        if closed:
            return


async def _reject(ws: WebSocket, r: Rejection, counters: IngestCounters) -> None:
    counters.rejected[r.code] += 1
    log.warning("gateway message %s rejected: %s (%s)", r.id, r.code, r.message)
    await _send(ws, {"type": "error", "id": r.id, "code": r.code, "message": r.message})


async def _watch_config(ws: WebSocket, engine: Engine, gateway_id: int, etag: str, every_s: float) -> None:
    while True:
        await asyncio.sleep(every_s)
        now = await asyncio.to_thread(_etag, engine, gateway_id)
        if now != etag:
            etag = now
            await _send(ws, {"type": "config_changed", "etag": etag})
