"""One gateway's WebSocket session (protocol §3): read frames, store in batches, ack after commit.

connect → `welcome` → a reader takes every frame as it arrives and only
routes it: a frame whose head names a position, reading, heartbeat or hello
as a gateway writes it (`envelope.route`) goes to the bulk queue undecoded;
any other is decoded, alerts are validated at once and go to their own queue
(a malformed one is answered with `error` and kept as a dead letter with the
next batch), the rest go to the bulk queue; so the socket is drained at once
and an alert never waits in the socket behind positions still to be
validated. Two processors drain the queues: each takes every frame waiting
(up to `batch_max`) and, on the ingest workers, validates the bulk frames
(refused ones answered with `error`, kept as dead letters) and stores the
messages in one transaction, then `ack`s their ids. The bulk processor first
waits up to `bulk_linger_s` for the frames queued when its last ack left plus
as many as that ack released (a gateway with a backlog refills its window at
once), so batches stay full instead of alternating between part-windows.
Alerts are submitted to the workers ahead of any waiting bulk batch, so an SOS
never waits behind a backlog of positions (at most behind one batch being
written).

A database that cannot be reached or used acks nothing and closes the socket
with 1013 (try again later): the gateway keeps its outbox and re-sends after
its back-off. A message that breaks our validating or storing code is not the
database: it alone is answered `unstorable` and kept as a dead letter, and the
rest of its batch is stored and acked. A second connection of the same gateway closes the older one
(4008). The site configuration's version (`siteconfig.version`, one row the
database bumps on every change the configuration reads) is read every
`config_check_s` (each connection at its own random phase); only when it moved
is the document built (the site's part shared between the gateways of a site,
once per version) and `config_changed` sent if the ETag moved.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import itertools
import logging
import queue
import random
import sys
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import msgspec
import orjson
from sqlalchemy.engine import Engine
from sqlmodel import Session
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from chumphae.deliver.notify import dispatch
from chumphae.ingest import envelope, siteconfig
from chumphae.ingest.envelope import Message, Rejection
from chumphae.ingest.service import UNSTORABLE, BatchResult, IngestState, Unavailable, matcher, say_unstorable, store
from chumphae.timeutil import utcnow

log = logging.getLogger(__name__)
T = TypeVar("T")

URGENT, BULK = 0, 1  # worker priorities: alerts first
# The interpreter lock is handed to a waiting thread after this long (Python's default: 5 ms). Each of an
# alert's database round trips ends with its thread waiting for the lock while the event loop and the bulk
# threads compute; at 5 ms per hand-over a dozen round trips cost hundreds of milliseconds under load.
SWITCH_INTERVAL_S = 0.0005
CLOCK_JUMP_S = 60.0  # this process's wall clock moved this far against its monotonic one: gateways measure again
CLOCK_CHECK_S = 2.0
LINGER_STEP_S = 0.001  # how often a lingering bulk batch looks for more frames
# The cyclic garbage collector's first threshold (Python's default: 700 container objects allocated net). Under
# ingest load a batch's frames, messages and rows live across a few awaits, so at 700 they survive two young
# collections, reach the oldest generation and make it due every few seconds: full collections of the whole
# heap were ~17 % of the backend's CPU under scripts/bench_ingest.py (1.7 s of 9.7, gc.callbacks with thread
# time). At 50,000 the young ones die of their reference counts before a collection sees them: 0.15 s.
# Reference counting still frees everything not in a cycle at once; only cycles wait for a collection.
GC_THRESHOLD0 = 50_000


@dataclass(frozen=True, slots=True)
class IngestOptions:
    batch_max: int = 256  # the gateway keeps at most 256 in flight
    inbox_max: int = 1024  # frames read ahead of storage; then the socket stops reading
    # A bulk batch waits up to this long for the frames the gateway sends in place of those just acked
    # (it keeps at most 256 unacked: after an ack of k it sends up to k more at once), on top of those
    # already queued. Without it the first of them was taken alone, and batches alternated between a few
    # frames and the rest; counting only the k, two part-windows went round (a mean of ~177 of 256).
    bulk_linger_s: float = 0.025  # 10 ms: batches of ~160 under load; 25 ms: ~200 (docs/performance.md, ingest9)
    config_check_s: float = 10.0  # the configuration version is read this often (the document built if it moved)
    # The whole document is built this often even if the version did not move: a change the triggers
    # (migration 0006) do not see still reaches the gateways.
    config_rebuild_s: float = 600.0
    # A batch not stored after this long is said at WARNING (and again when it is): faults19, PostgreSQL's alert
    # table locked 45 s by another session, or SQLite write-locked: the batch waited, and nothing was logged.
    slow_batch_s: float = 10.0


@dataclass
class IngestCounters:
    """This process's counts since start (frames, stored, duplicates, rejected by code, dead letters)."""

    frames: int = 0
    stored: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    unavailable: int = 0  # sessions closed with 1013 because the database could not be used
    rejected: Counter[str] = field(default_factory=Counter)


BULK_LANE, ALERT_LANE = "bulk", "alert"  # a gateway's main socket, and its alert socket (protocol §3.3)


class GatewaySockets:
    """The live gateway sockets of this process: one per gateway and lane (its main socket, its alert socket)."""

    def __init__(self) -> None:
        self.by_gateway: dict[tuple[int, str], WebSocket] = {}
        self.counters = IngestCounters()

    async def claim(self, gateway_id: int, ws: WebSocket, lane: str = BULK_LANE) -> None:
        older = self.by_gateway.get((gateway_id, lane))
        self.by_gateway[(gateway_id, lane)] = ws
        if older is not None and older.application_state == WebSocketState.CONNECTED:
            with contextlib.suppress(Exception):
                await older.close(code=4008, reason="newer connection for this gateway")

    def release(self, gateway_id: int, ws: WebSocket, lane: str = BULK_LANE) -> None:
        if self.by_gateway.get((gateway_id, lane)) is ws:
            del self.by_gateway[(gateway_id, lane)]


class _Job:
    """One unit of work; whichever thread claims it first runs it."""

    __slots__ = ("_lock", "_taken", "fn", "fut")

    def __init__(self, fn: Callable[[], Any]) -> None:
        self.fn, self.fut = fn, Future()  # type: ignore[var-annotated]
        self._taken = False
        self._lock = threading.Lock()

    def run(self) -> None:
        with self._lock:
            if self._taken:
                return
            self._taken = True
        if not self.fut.set_running_or_notify_cancel():
            return
        try:
            self.fut.set_result(self.fn())
        except BaseException as exc:  # handed to the waiting coroutine
            self.fut.set_exception(exc)


class Workers:
    """Threads that write batches, taking urgent work (alerts) before bulk work.

    `threads` take urgent work first, then bulk work; `urgent_threads` take only urgent work, so an
    alert never waits for a bulk batch to finish.
    """

    def __init__(self, threads: int, urgent_threads: int = 1) -> None:
        self._queue: queue.PriorityQueue[tuple[int, int, _Job]] = queue.PriorityQueue()
        self._urgent: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._order = itertools.count()
        for i in range(threads):
            threading.Thread(target=self._run, name=f"ingest-{i}", daemon=True).start()
        for i in range(urgent_threads):
            threading.Thread(target=self._run_urgent, name=f"ingest-urgent-{i}", daemon=True).start()

    def submit(self, priority: int, fn: Callable[[], T]) -> Future[T]:
        job = _Job(fn)
        self._queue.put((priority, next(self._order), job))
        if priority == URGENT:
            self._urgent.put(job)
        return job.fut

    def _run(self) -> None:
        while True:
            self._queue.get()[2].run()

    def _run_urgent(self) -> None:
        while True:
            self._urgent.get().run()


_workers: dict[str, Workers] = {}
_workers_lock = threading.Lock()


def workers_for(engine: Engine) -> Workers:
    name = engine.dialect.name
    with _workers_lock:
        if name not in _workers:
            # SQLite: one writer thread, alerts first (a second writer would poll for the write lock
            # and could starve behind the bulk thread); PostgreSQL: two bulk threads + two for alerts.
            _workers[name] = Workers(1, urgent_threads=0) if name == "sqlite" else Workers(2, urgent_threads=2)
            if sys.getswitchinterval() > SWITCH_INTERVAL_S:
                sys.setswitchinterval(SWITCH_INTERVAL_S)
            threshold = gc.get_threshold()
            if 0 < threshold[0] < GC_THRESHOLD0:  # 0: collection disabled by the host; leave it so
                gc.set_threshold(GC_THRESHOLD0, *threshold[1:])
        return _workers[name]


def _store(engine: Engine, state: IngestState, gateway_id: int, messages: list[Message],
           dead: list[Rejection], urgent: bool) -> BatchResult:
    return store(engine, gateway_id=gateway_id, messages=messages, dead=dead, state=state,
                 touch_gateway=not urgent)


class _Raw(msgspec.Struct, frozen=True, gc=False):
    """A frame read but not yet validated (positions, readings, health): parsed on the ingest workers.

    A msgspec struct, made in C: 0.16 µs against 1.1 for a frozen dataclass, once per frame on the event loop."""

    text: str
    doc: Any  # its decoded JSON (None when it did not decode, or was not decoded: `envelope.parse` decodes it)
    kind: str | None = None  # the type its head names (`envelope.route`), when the reader routed it so


def _parse(gateway_id: int, text: str, doc: Any, *, now: datetime | None = None, kind: str | None = None
           ) -> Message | Rejection:
    """`envelope.parse`; a frame that breaks it (a bug of ours) is refused alone as `unstorable` and kept as a
    dead letter, as a message that breaks the storing code is (debt33: it ended the session with 1011, the whole
    batch unacked, and the gateway sent it again, forever unless it happened to head its send order)."""
    try:
        return envelope.parse(text, now=now, doc=doc, kind=kind)
    except Exception as exc:
        try:
            mid = envelope.scan_id(text)
        except Exception:
            mid = None
        say_unstorable(gateway_id, mid, exc, "validated")
        return Rejection(mid, UNSTORABLE, f"cannot be validated ({type(exc).__name__})", text)


def _parse_and_store(engine: Engine, state: IngestState, gateway_id: int, items: list[Message | Rejection | _Raw],
                     urgent: bool) -> tuple[list[Rejection], BatchResult]:
    """Validate the frames read (in order) and store the batch; the refused ones are kept as dead letters."""
    messages: list[Message] = []
    dead: list[Rejection] = []
    refused: list[Rejection] = []  # refused here: answered by the caller
    now = utcnow()
    for item in items:
        parsed = _parse(gateway_id, item.text, item.doc, now=now, kind=item.kind) if isinstance(item, _Raw) else item
        if isinstance(parsed, Rejection):
            dead.append(parsed)
            if isinstance(item, _Raw):
                refused.append(parsed)
        else:
            messages.append(parsed)
    return refused, _store(engine, state, gateway_id, messages, dead, urgent)


def _warm_map(engine: Engine) -> None:
    """Build the tax map's matcher now, not in the first alert that needs a place named (seconds)."""
    try:
        with Session(engine) as session:
            matcher(session)
    except Exception as exc:  # the ingest path will try again, and report a real failure
        log.warning("tax map not loaded ahead of ingest: %s", type(exc).__name__)


_background: set[asyncio.Task[None]] = set()


def _dispatch(engine: Engine, result: BatchResult) -> None:
    try:
        dispatch(engine, result.changes)
    except Exception:  # the alert is stored and on the feed; the escalation clock still runs
        log.exception("notifying people of %d alert changes failed", len(result.changes))


def _etag(engine: Engine, gateway_id: int, known: tuple[int | None, str] | None = None, fresh: bool = False
          ) -> tuple[int | None, str]:
    """(configuration version, ETag): `known` again while the version has not moved (one read of one row)."""
    if known is not None and known[0] is not None and not fresh:
        with engine.connect() as conn:  # no ORM session for the one read
            if siteconfig.version(conn) == known[0]:
                return known
    with Session(engine) as session:
        return siteconfig.versioned_etag(session, gateway_id, known, fresh=fresh)


_locks: dict[int, asyncio.Lock] = {}


async def _send(ws: WebSocket, frame: dict[str, object]) -> None:
    """One writer at a time per socket (the reader's errors, the acks and the config watcher share it)."""
    lock = _locks.setdefault(id(ws), asyncio.Lock())
    async with lock:
        try:
            await ws.send_text(orjson.dumps(frame).decode())
        except (RuntimeError, OSError) as exc:  # the gateway has gone (it re-sends what was not acked)
            raise WebSocketDisconnect(1006) from exc


class _Session:
    """The queues and tasks of one connection."""

    def __init__(self, ws: WebSocket, engine: Engine, gateway_id: int, counters: IngestCounters,
                 options: IngestOptions, slug: str = "") -> None:
        self.ws, self.engine, self.gateway_id, self.slug = ws, engine, gateway_id, slug
        self.counters, self.options = counters, options
        self.states = {URGENT: IngestState(gateway_id), BULK: IngestState(gateway_id)}  # one per processor
        self.alerts: asyncio.Queue[Message | None] = asyncio.Queue(options.inbox_max)
        self.bulk: asyncio.Queue[_Raw | Rejection | None] = asyncio.Queue(options.inbox_max)
        self.workers = workers_for(engine)

    async def read(self) -> None:
        try:
            while True:
                message = await self.ws.receive()
                if message["type"] == "websocket.disconnect":
                    break
                text = message.get("text")
                if text is None and message.get("bytes") is not None:
                    text = message["bytes"].decode("utf-8", "replace")
                self.counters.frames += 1
                text = text or ""
                routed = envelope.route(text)
                if routed in envelope.BULK_KINDS:  # as a gateway writes them: not decoded here
                    await self._queue_bulk(_Raw(text, None, routed))
                    continue
                kind, doc = envelope.peek(text)
                if kind != "alert":  # validated on the ingest workers: the socket is drained at once
                    await self._queue_bulk(_Raw(text, doc))
                    continue
                parsed = _parse(self.gateway_id, text, doc)
                if isinstance(parsed, Rejection):
                    await self.reject(parsed)
                    await self.bulk.put(parsed)  # recorded as a dead letter with the next batch
                else:
                    await self.alerts.put(parsed)
        finally:
            await self.alerts.put(None)
            await self.bulk.put(None)

    async def _queue_bulk(self, item: _Raw | Rejection) -> None:
        if self.bulk.full():
            await self.bulk.put(item)  # the socket stops being read until the workers catch up
        else:
            self.bulk.put_nowait(item)

    async def process(self, inbox: asyncio.Queue[Any], priority: int) -> None:
        # Frames the next bulk batch can hold: those queued when the last ack left, and as many as it released
        # (the gateway sends that many at once when it has a backlog).
        expected = 0
        while True:
            items = [await inbox.get()]
            self._take(inbox, items)
            if priority == BULK and len(items) < min(expected, self.options.batch_max) and None not in items:
                await self._linger(inbox, items, min(expected, self.options.batch_max))
            closed = None in items
            items = [i for i in items if i is not None]
            if items:
                engine = self.engine
                fut = self.workers.submit(priority, functools.partial(
                    _parse_and_store, engine, self.states[priority], self.gateway_id, items, priority == URGENT))
                refused, result = await self._stored(fut, len(items), priority)
                for rejection in refused:
                    await self.reject(rejection)
                self.counters.stored += result.stored
                self.counters.duplicates += result.duplicates
                self.counters.dead_letters += result.dead_letters
                for rejection in result.rejected:
                    await self.reject(rejection)
                if result.acked and not closed:
                    await _send(self.ws, {"type": "ack", "ids": result.acked})
                expected = len(result.acked) + inbox.qsize()
                if any(c.ring for c in result.changes):  # after the ack: it need not wait for notices
                    self.workers.submit(BULK, functools.partial(_dispatch, engine, result))
            if closed:
                return

    async def _stored(self, fut: Future[T], n: int, priority: int) -> T:
        """The batch's result; a batch not stored after `slow_batch_s` is said at WARNING, and again when it is
        (a timer beside the await: +33, +24 and -18 µs a batch against a bare await in three runs of a loop of
        thread round trips at load 7-9, within that noise; docs/performance.md, faults19). When the session ends
        first (its socket closed: 1012 after a clock jump, the gateway gone), that is said instead, and the
        batch's real end when it comes: stored but not acked, or not stored (debt20). A batch no worker had taken
        is cancelled with the session (asyncio's wrap_future cancels the worker's future before this `finally`
        runs): said dropped at once, not "ended" (review20a)."""
        loop = asyncio.get_running_loop()
        kind = "alerts" if priority == URGENT else "messages"
        started, slow = time.monotonic(), [False]

        def say() -> None:
            slow[0] = True
            log.warning("gateway %s: a batch of %d %s not stored after %.0f s: the database is slow or locked; "
                        "waiting for it (nothing is acked meanwhile)", self.slug, n, kind, self.options.slow_batch_s)

        timer = loop.call_later(self.options.slow_batch_s, say)
        try:
            return await asyncio.wrap_future(fut)
        finally:
            timer.cancel()
            if slow[0] and fut.cancelled():  # no worker had taken it: wrap_future cancelled it with the session
                self._ended(fut, n=n, kind=kind, started=started)
            elif slow[0] and fut.done():
                log.warning("gateway %s: that batch of %d %s ended after %.1f s", self.slug, n, kind,
                            time.monotonic() - started)
            elif slow[0]:  # cancelled with the session: the batch goes on in its worker, and nothing will ack it
                log.warning("gateway %s: that batch of %d %s still waits for the database after %.1f s; its socket "
                            "closed, so it will not be acked", self.slug, n, kind, time.monotonic() - started)
                fut.add_done_callback(functools.partial(self._ended, n=n, kind=kind, started=started))

    def _ended(self, done: Future[Any], *, n: int, kind: str, started: float) -> None:
        """The real end of a slow batch whose session ended first (on the worker's thread; at once, on the loop's, for
        one no worker had taken): stored but not acked, or not stored. What the gateway keeps in its outbox it sends
        again (stored once)."""
        took = time.monotonic() - started
        if done.cancelled():
            log.warning("gateway %s: that batch of %d %s was not stored: dropped before a worker took it",
                        self.slug, n, kind)
        elif (exc := done.exception()) is not None:
            log.warning("gateway %s: that batch of %d %s was not stored after %.1f s (%s)", self.slug, n, kind, took,
                        type(exc).__name__)
        else:
            log.warning("gateway %s: that batch of %d %s was stored after %.1f s, not acked: its socket had closed "
                        "(what the gateway sends again is stored once)", self.slug, n, kind, took)

    def _take(self, inbox: asyncio.Queue[Any], items: list[Any]) -> None:
        """Add every frame waiting, up to `batch_max`."""
        while len(items) < self.options.batch_max and not inbox.empty():
            items.append(inbox.get_nowait())

    async def _linger(self, inbox: asyncio.Queue[Any], items: list[Any], target: int) -> None:
        """Wait up to `bulk_linger_s` for the batch to reach `target` frames (or the socket to close)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.options.bulk_linger_s
        while len(items) < target and None not in items:
            left = deadline - loop.time()
            if left <= 0:
                return
            await asyncio.sleep(min(left, LINGER_STEP_S))
            self._take(inbox, items)

    async def reject(self, r: Rejection) -> None:
        self.counters.rejected[r.code] += 1
        if r.code != UNSTORABLE:  # that one was said where it failed (`say_unstorable`): its reason may quote it
            log.warning("gateway message %s rejected: %s (%s)", r.id, r.code, r.message)  # never the frame itself
        await _send(self.ws, {"type": "error", "id": r.id, "code": r.code, "message": r.message})


async def serve(ws: WebSocket, *, engine: Engine, gateway_id: int, slug: str, site: str,
                sockets: GatewaySockets, options: IngestOptions, lane: str = BULK_LANE,
                alert_socket: dict[str, object] | None = None) -> None:
    """One gateway socket. `lane`: the gateway's main socket (`bulk`), or its alert socket (`alert`: stored
    the same way, but it neither replaces the main socket nor sends `config_changed`). `alert_socket`: where this
    backend takes alert sockets (announced in the main socket's `welcome`), or None."""
    await ws.accept()
    await sockets.claim(gateway_id, ws, lane)
    session = _Session(ws, engine, gateway_id, sockets.counters, options, slug)
    try:
        known = await asyncio.to_thread(_etag, engine, gateway_id)
    except Exception as exc:
        await _unavailable(ws, slug, sockets.counters, exc)
        sockets.release(gateway_id, ws, lane)
        return
    welcome: dict[str, object] = {"type": "welcome", "gateway_id": slug, "site_id": site, "config_etag": known[1],
                                  "server_time": utcnow().isoformat()}
    if lane == BULK_LANE:
        welcome["alert_socket"] = alert_socket
    else:
        welcome["lane"] = lane
    try:
        await _send(ws, welcome)
    except WebSocketDisconnect:  # gone at once (faults18: a traceback at ERROR, and the socket left claimed)
        sockets.release(gateway_id, ws, lane)
        _locks.pop(id(ws), None)
        return
    warm = asyncio.create_task(asyncio.to_thread(_warm_map, engine))
    _background.add(warm)
    warm.add_done_callback(_background.discard)
    reader = asyncio.create_task(session.read())
    watcher = asyncio.create_task(_watch_config(ws, engine, gateway_id, known, options) if lane == BULK_LANE
                                  else _forever())
    clock = asyncio.create_task(_watch_clock(ws, slug))
    workers = [asyncio.create_task(session.process(session.alerts, URGENT)),
               asyncio.create_task(session.process(session.bulk, BULK))]
    try:
        pending = set(workers)
        while pending:  # both processors end when the reader saw the socket close; either may fail first
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()
    except WebSocketDisconnect:
        pass
    except Unavailable as exc:
        await _unavailable(ws, slug, sockets.counters, exc)
    except Exception as exc:  # not a message (those are refused one by one), not the database (1013): our bug
        # where it failed, never the exception's text: it may quote a message (a position, a name; PDPA)
        log.error("gateway %s: storing failed, neither on one message nor on the database (a bug of ours: %s); "
                  "closing with 1011, it sends again what was not acked\n%s", slug, type(exc).__name__,
                  "".join(traceback.format_tb(exc.__traceback__)).rstrip())
        with contextlib.suppress(Exception):
            await ws.close(code=1011)
    finally:
        for task in (reader, watcher, clock, *workers):
            task.cancel()
        await asyncio.gather(reader, watcher, clock, *workers, return_exceptions=True)
        sockets.release(gateway_id, ws, lane)
        _locks.pop(id(ws), None)


def _skew() -> float:
    return utcnow().timestamp() - time.monotonic()


async def _watch_clock(ws: WebSocket, slug: str) -> None:
    """This backend's wall clock against its monotonic one (faults19). A gateway measures its clock against the
    backend's only at its `welcome` (`server_time`; faults18: while they differ by more than 300 s the radio
    stamps messages with the backend's time), so a jump of the backend's clock (NTP stepping it, a resumed VM)
    left every connected gateway's messages an hour early or late to the backend until it happened to
    reconnect: positions refused as from the future, or alerts taken as late. A jump of more than CLOCK_JUMP_S
    closes the socket with 1012 (service restart): the gateway reconnects at once and its new welcome carries
    the clock as it is now. Nothing is lost: what was not acked is sent again."""
    base = _skew()
    while True:
        await asyncio.sleep(CLOCK_CHECK_S)
        jump = _skew() - base
        if abs(jump) > CLOCK_JUMP_S:
            log.warning("gateway %s: this backend's clock jumped by %+.0f s; closing with 1012 so that the gateway "
                        "reconnects and its welcome carries the clock as it is now", slug, jump)
            with contextlib.suppress(Exception):
                await ws.close(code=1012, reason="server clock changed")
            return


async def _forever() -> None:
    """An alert socket's stand-in for the configuration watcher: `config_changed` goes on the main socket only."""
    await asyncio.Event().wait()


async def _unavailable(ws: WebSocket, slug: str, counters: IngestCounters, exc: BaseException) -> None:
    """Nothing acked: the gateway keeps its outbox and comes back after its back-off."""
    counters.unavailable += 1
    log.error("gateway %s: database unavailable (%s); closing with 1013 so it re-sends later", slug, exc)
    with contextlib.suppress(Exception):
        await ws.close(code=1013, reason="database unavailable, try again later")


async def _watch_config(ws: WebSocket, engine: Engine, gateway_id: int, known: tuple[int | None, str],
                        options: IngestOptions) -> None:
    """Send `config_changed` when the ETag moved: the configuration version read every `config_check_s` (the
    document built only when it moved), and the whole document built every `config_rebuild_s` regardless."""
    every_s = options.config_check_s
    await asyncio.sleep(random.uniform(0, every_s))  # connections check at their own phase, not all at once
    loop = asyncio.get_running_loop()
    rebuilt = loop.time()
    while True:
        full = loop.time() - rebuilt >= options.config_rebuild_s
        try:
            now = await asyncio.to_thread(_etag, engine, gateway_id, known, full)
            if full:
                rebuilt = loop.time()
        except Exception as exc:  # the database is away: the ingest path will say so; look again later
            log.warning("site config check failed: %s", type(exc).__name__)
            now = known
        if now[1] != known[1]:
            await _send(ws, {"type": "config_changed", "etag": now[1]})
        known = now
        await asyncio.sleep(every_s)
