"""One caregiver's feed socket: snapshot or replay, then deltas, pings, and ack/resolve messages.

Four tasks share one bounded queue of outgoing frames:
- producer: reads `feed_event` after the socket's cursor whenever the hub
  wakes it (and every `poll_s` regardless), renders, enqueues;
- sender: writes queued frames to the socket, in order;
- receiver: acknowledge / resolve / ping from the client, each checked
  against the same request models as REST (`chumphae.api.schemas`): a
  binary frame, an oversized or malformed message gets an `error` frame and
  the socket goes on;
- pinger: an application `ping` frame every `ping_s` (browsers cannot see
  protocol pings), carrying the last cursor;
- guard: every `access_check_s` checks that the user is still active and the
  token the socket authenticated with is still theirs; if not (revoked or
  rotated), closes with 4001.
The database is the buffer: the producer reads only as much as the queue has
room for. The queue has two lanes: alert and control frames leave before any
queued position frame (a care manager's feed carries every position; an SOS
must not wait behind them); each lane keeps cursor order. While the queue is
full of positions, or the producer is behind (its last read was full), it
also reads the alert rows beyond the positions still to read and sends those
first (skipping them when it reaches them in order). A wake-up from a commit
that wrote alert rows (the hub's `alerts_only` subscription: the wake-up says
what its commit wrote) that comes while the producer's read is still running
(a district's read of 100 positions takes milliseconds to hundreds of them on a
loaded machine) starts the same alert-only read at once, beside it
(`_alert_lane`), so a committed alert never waits for the positions read
before it; commits of positions alone do not start it. Feed reads run on
threads of their own (`READERS`), not on the event loop's default pool,
where the gateways' periodic checks queue. Positions are coalesced (`position_linger_s`): a woken
producer waits that long, then reads up to `read_rows` rows and renders, of their positions, each
patient's last only (latest wins); meanwhile every alert commit's wake-up starts the alert-only read, so
alerts are never held. A client whose queue is full while frames wait, and whose frames
have waited (or whose socket has not taken one) for `stall_s`, is told to `resync`, and is sent a fresh snapshot in place of the
backlog, so one slow phone never holds back the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, TypeAdapter, ValidationError
from sqlalchemy.engine import Engine
from sqlmodel import Session
from starlette.websockets import WebSocket, WebSocketDisconnect

from chumphae import audit
from chumphae.alert import service as alerts
from chumphae.alert.render import alert_dict
from chumphae.api.http import dumps
from chumphae.api.schemas import (
    FEED_MESSAGE_MAX,
    FeedAck,
    FeedMessage,
    FeedPing,
    FeedResolve,
    Req,
)
from chumphae.auth.service import user_by_token
from chumphae.db import retry_if_disconnected
from chumphae.deliver.notify import dispatch
from chumphae.errors import Forbidden, NotFound
from chumphae.feed import frames
from chumphae.feed import log as feed_log
from chumphae.feed.fanout import Hub
from chumphae.i18n import t as translate
from chumphae.models import User
from chumphae.supervise import wait_up_to
from chumphae.timeutil import utcnow

log = logging.getLogger(__name__)
ROUTE = "WS /ws/alerts"
T = TypeVar("T")

# The threads that read `feed_event` for this process's sockets (a read is one SELECT, mostly waiting on the
# database). Not the loop's default pool: there the gateways' periodic configuration and token checks
# (every gateway at once) would queue ahead of an SOS's read.
READERS = ThreadPoolExecutor(max_workers=8, thread_name_prefix="feed-read")


async def on_readers(fn: Callable[..., T], *args: Any) -> T:
    return await asyncio.get_running_loop().run_in_executor(READERS, functools.partial(fn, *args))


@dataclass(frozen=True, slots=True)
class FeedOptions:
    buffer: int = 256  # frames queued per client
    batch: int = 100  # rows read per query (alert reads; a producer's read takes up to `read_rows`)
    # A woken producer waits this long before reading positions, then reads up to `read_rows` rows and sends
    # each patient's newest position among them only (alerts are read at once by the alert lane, never held).
    # 0: read at every wake-up, up to `batch` rows, every position row its own frame.
    position_linger_s: float = 0.25
    read_rows: int = 1000
    poll_s: float = 2.0  # read even without a wake-up (a lost NOTIFY costs at most this)
    ping_s: float = 20.0
    stall_s: float = 10.0  # queue full this long while frames wait: resync
    auth_timeout_s: float = 10.0
    max_replay: int = 20_000  # a cursor further behind than this gets a snapshot instead
    refresh_s: float = 60.0  # re-read who the user cares for
    access_check_s: float = 2.0  # a revoked or rotated token's sockets close within this


Queued = tuple[float, dict[str, Any]]  # (when queued, frame)


class Outgoing:
    """The frames waiting for one socket, bounded: urgent ones (alerts, snapshots, control) first,
    then positions; each lane in the order queued. The subset of `asyncio.Queue` the socket uses."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self.urgent: deque[Queued] = deque()
        self.positions: deque[Queued] = deque()
        self._changed = asyncio.Event()

    def qsize(self) -> int:
        return len(self.urgent) + len(self.positions)

    def empty(self) -> bool:
        return not self.urgent and not self.positions

    def put_nowait(self, item: Queued, *, force: bool = False) -> None:
        if self.qsize() >= self.maxsize and not force:
            raise asyncio.QueueFull
        (self.positions if item[1].get("type") == "position" else self.urgent).append(item)
        self._changed.set()

    async def put(self, item: Queued) -> None:
        while self.qsize() >= self.maxsize:
            self._changed.clear()
            await self._changed.wait()
        self.put_nowait(item)

    def get_nowait(self) -> Queued:
        if not self.urgent and not self.positions:
            raise asyncio.QueueEmpty
        item = self.urgent.popleft() if self.urgent else self.positions.popleft()
        self._changed.set()
        return item

    async def get(self) -> Queued:
        while self.empty():
            self._changed.clear()
            await self._changed.wait()
        return self.get_nowait()


class FeedSocket:
    def __init__(self, ws: WebSocket, *, engine: Engine, hub: Hub, options: FeedOptions, user_id: int,
                 token_hash: str | None = None) -> None:
        self.ws, self.engine, self.hub, self.options = ws, engine, hub, options
        # Feed reads are single SELECTs: on PostgreSQL outside a transaction (no BEGIN, no ROLLBACK: one round
        # trip per read instead of three; a care manager's feed reads after every batch).
        self.reader = engine.execution_options(isolation_level="AUTOCOMMIT") \
            if engine.dialect.name == "postgresql" else engine
        self.user_id, self.token_hash = user_id, token_hash
        self.queue = Outgoing(options.buffer)
        self.lag = 0.0  # how long the last frame sent had waited in the queue
        self.progress = time.monotonic()  # when a frame last left the queue
        self.freed = asyncio.Event()  # set by the sender whenever it takes a frame
        self.cursor = 0
        self.ahead: set[int] = set()  # cursors of alert frames sent ahead of the positions before them
        self.ahead_cursor = 0
        self.viewer: frames.Viewer | None = None
        self.resyncs = 0
        self.reading = False  # the producer's read is running: a wake-up now starts an alert-only read beside it
        self.epoch = 0  # bumped by each resync: an alert read begun before it is dropped
        self.alert_reads = asyncio.Lock()

    # -- database work (worker threads) -------------------------------------------------
    def _user(self, session: Session) -> User | None:
        user = session.get(User, self.user_id)
        if user is None or not user.active:
            return None
        if self.token_hash is not None and user.token_hash != self.token_hash:
            return None  # the token this socket signed in with was rotated
        return user

    def _still_allowed(self) -> bool:
        def check() -> bool:
            with Session(self.engine) as session:
                return self._user(session) is not None

        return retry_if_disconnected(self.engine, check)

    def _load_viewer(self) -> frames.Viewer | None:
        with Session(self.engine) as session:
            user = self._user(session)
            return frames.load_viewer(session, user) if user else None

    def _snapshot(self, viewer: frames.Viewer, reason: str) -> dict[str, Any]:
        with Session(self.engine) as session:
            snap = frames.snapshot(session, viewer)
            user = session.get(User, self.user_id)
            audit.record(session, user=user, action="read", entity="alert_feed", route=ROUTE,
                         detail={"snapshot": reason, "patients": len(viewer.patients)})
            session.commit()
        return snap

    def _replay_ok(self, cursor: int) -> bool:
        with Session(self.engine) as session:
            oldest, latest = feed_log.oldest_cursor(session), feed_log.latest_cursor(session)
            ok = cursor <= latest and latest - cursor <= self.options.max_replay and (oldest == 0 or cursor >= oldest - 1)
            if ok:
                user = session.get(User, self.user_id)
                audit.record(session, user=user, action="read", entity="alert_feed", route=ROUTE,
                             detail={"resumed_from": cursor})
                session.commit()
            return ok

    def _read(self, viewer: frames.Viewer, cursor: int, limit: int, kind: str | None = None
              ) -> list[dict[str, Any]]:
        def read() -> list[dict[str, Any]]:
            with Session(self.reader) as session:
                rows = feed_log.read_since(session, cursor=cursor, patient_ids=viewer.patient_ids,
                                           unassigned=viewer.unassigned, limit=limit, kind=kind)
                return [frames.render(viewer, r) for r in rows]

        return retry_if_disconnected(self.engine, read)

    def _read_coalesced(self, viewer: frames.Viewer, cursor: int, limit: int) -> tuple[list[dict[str, Any]], int]:
        """Up to `limit` rows after `cursor` as frames, a patient's positions coalesced if `position_linger_s`:
        only the last of them in this read is rendered (alerts and other rows all, in order). Also returns how
        many rows were read. The last row read is always a frame (nothing after it supersedes it), so the cursor moves
        past every row read once the frames are all queued."""
        def read() -> tuple[list[dict[str, Any]], int]:
            with Session(self.reader) as session:
                rows = feed_log.read_since(session, cursor=cursor, patient_ids=viewer.patient_ids,
                                           unassigned=viewer.unassigned, limit=limit)
            kept = coalesce_positions(rows) if self.options.position_linger_s > 0 else rows
            return [frames.render(viewer, r) for r in kept], len(rows)

        return retry_if_disconnected(self.engine, read)

    def _act(self, msg: FeedAck | FeedResolve) -> dict[str, Any]:
        """Acknowledge or resolve, exactly as the REST routes do (the message was checked like their bodies)."""
        with Session(self.engine, expire_on_commit=False) as session:
            user = self._user(session)
            if user is None:
                raise Forbidden("user inactive")
            if isinstance(msg, FeedAck):
                row, change = alerts.acknowledge(session, user=user, alert_id=msg.alert_id,
                                                 note=msg.note, route=ROUTE)
                changes = [change] if change else []
            else:
                row, resolved = alerts.resolve(session, user=user, alert_id=msg.alert_id,
                                               outcome=msg.outcome, note=msg.note, route=ROUTE)
                changes = [resolved]
            out = alert_dict(row, names={user.id: user.name})  # type: ignore[dict-item]
            session.commit()
        dispatch(self.engine, changes)
        return out

    # -- the socket -----------------------------------------------------------------
    async def run(self, cursor: int | None) -> None:
        self.viewer = await asyncio.to_thread(self._load_viewer)
        if self.viewer is None:
            await self.ws.close(code=4001, reason="token revoked")
            return
        resumed = cursor is not None and await asyncio.to_thread(self._replay_ok, cursor)
        await self._send(frames.welcome(self.viewer, resumed_from=cursor if resumed else None))
        if resumed:
            assert cursor is not None
            self.cursor = cursor
        else:
            if cursor is not None:
                await self._send({"type": "resync", "reason": "cursor_unknown", "cursor": cursor})
            await self._snapshot_now("connect")
        wake, alert_wake = self.hub.subscribe(), self.hub.subscribe(alerts_only=True)
        tasks = [asyncio.create_task(c) for c in (self._produce(wake), self._alert_lane(alert_wake), self._deliver(),
                                                   self._receive(), self._ping(), self._guard())]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                exc = task.exception()
                if exc is not None and not isinstance(exc, WebSocketDisconnect | OSError):
                    log.error("feed socket of user %d failed: %s", self.user_id, type(exc).__name__)
        finally:
            self.hub.unsubscribe(wake)
            self.hub.unsubscribe(alert_wake)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _send(self, frame: dict[str, Any]) -> None:
        try:
            await self.ws.send_text(frame_text(frame))
        except (RuntimeError, OSError) as exc:  # the client or the server already closed it
            raise WebSocketDisconnect(1006) from exc

    async def _snapshot_now(self, reason: str) -> None:
        assert self.viewer is not None
        snap = await asyncio.to_thread(self._snapshot, self.viewer, reason)
        self.cursor = snap["cursor"]
        await self.queue.put((time.monotonic(), snap))

    async def _produce(self, wake: asyncio.Event) -> None:
        o = self.options
        refreshed = time.monotonic()
        behind = False  # the last read was full: more rows wait in the database
        while True:
            if time.monotonic() - refreshed > o.refresh_s:
                refreshed = time.monotonic()
                self.viewer = await asyncio.to_thread(self._load_viewer)
                if self.viewer is None:
                    await self.ws.close(code=4001, reason="token revoked")
                    return
            assert self.viewer is not None
            room = o.buffer - self.queue.qsize()
            if room <= 0:
                if self.queue.positions:  # full of positions: alerts further on must not wait behind them
                    await self._alerts_ahead()
                stuck = time.monotonic() - self.progress > o.stall_s or self.lag > o.stall_s
                waiting = await on_readers(self._read, self.viewer, self.cursor, 1) if stuck else []
                if waiting:
                    await self._resync()
                    continue
                self.freed.clear()
                await wait_up_to(self.freed.wait(), min(o.stall_s, 0.05))  # until the sender frees a place
                continue
            wake.clear()  # cleared before reading: a commit after the read wakes us again
            if behind:  # more rows wait than one read takes: alerts beyond them must not wait their turn
                await self._alerts_ahead()
            limit = max(room, o.read_rows) if o.position_linger_s > 0 else min(room, o.batch)
            self.reading = True
            try:
                batch, read = await on_readers(self._read_coalesced, self.viewer, self.cursor, limit)
            finally:
                self.reading = False
            full = False
            for frame in batch:
                if self.ahead and frame["cursor"] in self.ahead:  # already sent ahead
                    self.ahead.discard(frame["cursor"])
                    self.cursor = frame["cursor"]
                    continue
                if self.queue.qsize() >= o.buffer:  # the rest is read again, in order, once there is room
                    full = True  # (a position dropped as superseded is superseded by a row after this one)
                    break
                self.cursor = frame["cursor"]
                self.queue.put_nowait((time.monotonic(), frame))
            behind = full or read == limit
            if behind:
                continue
            if o.position_linger_s <= 0:
                await wait_up_to(wake.wait(), o.poll_s)
                continue
            # Caught up. Until the linger after the next wake-up is over, a wake-up means an alert-only read
            # at once (the alert lane), and the positions of that linger go as one read: a patient's newest.
            self.reading = True
            try:
                if await wait_up_to(wake.wait(), o.poll_s):
                    await asyncio.sleep(o.position_linger_s)
            finally:
                self.reading = False

    async def _alerts_ahead(self) -> None:
        """Alert rows beyond the positions still queued: read them now and send them first.

        May run while the producer's own read runs: whatever the producer queued meanwhile
        (cursor passed) or another alert read already sent ahead is not queued twice, and
        nothing read before a resync is queued after it (the snapshot holds it, or the
        producer reads it in order after the snapshot)."""
        assert self.viewer is not None
        async with self.alert_reads:  # one at a time, so alert frames keep their cursor order
            after, epoch = max(self.cursor, self.ahead_cursor), self.epoch
            got = await on_readers(self._read, self.viewer, after, self.options.batch, "alert")
            if epoch == self.epoch:
                self._queue_ahead(got)

    def _queue_ahead(self, got: list[dict[str, Any]]) -> None:
        for frame in got:
            if frame["cursor"] <= self.cursor or frame["cursor"] in self.ahead:
                continue
            self.ahead.add(frame["cursor"])
            self.ahead_cursor = max(self.ahead_cursor, frame["cursor"])
            self.queue.put_nowait((time.monotonic(), frame), force=True)

    async def _alert_lane(self, wake: asyncio.Event) -> None:
        """A wake-up while the producer is reading: alert rows now, not after that read is done."""
        while True:
            await wake.wait()
            wake.clear()
            if self.reading:
                await self._alerts_ahead()

    async def _resync(self) -> None:
        """The client is too far behind: drop its backlog, send a snapshot instead."""
        self.resyncs += 1
        self.epoch += 1
        self.ahead.clear()  # the snapshot holds every open alert
        self.ahead_cursor = 0
        dropped = self.queue.qsize()
        while not self.queue.empty():
            self.queue.get_nowait()
        log.info("feed of user %d fell behind (%d frames dropped): resync", self.user_id, dropped)
        self.queue.put_nowait((time.monotonic(), {"type": "resync", "reason": "behind", "cursor": self.cursor}))
        await self._snapshot_now("behind")

    async def _deliver(self) -> None:
        while True:
            queued_at, frame = await self.queue.get()
            self.freed.set()
            self.lag = time.monotonic() - queued_at
            await self._send(frame)
            self.progress = time.monotonic()

    def _offer(self, frame: dict[str, Any]) -> None:
        with contextlib.suppress(asyncio.QueueFull):  # a full queue is about to resync anyway
            self.queue.put_nowait((time.monotonic(), frame))

    async def _ping(self) -> None:
        while True:
            await asyncio.sleep(self.options.ping_s)
            self._offer({"type": "ping", "cursor": self.cursor, "server_time": utcnow().isoformat()})

    async def _guard(self) -> None:
        while True:
            await asyncio.sleep(self.options.access_check_s)
            if not await asyncio.to_thread(self._still_allowed):
                log.info("feed of user %d closed: token revoked or rotated", self.user_id)
                with contextlib.suppress(RuntimeError, OSError):
                    await self.ws.close(code=4001, reason="token revoked")
                return

    async def _receive(self) -> None:
        while True:
            text = await receive_text_frame(self.ws)
            if text is None:  # a binary frame
                self._offer(error_frame("feed_bad_message"))
                continue
            parsed = parse_client_message(text)
            if isinstance(parsed, ClientError):
                self._offer(error_frame(parsed.code, parsed.req))
            elif isinstance(parsed, FeedPing):
                self._offer({"type": "pong", "req": parsed.req, "cursor": self.cursor})
            else:
                self._offer(await self._handle_action(parsed))

    async def _handle_action(self, msg: FeedAck | FeedResolve) -> dict[str, Any]:
        try:
            alert = await asyncio.to_thread(self._act, msg)
        except NotFound:
            return error_frame("not_found", msg.req)
        except Forbidden:
            return error_frame("forbidden", msg.req)
        except alerts.AlertConflict:
            return error_frame("alert_conflict", msg.req)
        return {"type": "result", "req": msg.req, "ok": True, "alert": alert}


def coalesce_positions(rows: list[feed_log.FeedRow]) -> list[feed_log.FeedRow]:
    """The rows in order, less every position row followed by a later position row of the same patient."""
    last: dict[int, int] = {}  # patient id → index of their last position row
    for i, row in enumerate(rows):
        if row.kind == "position" and row.patient_id is not None:
            last[row.patient_id] = i
    if len(last) == sum(1 for row in rows if row.kind == "position" and row.patient_id is not None):
        return rows
    return [row for i, row in enumerate(rows)
            if row.kind != "position" or row.patient_id is None or last[row.patient_id] == i]


@dataclass(frozen=True, slots=True)
class ClientError:
    code: str
    req: Any = None


class _ReqOnly(BaseModel):
    req: Req = None


_MESSAGE: TypeAdapter[FeedPing | FeedAck | FeedResolve] = TypeAdapter(FeedMessage)


def parse_client_message(text: str) -> FeedPing | FeedAck | FeedResolve | ClientError:
    """A client's text frame → the checked message, or the error to answer. Never raises."""
    if len(text) > FEED_MESSAGE_MAX:
        return ClientError("feed_too_large")
    try:
        return _MESSAGE.validate_json(text)
    except ValidationError:
        pass
    try:  # echo the client's `req` if it is one we would have accepted
        req = _ReqOnly.model_validate_json(text).req
    except ValidationError:
        req = None
    return ClientError("feed_bad_message", req)


async def receive_text_frame(ws: WebSocket) -> str | None:
    """The next text frame; None for a binary one; WebSocketDisconnect when the client has gone."""
    message = await ws.receive()
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000), message.get("reason"))
    text = message.get("text")
    return text if isinstance(text, str) else None


def frame_text(frame: dict[str, Any]) -> str:
    """A frame as JSON text, always valid JSON: orjson writes NaN and infinities as null, as
    `chumphae.api.http.dumps` does (which takes what orjson cannot: integers beyond 64 bits)."""
    try:
        return orjson.dumps(frame, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        return dumps(frame)


def error_frame(code: str, req: Any = None) -> dict[str, Any]:
    return {"type": "error", "req": req, "code": code, "title_th": translate(code, "th"),
            "title_en": translate(code, "en")}


def authenticate(engine: Engine, token: str | None) -> int | None:
    if not token:
        return None
    with Session(engine) as session:
        user = user_by_token(session, token)
        return user.id if user else None
