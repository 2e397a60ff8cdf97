"""The uplink: one WebSocket to the backend, fed from the durable outbox (docs/gateway-protocol.md).

Connect with the bearer token → send `hello` → send the outbox (alerts
first, ≤ `max_in_flight` unacked) → mark acked rows done as acks arrive.
An alert does not wait for room in that window: it is sent at once while
fewer than `max_in_flight + alert_room` messages are unacked, so an SOS
created while 256 positions wait for their ack (a busy backend) leaves now,
not after the next ack.
The alert socket (docs/gateway-protocol.md §3.3): when the backend's
`welcome` names one (`alert_socket`: a port and path on the backend's host,
served by processes that positions do not keep busy) or `alert_url` is
given, a second connection sends each alert there as soon as it is queued,
and acks from either socket mark it done. The main socket still sends every
alert as before (the backend stores an id once), so an alert never waits
for the alert socket, whether it is down, connecting or slow.
Anything that goes wrong (refused, closed, no ack for `ack_timeout_s`)
ends the session; we reconnect with exponential backoff and jitter and
re-send everything still unacked. The backoff starts small again only
after a session that lived (`lived_s`) and in which the backend answered
(its `welcome`, or any frame: an older backend sends no welcome but acks
the hello); an opening handshake given up after `open_timeout_s` (a
frozen backend whose listen queue still takes the TCP connection) is a
failed connect like a refused one, so the delay grows to its cap (it
was reset: a retry every ~10.5 s for ever). The outbox, not this object,
is the memory: killing the process loses nothing that was `put`.

Poison messages: an `error` frame naming a message id drops that message
(counted as `rejected`). A message the backend chokes on without saying so
(it closes the socket abnormally, e.g. 1011, before acknowledging anything)
would head the send order forever; so when the same message headed the
send order in `poison_after` sessions in a row that closed with one of
`POISON_CLOSE_CODES` and no ack in between, it is moved behind all other
messages (`deferred`; never dropped, alerts included), and from then on it
is sent alone, only when nothing else is in flight (a backend that stores
frames in batches fails the whole batch with it). A close 1013 (the
backend's storage is unavailable) is not the message's fault: back off
(the delay keeps growing) and re-send.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from chumphae.supervise import short_error, wait_up_to
from chumphae.timeutil import as_utc, utcnow
from gateway.queue import Outbox, Queued, envelope

log = logging.getLogger(__name__)

# Abnormal closes that may be caused by the message at the head of the send order.
POISON_CLOSE_CODES = frozenset({1002, 1003, 1007, 1008, 1009, 1011})
TRY_AGAIN_LATER = 1013  # the backend cannot store right now: back off, re-send, blame no message
TOKEN_REVOKED = 4001  # the backend closed the socket: this gateway's token was revoked or rotated
MAX_SEND_BYTES = 1 << 20  # the backend closes the socket (1009, or drops it) on a longer frame (protocol §3.3)
CLOCK_JUMP_S = 60.0  # our wall clock moved this far against the monotonic one: measure it again (reconnect)
CLOCK_WARN_S = 300.0  # our clock this far off the backend's (its welcome's server_time): logged at ERROR


class BackendClock:
    """The wall clock the radio stamps adverts (and so every message) with: ours, except while the backend's
    last `welcome` showed ours more than CLOCK_WARN_S off (faults18: a Pi without a real-time clock, booted
    before NTP, had every message filed an hour old, and the backend's late rule filed a new SOS as history);
    then the backend's `server_time` at that welcome carried forward on the monotonic clock, which a jump of
    ours (NTP catching up, a hand set) does not move. Re-set at every connect."""

    def __init__(self, now: Callable[[], datetime] | None = None, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._now = now or (lambda: utcnow())
        self._monotonic = monotonic
        self._anchor: tuple[datetime, float] | None = None

    def learn(self, theirs: datetime, offset_s: float) -> None:
        self._anchor = (theirs, self._monotonic()) if abs(offset_s) > CLOCK_WARN_S else None

    def __call__(self) -> datetime:
        if self._anchor is None:
            return self._now()
        t, m = self._anchor
        return t + timedelta(seconds=self._monotonic() - m)


@dataclass(slots=True)
class UplinkStats:
    connected: bool = False
    connects: int = 0
    sent: int = 0
    acked: int = 0
    rejected: int = 0
    deferred: int = 0
    last_close: int | None = None
    last_error: str | None = None
    alert_connected: bool = False  # the alert socket (§3.3) is open
    alert_connects: int = 0
    alert_sent: int = 0  # alerts sent on the alert socket (each also goes on the main socket)
    alert_acked: int = 0  # alerts whose first ack came on the alert socket
    alert_last_error: str | None = None
    clock_offset_s: float | None = None  # the backend's clock minus ours, from the last welcome's server_time


class Uplink:
    def __init__(
        self,
        url: str,
        token: str,
        outbox: Outbox,
        *,
        hello: Callable[[], dict[str, Any]] = dict,
        health: Callable[[], dict[str, Any]] = dict,
        on_config_changed: Callable[[], Awaitable[None]] | None = None,
        heartbeat_s: float = 15.0,
        ack_timeout_s: float = 30.0,
        max_in_flight: int = 256,
        alert_room: int = 64,
        backoff_min_s: float = 0.5,
        backoff_max_s: float = 30.0,
        poison_after: int = 3,
        alert_url: str = "",
        clock: BackendClock | None = None,
    ) -> None:
        self.url = url
        self._token = token
        self.outbox = outbox
        self.hello = hello
        self.health = health
        self.on_config_changed = on_config_changed
        self.heartbeat_s = heartbeat_s
        self.ack_timeout_s = ack_timeout_s
        self.max_in_flight = max_in_flight
        self.alert_room = alert_room  # alerts beyond the window: sent without waiting for an ack
        self.backoff_min_s = backoff_min_s
        self.backoff_max_s = backoff_max_s
        self.poison_after = poison_after
        # "" = the alert socket the backend's welcome names (if any); "off" = none; else this ws(s):// URL
        self.alert_url = alert_url
        self._announced: str | None = None  # the alert socket's URL from the last welcome
        self._lane_wake = asyncio.Event()
        self._lane_known = asyncio.Event()  # an alert socket URL is known
        if alert_url and alert_url != "off":
            self._lane_known.set()
        self.clock = clock  # the radio's wall clock, set from each welcome's server_time
        self.stats = UplinkStats()
        self._head: str | None = None  # first outbox message sent in this session
        self._progress = False  # an outbox message was acked in this session
        self._strikes: tuple[str | None, int] = (None, 0)
        self._skew: float | None = None  # our wall clock minus the monotonic one at the last welcome
        self._refused = False  # the backend refuses our token (4001 / HTTP 401): said once at ERROR per episode
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Future[None]] = set()
        self.open_timeout_s = 10.0  # the opening handshake (TCP, TLS, HTTP upgrade) given up after this
        self.lived_s = 10.0  # a session this long, in which the backend answered, starts the backoff small again
        self._answered = False  # the backend sent a frame (welcome, ack, ...) in this session
        self._lane_answered = False  # the same on the alert socket

    def notify(self) -> None:
        """New messages are in the outbox: send them now rather than at the next poll."""
        self._wake.set()
        self._lane_wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        lane = asyncio.create_task(self._alert_lane(stop)) if self.alert_url != "off" else None
        try:
            await self._run_main(stop)
        finally:
            if lane is not None:
                lane.cancel()
                await asyncio.gather(lane, return_exceptions=True)

    async def _run_main(self, stop: asyncio.Event) -> None:
        backoff = self.backoff_min_s
        while not stop.is_set():
            started = time.monotonic()
            self._head, self._progress, self.stats.last_close, self._answered = None, False, None, False
            try:
                async with self._dial(self.url) as ws:
                    self.stats.connected = True
                    self.stats.connects += 1
                    log.info("uplink connected to %s", self.url)
                    await self._session(ws, stop)
            except (InvalidStatus, OSError, InvalidHandshake, ConnectionClosed, TimeoutError, ClockJumped) as e:
                self.stats.last_error = _why(e)
            finally:
                self.stats.connected = False
            if stop.is_set():
                break
            code = self.stats.last_close
            self._say_refused(code)
            if code == TRY_AGAIN_LATER:
                self.stats.last_error = "backend storage unavailable (1013)"
            elif self._answered and time.monotonic() - started > self.lived_s:
                backoff = self.backoff_min_s  # the session lived: start small again
            self._judge_head(code)
            delay = backoff * random.uniform(0.8, 1.2)
            log.warning("uplink down (%s); retrying in %.1f s", self.stats.last_error, delay)
            await wait_up_to(stop.wait(), delay)
            backoff = min(self.backoff_max_s, backoff * 2.0)

    def _say_refused(self, code: int | None) -> None:
        """A revoked (4001) or unknown (HTTP 401) token does not heal by itself: say so once, at ERROR, in words
        a field engineer greps for; the outbox is kept and the gateway keeps retrying (docs/gateway-protocol.md §1)."""
        refused = code == TOKEN_REVOKED or self.stats.last_error == "refused: HTTP 401"
        if refused and not self._refused:
            depth, alerts = self.outbox.depth()
            log.error("backend refuses this gateway's token (%s): nothing can be sent; %d messages (%d alerts) are "
                      "kept in the outbox and sent once a valid token is set (GATEWAY_TOKEN from `chumphae gateways "
                      "rotate`, then restart the gateway); retrying meanwhile",
                      "4001 token revoked" if code == TOKEN_REVOKED else "HTTP 401", depth, alerts)
        # an address that failed to authenticate too often is refused with 429 for a while: the same episode
        self._refused = refused or (self._refused and self.stats.last_error == "refused: HTTP 429")

    def _unsendable(self, q: Queued) -> bool:
        """A frame the backend could never take nor name (faults18): longer than MAX_SEND_BYTES (it killed every
        session: the backend drops the socket, so no ack ever came back, not even for the alerts it had stored),
        or not a JSON object carrying its own id (a damaged row: the backend's `error` had a null id, so the
        message stayed in flight and the session timed out every 30 s). Rejected here as the backend would have
        (state rejected, counted in `rejected`, the row kept in the outbox), logged at ERROR; never sent."""
        why = None
        if len(q.text) > MAX_SEND_BYTES // 4 and len(q.text.encode("utf-8", "replace")) > MAX_SEND_BYTES:
            why = f"{len(q.text.encode('utf-8', 'replace'))} bytes, more than the backend takes ({MAX_SEND_BYTES})"
        else:
            try:  # orjson: what the backend parses with; 4 µs a position row against json's 10 (scripts/bench_uplink.py)
                doc = orjson.loads(q.text)
            except orjson.JSONDecodeError:
                doc = None
            if not isinstance(doc, dict) or doc.get("id") != q.id:
                why = "not a JSON object with its own id (a damaged outbox row)"
        if why is None:
            return False
        if self.outbox.reject([q.id]):
            self.stats.rejected += 1
            self._progress, self._strikes = True, (None, 0)
        log.error("outbox message %s (%s) cannot be sent: %s; kept in the outbox as rejected, not sent",
                  q.id, q.type, why)
        return True

    def _judge_head(self, code: int | None) -> None:
        """Count sessions closed abnormally, without an ack, with the same message at the head."""
        if self._progress or code not in POISON_CLOSE_CODES or self._head is None:
            if self._progress:
                self._strikes = (None, 0)
            return
        last, n = self._strikes
        n = n + 1 if last == self._head else 1
        self._strikes = (self._head, n)
        if n >= self.poison_after and self.outbox.defer(self._head):
            self.stats.deferred += 1
            self._strikes = (None, 0)
            log.error("message %s headed %d sessions in a row that the backend closed with %s and no ack: "
                      "moved behind the others (kept, re-sent later)", self._head, n, code)

    async def _session(self, ws: ClientConnection, stop: asyncio.Event) -> None:
        in_flight: dict[str, float] = {}  # id → when sent (monotonic)
        # bounded: a backend that stopped reading must not hold the uplink (or its stop) for ever
        async with asyncio.timeout(self.ack_timeout_s):
            await ws.send(envelope(_uuid(), "hello", self.outbox.next_seq(), self.hello()))
        tasks = [
            asyncio.create_task(self._reader(ws, in_flight)),
            asyncio.create_task(self._sender(ws, in_flight)),
            asyncio.create_task(self._heartbeat(ws)),
            asyncio.create_task(self._watch_clock()),
            asyncio.create_task(stop.wait()),
        ]
        try:
            await _until_first_ends(tasks)
        finally:
            self.stats.last_close = ws.close_code

    async def _sender(self, ws: ClientConnection, in_flight: dict[str, float]) -> None:
        cap = self.max_in_flight + self.alert_room
        while True:
            # Cleared before the outbox is read, not after the sends: a message queued (or an ack read) while
            # this loop awaits a send sets it again, so the wait below does not sleep through it (it did,
            # for up to 0.5 s, when an alert was queued during a send).
            self._wake.clear()
            room = cap - len(in_flight)
            # in sending order: alerts (not deferred) first, then the rest, then deferred ones
            batch = self.outbox.pending(room, skip=in_flight.keys()) if room > 0 else []
            sent = 0
            for q in batch:
                if q.deferred and in_flight:
                    break  # a suspected poison message goes alone: nothing else shares its fate (a batch)
                if len(in_flight) >= (cap if q.type == "alert" else self.max_in_flight):
                    break  # the window is full: only alerts go beyond it (they come first)
                if self._unsendable(q):
                    continue
                if self._head is None:
                    self._head = q.id
                await ws.send(q.text)
                in_flight[q.id] = time.monotonic()
                self.stats.sent += 1
                sent += 1
                if q.deferred:
                    break
            if in_flight and time.monotonic() - min(in_flight.values()) > self.ack_timeout_s:
                raise TimeoutError(f"no ack for {self.ack_timeout_s:.0f} s")
            if not sent or len(in_flight) >= self.max_in_flight:
                await wait_up_to(self._wake.wait(), 0.5)

    async def _reader(self, ws: ClientConnection, in_flight: dict[str, float]) -> None:
        async for raw in ws:
            self._answered = True
            try:
                frame = json.loads(raw)
                kind = frame.get("type")
            except (ValueError, AttributeError):
                log.warning("uplink: unreadable frame from backend ignored")
                continue
            if kind == "ack":
                ids = [i for i in frame.get("ids") or [] if isinstance(i, str)]
                n = self.outbox.ack(ids)
                self.stats.acked += n
                if n:
                    self._progress, self._strikes = True, (None, 0)
                for i in ids:
                    in_flight.pop(i, None)
                self._wake.set()
            elif kind == "error":
                mid = frame.get("id")
                log.error("backend rejected message %s: %s %s", mid, frame.get("code"), frame.get("message"))
                if isinstance(mid, str) and mid in in_flight:
                    if self.outbox.reject([mid]):
                        self.stats.rejected += 1
                        self._progress, self._strikes = True, (None, 0)
                    in_flight.pop(mid, None)
            elif kind == "welcome":
                self._learn_alert_socket(frame.get("alert_socket"))
                self._learn_clock(frame.get("server_time"))
            elif kind == "config_changed" and self.on_config_changed is not None:
                task = asyncio.ensure_future(self.on_config_changed())
                self._tasks.add(task)
                task.add_done_callback(self._config_done)

    async def _watch_clock(self, every_s: float = 1.0) -> None:
        """Our wall clock against the monotonic one: a jump of more than CLOCK_JUMP_S since the welcome (NTP
        catching up, a hand set: faults18) ends the session, so that the next welcome measures the clock again
        (and sets the radio's clock, BackendClock). Nothing is blamed: a reconnect, as after a lost network."""
        while True:
            await asyncio.sleep(every_s)
            if self._skew is None:
                continue
            jump = _skew() - self._skew
            if abs(jump) > CLOCK_JUMP_S:
                log.warning("this gateway's clock jumped by %+.0f s: reconnecting to measure it against the backend's",
                            jump)
                self._skew = None
                raise ClockJumped(f"clock jumped by {jump:+.0f} s")

    def _learn_clock(self, server_time: object) -> None:
        """The welcome's `server_time` against our wall clock: kept for the heartbeat (`clock_offset_s`), and
        an ERROR once when ours is off by more than CLOCK_WARN_S (the backend refuses positions and readings
        more than 10 min ahead of its clock, and older than 30 days)."""
        try:
            theirs = as_utc(datetime.fromisoformat(str(server_time)))
            offset = theirs - utcnow()
        except (TypeError, ValueError, OverflowError):
            return
        was, self.stats.clock_offset_s = self.stats.clock_offset_s, round(offset.total_seconds(), 1)
        self._skew = _skew()
        if self.clock is not None:
            self.clock.learn(theirs, offset.total_seconds())
        if abs(self.stats.clock_offset_s) > CLOCK_WARN_S and (was is None or abs(was) <= CLOCK_WARN_S):
            log.error("this gateway's clock is %+.0f s off the backend's: %s; set the clock (NTP)",
                      -self.stats.clock_offset_s,
                      "the radio stamps messages with the backend's time meanwhile" if self.clock is not None else
                      "the backend refuses positions and readings more than 10 min ahead (alerts it stores at "
                      "its own time)")

    # -- the alert socket (§3.3) --------------------------------------------------------
    def _learn_alert_socket(self, where: object) -> None:
        """The welcome's `alert_socket` ({"port", "path"} on the backend's host, or null) → the URL to use."""
        if self.alert_url:  # given (or "off"): the welcome does not change it
            return
        url = None
        if isinstance(where, dict) and isinstance(where.get("port"), int) and isinstance(where.get("path"), str) \
                and where["path"].startswith("/") and 0 < where["port"] < 65536:
            parts = urlsplit(self.url)
            host = parts.hostname or "127.0.0.1"
            host = f"[{host}]" if ":" in host else host
            url = f"{parts.scheme}://{host}:{where['port']}{where['path']}"
        if url != self._announced:
            self._announced = url
            if url:
                log.info("backend names an alert socket: %s", url)
                self._lane_known.set()
            else:
                self._lane_known.clear()

    def lane_url(self) -> str | None:
        if self.alert_url == "off":
            return None
        return self.alert_url or self._announced

    def lane_health(self) -> dict[str, Any] | None:
        """The alert socket for the heartbeat (protocol §3.4): None while none is known (none announced, or
        `off`), else whether it is open, how often it was opened, alerts sent and first acked on it, the last
        failure to open or keep it."""
        if self.lane_url() is None:
            return None
        s = self.stats
        error = s.alert_last_error[:130] if s.alert_last_error else None
        return {"connected": s.alert_connected, "connects": s.alert_connects, "sent": s.alert_sent,
                "acked": s.alert_acked, "last_error": error}

    def _dial(self, url: str) -> connect:
        """Either socket, opened the same way: the gateway's token, the same timeouts and pings."""
        return connect(url, additional_headers={"Authorization": f"Bearer {self._token}"},
                       open_timeout=self.open_timeout_s, ping_interval=20, ping_timeout=20, close_timeout=2)

    async def _alert_lane(self, stop: asyncio.Event) -> None:
        """Keep the alert socket open while one is known; reconnect with the main socket's backoff."""
        backoff = self.backoff_min_s
        while not stop.is_set():
            await self._lane_known.wait()
            url = self.lane_url()
            if url is None:
                self._lane_known.clear()
                continue
            started, self._lane_answered = time.monotonic(), False
            try:
                async with self._dial(url) as ws:
                    self.stats.alert_connected = True
                    self.stats.alert_connects += 1
                    log.info("alert socket connected to %s", url)
                    await self._lane_session(ws, stop)
            except (InvalidStatus, OSError, InvalidHandshake, ConnectionClosed, TimeoutError) as e:
                self.stats.alert_last_error = _why(e)
            finally:
                self.stats.alert_connected = False
            if stop.is_set():
                break
            if self._lane_answered and time.monotonic() - started > self.lived_s:
                backoff = self.backoff_min_s  # as on the main socket: only a session the backend answered
            delay = backoff * random.uniform(0.8, 1.2)
            log.warning("alert socket down (%s); alerts go on the main socket; retrying in %.1f s",
                        self.stats.alert_last_error, delay)
            await wait_up_to(stop.wait(), delay)
            backoff = min(self.backoff_max_s, backoff * 2.0)

    async def _lane_session(self, ws: ClientConnection, stop: asyncio.Event) -> None:
        in_flight: dict[str, float] = {}
        tasks = [asyncio.create_task(self._lane_reader(ws, in_flight)),
                 asyncio.create_task(self._lane_sender(ws, in_flight)),
                 asyncio.create_task(stop.wait())]
        await _until_first_ends(tasks)

    async def _lane_sender(self, ws: ClientConnection, in_flight: dict[str, float]) -> None:
        """Every queued alert not yet sent on this socket, at once, up to `alert_room` unacked; never a
        deferred one (a suspected poison message goes alone, on the main socket)."""
        while True:
            self._lane_wake.clear()
            room = self.alert_room - len(in_flight)
            for q in self.outbox.pending(room, skip=in_flight.keys()) if room > 0 else []:
                if q.type != "alert" or q.deferred:
                    break  # alerts come first in the sending order
                if self._unsendable(q):
                    continue
                await ws.send(q.text)
                in_flight[q.id] = time.monotonic()
                self.stats.alert_sent += 1
            if in_flight and time.monotonic() - min(in_flight.values()) > self.ack_timeout_s:
                raise TimeoutError(f"no ack on the alert socket for {self.ack_timeout_s:.0f} s")
            await wait_up_to(self._lane_wake.wait(), 0.5)

    async def _lane_reader(self, ws: ClientConnection, in_flight: dict[str, float]) -> None:
        async for raw in ws:
            self._lane_answered = True
            try:
                frame = json.loads(raw)
                kind = frame.get("type")
            except (ValueError, AttributeError):
                continue
            if kind == "ack":
                ids = [i for i in frame.get("ids") or [] if isinstance(i, str)]
                n = self.outbox.ack(ids)
                self.stats.acked += n
                self.stats.alert_acked += n
                for i in ids:
                    in_flight.pop(i, None)
                if n:
                    self._wake.set()  # the main sender looks at the outbox again (fewer pending)
                self._lane_wake.set()
            elif kind == "error":
                mid = frame.get("id")
                log.error("backend rejected message %s on the alert socket: %s", mid, frame.get("code"))
                if isinstance(mid, str) and mid in in_flight:
                    if self.outbox.reject([mid]):
                        self.stats.rejected += 1
                    in_flight.pop(mid, None)

    def _config_done(self, task: asyncio.Future[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("site config refresh after config_changed failed; the periodic poll retries",
                      exc_info=task.exception())

    async def _heartbeat(self, ws: ClientConnection) -> None:
        while True:
            try:
                body = self.health()
            except Exception as e:  # noqa: BLE001 - a heartbeat saying why beats no heartbeat
                log.exception("gateway health failed; sending a heartbeat without it")
                body = {"health_error": short_error(e)}
            await ws.send(envelope(_uuid(), "heartbeat", self.outbox.next_seq(), body))
            await asyncio.sleep(self.heartbeat_s)


class ClockJumped(Exception):
    """Our wall clock jumped during a session (see `Uplink._watch_clock`)."""


def _skew() -> float:
    return utcnow().timestamp() - time.monotonic()


def _uuid() -> str:
    import uuid

    return str(uuid.uuid4())


def _why(e: Exception) -> str:
    """A failed connection in one line for the heartbeat: the HTTP refusal, or the error's type and text."""
    if isinstance(e, InvalidStatus):
        return f"refused: HTTP {e.response.status_code}"
    return f"{type(e).__name__}: {e}"


async def _until_first_ends(tasks: list[asyncio.Task[Any]]) -> None:
    """A socket's session: its tasks run until the first ends (its error raised); the others are cancelled."""
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for t in done:
            if not t.cancelled() and t.exception() is not None:
                raise t.exception()  # type: ignore[misc]
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
