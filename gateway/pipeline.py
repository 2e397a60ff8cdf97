"""The gateway pipeline, as one ordered list of steps: decode → locate → match → detect → outbox.

`handle(advert)` runs per advert (decode, feed the locator, feed readings to
the detector; `feed(advert)` is the same for the scan loop, which needs no
Reading back: a repeat of a band frame already handled only feeds the
locator); `tick(now, wall)` runs once a second (estimate positions, the
due bands' tracks stepped in one batch, match, detect, sweep coverage, queue
what the backend must hear). A band
whose last match was inside with room to spare is estimated again only when
its verdict could have changed (`settled_for`: the slack over a walking
speed, at most 10 s); its sightings keep accumulating meanwhile. Match and
detect are injected (`Matcher`, `Detector`) so the map and detection code
can evolve without this file; `gateway.basic` holds the fallback ones. A
matcher with `match_many` (`BatchMatcher`) gets a tick's positions in one
batch; they are then detected one by one in band order, as they would be
one at a time (matching reads only the map and the zones).

With a raw-stream path (`raw`: `gateway.gatt.RawPath`), each fresh reading
is shown to it first (it may open a GATT session), fall alerts pass its gate
(one per fall, the model's first), and its own verdicts arrive through `emit`.

Nothing here does network I/O: it writes to the durable outbox and wakes the
uplink through `on_queued`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields, is_dataclass
from datetime import datetime
from typing import Any, Protocol

from chumphae.detect import severity
from chumphae.values import Advert, Detection, Match, Position, Reading, ZoneStatus
from gateway.decode import Decoders, default_decoders
from gateway.decode.chumphae_band import COMPANY_ID, ReplayGuard
from gateway.locate import Fix, Locator
from gateway.queue import Outbox
from gateway.siteconfig import SiteConfig
from gateway.track import V_MAX

log = logging.getLogger(__name__)

READING_EVERY_S = 300.0
SETTLED_MAX_S = 10.0


def settled_for(m: Match | None) -> float:
    """Seconds for which a band's verdict cannot change, so its next estimate can wait.

    Inside with the whole disc clear of the edge by `slack` metres: a person walks at most
    `V_MAX` m/s, so nothing can put them outside for slack / V_MAX seconds (at most
    `SETTLED_MAX_S`, so a zone's day → night switch or a receiver going quiet is seen within
    that). Anything else (uncertain, outside, no zone, no patient) is estimated every second."""
    if m is None or m.status != ZoneStatus.INSIDE or m.distance_to_boundary_m is None:
        return 0.0
    slack = -m.distance_to_boundary_m - m.position.uncertainty_m
    return min(SETTLED_MAX_S, max(0.0, slack) / V_MAX)


class Matcher(Protocol):
    def __call__(self, position: Position, patient_id: int | None) -> Match | None: ...


class BatchMatcher(Matcher, Protocol):
    """A matcher that also takes a whole tick's positions at once (the same Matches, vectorised)."""

    def match_many(self, positions: Sequence[Position], patient_ids: Sequence[int | None]) -> list[Match | None]: ...


class RawHooks(Protocol):
    """The live raw-stream path (`gateway.gatt.RawPath`): sees fresh readings (to decide whether
    to stream a band over GATT) and gates fall alerts (one per fall, the model's first)."""

    def seen(self, reading: Reading, patient_id: int | None) -> None: ...

    def filter(self, detections: list[Detection]) -> list[Detection]: ...

    def due(self, wall: datetime) -> list[Detection]: ...


class Detector(Protocol):
    def on_reading(self, reading: Reading, patient_id: int | None) -> list[Detection]: ...

    def on_position(self, position: Position, match: Match | None, patient_id: int | None) -> list[Detection]: ...

    def tick(self, wall: datetime) -> list[Detection]: ...


def _json(v: Any) -> Any:
    if v is None or isinstance(v, (str, int)):  # bool and StrEnum included
        return v
    if isinstance(v, datetime):
        return v.isoformat()
    if isinstance(v, dict):
        return {str(k): _json(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json(x) for x in v]
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if is_dataclass(v) and not isinstance(v, type):
        return _fields(v)
    return v


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _fields(obj: Any, *skip: str) -> dict[str, Any]:
    """`_json(dataclasses.asdict(obj))` without asdict's deep copy (and without the fields `skip`,
    which are never walked: a Position's region, a Match's position); the same keys in the same order."""
    names = _FIELD_NAMES.get(type(obj))
    if names is None:
        names = _FIELD_NAMES[type(obj)] = tuple(f.name for f in fields(obj))
    return {n: _json(getattr(obj, n)) for n in names if n not in skip}


def match_body(m: Match | None) -> dict[str, Any] | None:
    if m is None:
        return None
    return _fields(m, "position")


def position_body(p: Position, patient_id: int | None, m: Match | None) -> dict[str, Any]:
    body = _fields(p, "region", "region_weights", "passages")  # the locate step's grid cells and smoothed past: used here (matcher, wander detector), too bulky to send
    body["patient_id"] = patient_id
    body["match"] = match_body(m)
    return body


def alert_body(d: Detection, last: Position | None) -> dict[str, Any]:
    pos = d.match.position if d.match is not None else last
    return {
        "type": str(d.type),
        "severity": str(severity(d)),
        "address": d.address,
        "patient_id": d.patient_id,
        "t": d.t.isoformat(),
        "confidence": d.confidence,
        "lat": pos.lat if pos else None,
        "lon": pos.lon if pos else None,
        "uncertainty_m": pos.uncertainty_m if pos else None,
        "in_coverage": pos.in_coverage if pos else None,
        "match": match_body(d.match),
        "details": _json(d.details),
    }


def reading_body(r: Reading, patient_id: int | None) -> dict[str, Any]:
    body = _fields(r)
    body["patient_id"] = patient_id
    return body


@dataclass(slots=True)
class _Sent:
    position: Position | None = None
    position_mono: float = -math.inf
    status: str | None = None
    reading: Reading | None = None
    reading_mono: float = -math.inf


@dataclass(slots=True)
class PipelineStats:
    adverts: int = 0
    readings: int = 0
    positions: int = 0
    alerts: int = 0
    queued: int = 0
    by_alert: dict[str, int] = field(default_factory=dict)


class Pipeline:
    def __init__(
        self,
        config: SiteConfig,
        outbox: Outbox | None,
        matcher: Matcher,
        detector: Detector,
        *,
        window_s: float = 15.0,
        coverage_timeout_s: float = 60.0,
        position_every_s: float = 60.0,
        on_queued: Callable[[], None] = lambda: None,
        replay_guard: ReplayGuard | None = None,
    ) -> None:
        self.config = config
        self.outbox = outbox
        self.matcher = matcher
        self._match_many = getattr(matcher, "match_many", None)  # a BatchMatcher: one batch per tick
        self.detector = detector
        self.position_every_s = position_every_s
        self.on_queued = on_queued
        self.decoders: Decoders = default_decoders(config.key_for, replay_guard)
        self.locator = Locator(config.receivers, window_s=window_s, coverage_timeout_s=coverage_timeout_s)
        self.stats = PipelineStats()
        self._heard: set[str] = set()  # bands with sightings since the last tick
        self._last_seq: dict[str, int] = {}
        self._sent: dict[str, _Sent] = {}
        self._last_pos: dict[str, Position] = {}
        self._pending: list[tuple[str, dict[str, Any], datetime | None]] = []
        self._settled_until: dict[str, float] = {}  # band → monotonic time before which its verdict cannot change
        self.raw: RawHooks | None = None  # the GATT raw-stream path, when the gateway runs one

    # -- per advert ---------------------------------------------------------
    def feed(self, advert: Advert) -> None:
        """`handle` for the scan loop, which needs no Reading back. An advert that repeats a band frame
        already handled (the very bytes the band decoder last verified, under the band's key, with
        the counter this pipeline last took: the same frame through another receiver, or re-sent
        within its second) only feeds the locator, as `handle` does with it, without building a
        Reading; anything else goes through `handle`."""
        band = self.decoders.band
        md = advert.manufacturer_data
        payload = md.get(COMPANY_ID) if len(md) == 1 and not advert.service_data else None
        seq = None
        if band is not None and payload is not None and advert.address in self.config.by_address:
            seq = band.repeat(advert, payload)
        if band is None or seq is None or self._last_seq.get(advert.address) != seq:
            self.handle(advert)
            return
        self.stats.adverts += 1
        self.stats.readings += 1
        decoded = self.decoders.stats.decoded
        decoded[band.name] = decoded.get(band.name, 0) + 1
        if self.locator.observe(advert.address, advert.receiver, advert.rssi, advert.t, advert.monotonic):
            self._heard.add(advert.address)

    def handle(self, advert: Advert) -> Reading | None:
        """Decode one advert; feed the locator; feed fresh readings to the detector."""
        self.stats.adverts += 1
        reading = self.decoders.decode(advert)
        if reading is None or reading.address not in self.config.by_address:
            return reading
        self.stats.readings += 1
        if self.locator.observe(reading.address, reading.receiver, reading.rssi, reading.t, advert.monotonic):
            self._heard.add(reading.address)
        if reading.seq is not None and self._last_seq.get(reading.address) == reading.seq:
            return reading  # the same frame through another receiver: located, not re-detected
        if reading.seq is not None:
            self._last_seq[reading.address] = reading.seq
        pid = self.config.patient_for(reading.address)
        if self.raw is not None:
            self.raw.seen(reading, pid)  # before detection: a held fall knows its band is streaming
        self._alerts(self.detector.on_reading(reading, pid))
        self._maybe_reading(reading, pid, advert.monotonic)
        return reading

    def handle_fix(self, fix: Fix, now: float) -> None:
        """A GPS fix: same path as BLE positions from match on."""
        self._position(self.locator.locate_fix(fix, now), now)

    # -- per second ---------------------------------------------------------
    def tick(self, now: float, wall: datetime) -> None:
        heard, self._heard = self._heard, set()
        due: list[str] = []
        for address in sorted(heard):
            if self._settled_until.get(address, -math.inf) > now:
                self._heard.add(address)  # still heard: estimated once its verdict could change
                continue
            due.append(address)
        # the due bands' tracks are stepped in one batch (each as it would be alone)
        found = [p for p in self.locator.estimate_many(due, now) if p is not None]
        found += self.locator.sweep(now)
        # matching reads only the map and the zones, so the tick's positions are matched in one batch,
        # then detected one by one in the same order as before
        self._positions(found, now)
        self._alerts(self.detector.tick(wall))
        if self.raw is not None:
            self.emit(self.raw.due(wall))
        self.flush()

    def flush(self) -> None:
        if self._pending and self.outbox is not None:
            self.outbox.put_many(self._pending)
            self.stats.queued += len(self._pending)
            self._pending = []
            self.on_queued()
        self._pending.clear()

    # -- steps ---------------------------------------------------------------
    def _positions(self, found: list[Position], now: float) -> None:
        if len(found) > 1 and self._match_many is not None:
            pids = [self.config.patient_for(p.address) for p in found]
            for pos, pid, match in zip(found, pids, self._match_many(found, pids), strict=True):
                self._matched(pos, pid, match, now)
        else:
            for pos in found:
                self._position(pos, now)

    def _position(self, pos: Position, now: float) -> None:
        pid = self.config.patient_for(pos.address)
        self._matched(pos, pid, self.matcher(pos, pid), now)

    def _matched(self, pos: Position, pid: int | None, match: Match | None, now: float) -> None:
        self._settled_until[pos.address] = now + settled_for(match) if pos.in_coverage else -math.inf
        self._last_pos[pos.address] = pos
        self._alerts(self.detector.on_position(pos, match, pid))
        sent = self._sent.setdefault(pos.address, _Sent())
        status = match.status.value if match is not None else None
        if sent.position is None or self._moved(sent.position, pos) or status != sent.status or (
            pos.in_coverage != sent.position.in_coverage
        ) or now - sent.position_mono >= self.position_every_s:
            sent.position, sent.position_mono, sent.status = pos, now, status
            self.stats.positions += 1
            self._pending.append(("position", position_body(pos, pid, match), None))

    @staticmethod
    def _moved(a: Position, b: Position) -> bool:
        dy = (a.lat - b.lat) * 110_574.0
        dx = (a.lon - b.lon) * 110_574.0 * math.cos(math.radians(a.lat))
        return math.hypot(dx, dy) > max(10.0, 0.5 * max(a.uncertainty_m, b.uncertainty_m))

    def _maybe_reading(self, r: Reading, pid: int | None, now: float) -> None:
        sent = self._sent.setdefault(r.address, _Sent())
        last = sent.reading
        changed = last is None or (
            (r.worn, r.charging, r.sos, r.fall_flag) != (last.worn, last.charging, last.sos, last.fall_flag)
            or abs((r.battery_pct or 0.0) - (last.battery_pct or 0.0)) >= 5.0
        )
        if changed or now - sent.reading_mono >= READING_EVERY_S:
            sent.reading, sent.reading_mono = r, now
            self._pending.append(("reading", reading_body(r, pid), None))

    def _alerts(self, detections: list[Detection]) -> None:
        if self.raw is not None and detections:
            detections = self.raw.filter(detections)
        self.emit(detections)

    def emit(self, detections: list[Detection]) -> None:
        """Queue alerts as they are (the raw path's own, already gated), durable at once."""
        for d in detections:
            self.stats.alerts += 1
            self.stats.by_alert[str(d.type)] = self.stats.by_alert.get(str(d.type), 0) + 1
            last = self._last_pos.get(d.address) if d.address else None
            log.warning("alert %s (patient %s)", d.type, d.patient_id)
            self._pending.append(("alert", alert_body(d, last), None))
        if detections:
            self.flush()  # alerts are durable at once, not at the next tick
