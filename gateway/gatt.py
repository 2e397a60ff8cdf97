"""The live raw-stream path: connect to a band over GATT when its advert suggests a fall, run the
fall model on its raw accelerometer stream, and decide which fall alerts leave the gateway.

An advert carries a one-second summary; the summary rule (`chumphae.detect.fall_summary`)
judges that. A raw stream needs a connection (docs/band-frame.md, "Raw stream over GATT"), so:

* when: a band's authenticated advert shows its fall flag or a second whose max |a| reaches
  `trigger_g` (`RawStreams.request`, called from the pipeline; never blocks it);
* how many: at most `max_connections` at once; others wait in a short queue (a full queue drops
  and counts; the summary rule still judges those);
* how: `connect(address)` gives a client with BleakClient's small protocol (`GattClient`):
  connect, `start_notify(CHAR_UUID, callback)`, disconnect. The band first sends the samples it
  holds from before the subscription (≥ `PRE_S` + 2 s), then live ones; each notification is
  decoded (`gateway.decode.rawstream`) into a per-session `LiveFallDetector`, the same model as
  `chumphae falls detect`;
* until: the candidate is decided (the model found a fall, or `POST_S` + 1 s of stream passed the
  trigger), or `session_s`, or `connect_timeout_s` to connect; then disconnect. Any BlueZ error
  ends that session (counted, logged) and nothing else;
* supervised: the request loop runs under `chumphae.supervise.Supervisor` (service.py).

`FallGate` decides what is sent: one fall alert per fall. A summary-rule fall for a band whose
stream is being read is held until the model's verdict, at most until impact + 10 s: a fall
from the model is sent (source "raw stream", the model's confidence; the summary rule's
confidence in its details) and the held one dropped; a verdict of "no fall" on a stream that
covered the whole window overrules the summary rule (the band's flag is evidence, not proof);
a stream that failed or had gaps releases the held alert as it is. Any fall alert within
`dedupe_s` of one already sent for the band is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from chumphae.detect import fall_features as ff
from chumphae.detect.fall_detector import LIVE_DECIDE_S, LiveFallDetector, ModelFall
from chumphae.detect.fall_model import FallModel
from chumphae.supervise import short_error
from chumphae.values import AlertType, Detection, Reading
from gateway.decode.rawstream import CHAR_UUID, RawStream

log = logging.getLogger(__name__)

SOURCE_RAW = "raw stream"
# The summary path's name, kept though a model decides there since falls-11: clients match on it
# (docs/gateway-protocol.md); `details.summary_model` (true) says the model, not the rule, decided.
SOURCE_SUMMARY = "summary rule"
HOLD_S = 10.0  # a held summary-rule fall leaves by impact + 10 s whatever happens
DONE_AFTER_S = ff.POST_S + 1.0  # stream past the trigger before "no fall" is a verdict


class GattClient(Protocol):
    """What the raw path needs of a GATT client: bleak's `BleakClient` has it."""

    async def connect(self) -> Any: ...

    async def disconnect(self) -> Any: ...

    async def start_notify(self, char_specifier: str, callback: Callable[[Any, bytearray], None]) -> None: ...


ClientFactory = Callable[[str], GattClient]


def bleak_factory(adapter: str | None, timeout_s: float) -> ClientFactory:
    """Real clients: `BleakClient` on `adapter` (BlueZ over D-Bus)."""
    from bleak import BleakClient

    def make(address: str) -> GattClient:
        return BleakClient(address, timeout=timeout_s, bluez={"adapter": adapter} if adapter else {})

    return make


@dataclass(frozen=True, slots=True)
class RawFall:
    t: datetime  # impact, wall clock
    fall: ModelFall


@dataclass(frozen=True, slots=True)
class Verdict:
    """What one session saw. `covered`: the stream held the whole window around the trigger
    (from `PRE_S` + 1 s before it to `DONE_AFTER_S` after, no block lost, no clock reset)."""

    address: str
    trigger: datetime
    falls: tuple[RawFall, ...]
    covered: bool
    reason: str  # "decided", "timeout", "connect failed: …", "error: …"
    span: tuple[datetime, datetime] | None = None  # wall times the stream covered


@dataclass(slots=True)
class GattStats:
    requests: int = 0
    sessions: int = 0
    connect_failures: int = 0
    errors: int = 0
    busy_drops: int = 0  # requests dropped: queue full
    notifications: int = 0
    malformed: int = 0
    lost: int = 0
    falls: int = 0
    no_falls: int = 0


class RawStreams:
    """Bounded GATT sessions, one per band at a time; each ends with a `Verdict` to `on_verdict`."""

    def __init__(
        self,
        connect: ClientFactory,
        on_verdict: Callable[[Verdict], None],
        *,
        wall: Callable[[], datetime],
        max_connections: int = 2,
        session_s: float = 30.0,
        connect_timeout_s: float = 10.0,
        queue_size: int = 16,
        model: FallModel | None = None,
    ) -> None:
        self.connect = connect
        self.on_verdict = on_verdict
        self.wall = wall
        self.max_connections = max(1, max_connections)
        self.session_s = session_s
        self.connect_timeout_s = connect_timeout_s
        self.model = model
        self.stats = GattStats()
        self._queue: asyncio.Queue[tuple[str, datetime]] | None = None
        self._queue_size = queue_size
        self._triggers: dict[str, list[datetime]] = {}  # band → triggers its session has still to judge
        self._running: dict[str, asyncio.Task[None]] = {}

    # -- called from the pipeline (synchronous, never blocks) --------------------
    def request(self, address: str, trigger: datetime) -> bool:
        """Stream this band around `trigger`. False when the request had to be dropped."""
        pending = self._triggers.get(address)
        if pending is not None:  # queued or streaming: judge the later trigger too, on the same connection
            if not pending or trigger > pending[-1]:
                pending.append(trigger)
            return True
        if self._queue is None:
            self._queue = asyncio.Queue(self._queue_size)
        try:
            self._queue.put_nowait((address, trigger))
        except asyncio.QueueFull:
            self.stats.busy_drops += 1
            return False
        self.stats.requests += 1
        self._triggers[address] = [trigger]
        return True

    def active(self, address: str) -> bool:
        """Queued or streaming: a verdict is coming."""
        return address in self._triggers

    # -- the supervised loop -------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Start queued sessions, at most `max_connections` at once, until `stop`."""
        if self._queue is None:
            self._queue = asyncio.Queue(self._queue_size)
        queue = self._queue
        slots = asyncio.Semaphore(self.max_connections)
        try:
            while not stop.is_set():
                try:
                    async with asyncio.timeout(1.0):  # not wait_for: it can swallow a cancellation
                        address, trigger = await queue.get()
                except TimeoutError:
                    continue
                await slots.acquire()
                task = asyncio.create_task(self._session(address, trigger, slots), name=f"gatt {address}")
                self._running[address] = task
        finally:
            running = list(self._running.values())
            for t in running:
                t.cancel()
            await asyncio.gather(*running, return_exceptions=True)
            self._running.clear()

    async def _session(self, address: str, trigger: datetime, slots: asyncio.Semaphore) -> None:
        verdict: Verdict | None = None
        try:
            verdict = await self._stream(address, trigger)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - one band's failure ends its session, never the gateway
            self.stats.errors += 1
            log.warning("raw stream session failed: %s", short_error(e))
            verdict = Verdict(address, trigger, (), False, f"error: {short_error(e)}")
        finally:
            slots.release()
            self._running.pop(address, None)
            self._triggers.pop(address, None)
        if verdict is not None:
            self._deliver(verdict)

    def _deliver(self, verdict: Verdict) -> None:
        try:
            self.on_verdict(verdict)
        except Exception:  # noqa: BLE001 - a failing consumer must not end the session loop
            self.stats.errors += 1
            log.exception("raw stream verdict could not be delivered")

    async def _stream(self, address: str, trigger: datetime) -> Verdict:
        self.stats.sessions += 1
        client = self.connect(address)
        inbox: asyncio.Queue[bytes] = asyncio.Queue(4096)

        def on_notify(_char: Any, data: bytearray) -> None:  # bleak's callback: enqueue only
            with contextlib.suppress(asyncio.QueueFull):
                inbox.put_nowait(bytes(data))

        loop = asyncio.get_running_loop()
        try:
            try:
                async with asyncio.timeout(self.connect_timeout_s):
                    await client.connect()
                    await client.start_notify(CHAR_UUID, on_notify)
            except Exception as e:  # noqa: BLE001 - BleakError, dbus-fast DBusError, TimeoutError …
                self.stats.connect_failures += 1
                log.warning("raw stream: connect failed: %s", short_error(e))
                return Verdict(address, trigger, (), False, f"connect failed: {short_error(e)}")
            return await self._read(address, trigger, inbox, loop.time() + self.session_s)
        finally:
            with contextlib.suppress(Exception):  # a vanished adapter cannot disconnect cleanly
                async with asyncio.timeout(self.connect_timeout_s):
                    await client.disconnect()

    async def _read(self, address: str, trigger: datetime, inbox: asyncio.Queue[bytes], end: float) -> Verdict:
        """Judge each trigger once the stream is `DONE_AFTER_S` past it (a verdict each, sent as it
        comes); the session ends when none is left, a fall is found, or at `end`."""
        loop = asyncio.get_running_loop()
        stream = RawStream()
        det: LiveFallDetector | None = None
        anchor: datetime | None = None  # wall time of the band's clock zero
        first_s: float | None = None
        found: list[ModelFall] = []
        pending = self._triggers.setdefault(address, [trigger])
        try:
            while True:
                remaining = end - loop.time()
                if remaining <= 0:
                    break
                try:
                    async with asyncio.timeout(remaining):
                        data = await inbox.get()
                except TimeoutError:
                    break
                self.stats.notifications += 1
                s = stream.feed(data)
                if s is None:
                    continue
                if det is None:
                    det = LiveFallDetector(s.hz, model=self.model)
                # a live notification leaves as its last sample is taken; one from the band's history
                # left later than that: the earliest clock zero seen so far is the best estimate
                zero = self.wall() - timedelta(seconds=float(s.t[-1]))
                anchor = zero if anchor is None else min(anchor, zero)
                if first_s is None:
                    first_s = float(s.t[0])
                found += det.push(s.t, s.xyz_g)
                if found:
                    return self._verdict(address, pending[0], found, stream, anchor, first_s, "decided")
                end_s, now = stream.end_s, self.wall()
                assert end_s is not None

                def judged(trig: datetime, zero: datetime = anchor, end_s: float = end_s, now: datetime = now) -> bool:
                    # past it by the band's clock, and by the wall clock too: while the band's history
                    # pours in, the clock zero is still too late (a "no fall" then would come too early)
                    return (end_s >= (trig - zero).total_seconds() + DONE_AFTER_S
                            and now >= trig + timedelta(seconds=DONE_AFTER_S))

                while len(pending) > 1 and judged(pending[0]):
                    self._deliver(self._verdict(address, pending.pop(0), [], stream, anchor, first_s, "decided"))
                if judged(pending[0]):
                    return self._verdict(address, pending[0], [], stream, anchor, first_s, "decided")
        finally:
            self.stats.malformed += stream.malformed
            self.stats.lost += stream.lost
        if anchor is None or first_s is None:
            return Verdict(address, pending[0], (), False, "timeout")
        return self._verdict(address, pending[0], [], stream, anchor, first_s, "timeout")

    def _verdict(self, address: str, trigger: datetime, found: list[ModelFall], stream: RawStream,
                 anchor: datetime, first_s: float, reason: str) -> Verdict:
        assert stream.end_s is not None
        trig_s = (trigger - anchor).total_seconds()
        covered = (reason == "decided" and first_s <= trig_s - 1.0 - ff.PRE_S
                   and stream.lost == 0 and stream.resets == 0)
        if found:
            self.stats.falls += len(found)
        elif reason == "decided":
            self.stats.no_falls += 1
        # what the model has judged: every candidate up to LIVE_DECIDE_S before the newest sample
        span = (anchor + timedelta(seconds=first_s), anchor + timedelta(seconds=stream.end_s - LIVE_DECIDE_S))
        falls = tuple(RawFall(anchor + timedelta(seconds=f.t), f) for f in found)
        return Verdict(address, trigger, falls, covered, reason, span)

    def health(self) -> dict[str, int]:
        s = self.stats
        return {"gatt_sessions": s.sessions, "gatt_connect_failures": s.connect_failures,
                "gatt_errors": s.errors, "gatt_busy_drops": s.busy_drops, "gatt_lost": s.lost,
                "gatt_malformed": s.malformed, "gatt_streaming": len(self._running)}


@dataclass(slots=True)
class _Held:
    detection: Detection
    deadline: datetime


@dataclass(slots=True)
class FallGate:
    """One fall alert per fall, the model's over the summary rule's (see the module docstring)."""

    dedupe_s: float = 60.0
    sent: dict[str, datetime] = field(default_factory=dict)  # band → impact time of the last fall sent
    held: dict[str, _Held] = field(default_factory=dict)
    negative: dict[str, tuple[datetime, datetime]] = field(default_factory=dict)  # covered "no fall" spans
    duplicates: int = 0
    overruled: int = 0

    def _fresh(self, d: Detection) -> bool:
        last = self.sent.get(d.address or "")
        if last is not None and abs((d.t - last).total_seconds()) < self.dedupe_s:
            self.duplicates += 1
            return False
        self.sent[d.address or ""] = d.t
        return True

    def summary(self, d: Detection, streaming: bool) -> list[Detection]:
        """A summary-rule fall: held while the band streams, dropped if the model already said."""
        d = replace(d, details={**d.details, "source": SOURCE_SUMMARY})
        addr = d.address or ""
        span = self.negative.get(addr)
        if span is not None and span[0] <= d.t <= span[1]:
            self.overruled += 1
            log.info("summary-rule fall overruled by the raw stream's model (no fall)")
            return []
        if streaming and addr not in self.held:
            self.held[addr] = _Held(d, d.t + timedelta(seconds=HOLD_S))
            return []
        return [d] if self._fresh(d) else []

    def verdict(self, v: Verdict, patient_id: int | None) -> list[Detection]:
        """A verdict on one trigger: its falls (deduped), and the fate of a held summary-rule fall."""
        held = self.held.get(v.address)
        out: list[Detection] = []
        for rf in v.falls:
            d = raw_detection(v.address, patient_id, rf)
            if held is not None:  # the model's alert replaces the summary rule's
                d.details["summary_rule_confidence"] = held.detection.confidence
                d.details["band_flag"] = held.detection.details.get("band_flag")
                del self.held[v.address]
                held = None
            if self._fresh(d):
                out.append(d)
        if v.falls or held is None:
            return out
        if v.covered and v.span is not None:
            self.negative[v.address] = v.span
            if v.span[0] <= held.detection.t <= v.span[1]:  # judged by the model: no fall
                del self.held[v.address]
                self.overruled += 1
                log.info("summary-rule fall overruled by the raw stream's model (no fall)")
            return out  # else: judged by a later verdict, or released at its deadline
        del self.held[v.address]  # no usable verdict (no connection, holes): the summary rule stands
        return out + ([held.detection] if self._fresh(held.detection) else [])

    def due(self, wall: datetime) -> list[Detection]:
        """Held summary-rule falls whose time is up (no verdict by impact + `HOLD_S`)."""
        out: list[Detection] = []
        for addr, h in list(self.held.items()):
            if wall >= h.deadline:
                del self.held[addr]
                if self._fresh(h.detection):
                    out.append(h.detection)
        return out


def raw_detection(address: str, patient_id: int | None, rf: RawFall) -> Detection:
    f = rf.fall
    return Detection(
        type=AlertType.FALL, t=rf.t, address=address, patient_id=patient_id, confidence=f.confidence,
        details={"source": SOURCE_RAW, "decided_after_s": round(f.decided_at - f.t, 1),
                 "model_confidence": f.confidence,
                 "summary_th": "สงสัยผู้ป่วยหกล้ม (ข้อมูลการเคลื่อนไหวละเอียด) กรุณาตรวจดูทันที",
                 "summary_en": "Suspected fall (raw motion stream): please check on the patient now"},
    )


class RawPath:
    """The pipeline's hooks (`gateway.pipeline.RawHooks`): triggers, the gate, verdicts → alerts."""

    def __init__(self, streams_factory: Callable[[Callable[[Verdict], None]], RawStreams], *,
                 trigger_g: float = 2.0, dedupe_s: float = 60.0) -> None:
        self.streams = streams_factory(self._verdict)
        self.trigger_g = trigger_g
        self.gate = FallGate(dedupe_s=dedupe_s)
        self.patient_for: Callable[[str], int | None] = lambda _a: None
        self.sink: Callable[[list[Detection]], None] = lambda _ds: None
        self._flagged: dict[str, bool] = {}

    def seen(self, reading: Reading, patient_id: int | None) -> None:
        if patient_id is None or reading.kind != "chumphae" or not reading.authenticated:
            return
        m = reading.motion
        flag_rose = reading.fall_flag and not self._flagged.get(reading.address, False)
        self._flagged[reading.address] = reading.fall_flag  # the flag stays up for a minute: its rise counts
        if flag_rose or (m is not None and m.max_g >= self.trigger_g):
            self.streams.request(reading.address, reading.t)

    def filter(self, detections: list[Detection]) -> list[Detection]:
        out: list[Detection] = []
        for d in detections:
            if d.type == AlertType.FALL and d.address is not None:
                out += self.gate.summary(d, self.streams.active(d.address))
            else:
                out.append(d)
        return out

    def due(self, wall: datetime) -> list[Detection]:
        return self.gate.due(wall)

    def _verdict(self, v: Verdict) -> None:
        log.info("raw stream verdict: %s, %d fall(s), covered=%s", v.reason, len(v.falls), v.covered)
        found = self.gate.verdict(v, self.patient_for(v.address))
        if found:
            self.sink(found)

    def health(self) -> dict[str, int]:
        return {**self.streams.health(), "falls_overruled": self.gate.overruled,
                "falls_deduped": self.gate.duplicates}
