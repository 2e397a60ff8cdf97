"""The simulated source: runs a scenario second by second and yields the Adverts receivers would hear.

Each simulated band builds its real frame (`gateway.decode.chumphae_band.encode`
with its key from the site config), so the pipeline decodes, authenticates
and replay-checks simulated bytes exactly as it would real ones. Yields
`None` at every simulated second so the pipeline ticks even when nothing is
heard (everyone out of coverage).
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from chumphae.timeutil import utcnow
from chumphae.values import Advert, Motion
from gateway.decode import chumphae_band as band
from gateway.decode import rawstream
from gateway.simulate import motion
from gateway.simulate.radio import RadioModel, distance_m
from gateway.simulate.scenario import Event, PatientPlan, Scenario
from gateway.siteconfig import Band, SiteConfig

Point = tuple[float, float]  # lat, lon


@dataclass
class _Sim:
    plan: PatientPlan
    band: Band
    pos: Point
    path: list[Point]
    route: list[Point]
    speed: float
    battery: float
    seq: int
    walking: bool = True
    worn: bool = True
    band_pos: Point | None = None  # where a removed band lies
    charging: bool = False
    sos_until: float = -1.0
    fall_flag_until: float = -1.0
    trace: list[motion.Sample] = field(default_factory=list)
    trace_all: list[motion.Sample] = field(default_factory=list)
    lying: bool = False
    steps: int = 0
    next_event: int = 0
    extra: list[Event] = field(default_factory=list)  # events injected while running (`SimSource.inject`)
    silent_until: float = -1.0  # the band says nothing until then (`quiet`)
    posture: motion.Sample = motion.RESTING  # the resting wrist's gravity direction; shifts now and then
    posture_at: float = 0.0  # when it shifts next


def _pt(v: object) -> Point:
    lat, lon = cast(tuple[float, float], v)
    return float(lat), float(lon)


def _step_towards(a: Point, b: Point, metres: float) -> tuple[Point, bool]:
    d = distance_m(a, b)
    if d <= metres or d == 0:
        return b, True
    f = metres / d
    return (a[0] + (b[0] - a[0]) * f, a[1] + (b[1] - a[1]) * f), False


def _offset(p: Point, metres: float, bearing_deg: float) -> Point:
    b = math.radians(bearing_deg)
    dlat = metres * math.cos(b) / 110_574.0
    dlon = metres * math.sin(b) / (110_574.0 * math.cos(math.radians(p[0])))
    return (p[0] + dlat, p[1] + dlon)


class SimGatt:
    """The simulated bands' GATT side: per band, a history of samples and the subscribers to its
    raw-stream characteristic, fed each simulated second (docs/band-frame.md, "Raw stream")."""

    HISTORY_S = 10.0  # what a band holds from before a subscription (the model needs 3 s before an impact)
    BLOCK = 25  # samples per notification (½ s at 50 Hz; 160 bytes)

    def __init__(self, addresses: set[str]) -> None:
        self.addresses = addresses
        self.history: dict[str, deque[tuple[int, list[motion.Sample]]]] = {}
        self.subscribers: dict[str, list[Callable[[Any, bytearray], None]]] = {}
        self.seq: dict[str, int] = {}

    def record(self, address: str, now: float, samples: list[motion.Sample]) -> None:
        h = self.history.setdefault(address, deque(maxlen=int(self.HISTORY_S) + 1))
        h.append((round(now * 1000), samples))
        for cb in list(self.subscribers.get(address, ())):
            self._send(address, cb, round(now * 1000), samples)

    def _send(self, address: str, cb: Callable[[Any, bytearray], None], t0_ms: int,
              samples: list[motion.Sample]) -> None:
        for i in range(0, len(samples), self.BLOCK):
            block = [(round(x * 1000), round(y * 1000), round(z * 1000)) for x, y, z in samples[i : i + self.BLOCK]]
            seq = self.seq.get(address, 0)
            self.seq[address] = (seq + 1) & 0xFFFF
            cb(None, bytearray(rawstream.encode(seq, t0_ms + i * 1000 // motion.HZ, motion.HZ, block)))

    def subscribe(self, address: str, cb: Callable[[Any, bytearray], None]) -> None:
        for t0_ms, samples in self.history.get(address, ()):
            self._send(address, cb, t0_ms, samples)
        self.subscribers.setdefault(address, []).append(cb)

    def unsubscribe(self, address: str) -> None:
        self.subscribers.pop(address, None)


class SimGattClient:
    """BleakClient's small protocol (`gateway.gatt.GattClient`) against a simulated band."""

    def __init__(self, gatt: SimGatt, address: str) -> None:
        self.gatt = gatt
        self.address = address
        self.connected = False

    async def connect(self) -> bool:
        await asyncio.sleep(0)
        if self.address not in self.gatt.addresses:
            raise ConnectionError("no such simulated band")
        self.connected = True
        return True

    async def start_notify(self, char_specifier: str, callback: Callable[[Any, bytearray], None]) -> None:
        if not self.connected or char_specifier != rawstream.CHAR_UUID:
            raise ConnectionError("not connected" if not self.connected else "no such characteristic")
        self.gatt.subscribe(self.address, callback)

    async def disconnect(self) -> bool:
        self.gatt.unsubscribe(self.address)
        self.connected = False
        return True


class SimSource:
    def __init__(self, scenario: Scenario, site: SiteConfig, speed: float = 1.0, start: datetime | None = None) -> None:
        self.scenario = scenario
        self.site = site
        self.speed = speed
        self.start = start or scenario.start or utcnow()
        self.rng = random.Random(scenario.seed)
        self.posture_rng = random.Random(scenario.seed + 1)  # its own stream: positions do not change with it
        self.radio = RadioModel(scenario.radio, self.rng)
        self._now = 0.0
        self.done = False
        self.sims = [self._make(p) for p in scenario.patients]
        r = scenario.radio
        self._reach_m = 10 ** ((r.p1m_dbm - r.sensitivity_dbm + 20.0) / (10 * r.path_loss_n))
        self.gatt: SimGatt | None = None  # the bands' raw streams, once a GATT client was asked for
        # Faster than real time, the simulated clock runs ahead of this computer's; a backend refuses positions
        # stamped more than 10 minutes ahead (chumphae/ingest/envelope.py FUTURE). Set, the source runs at
        # `speed` until its clock is this far ahead of the wall clock, then at real time (`chumphae demo`).
        self.max_ahead_s: float | None = None

    def gatt_clients(self) -> Callable[[str], SimGattClient]:
        """The simulated bands' GATT side switched on (from now, each band keeps its last seconds
        of samples), and its client factory (a `gateway.gatt.ClientFactory`)."""
        if self.gatt is None:
            self.gatt = SimGatt({b.band.address for b in self.sims})
        gatt = self.gatt
        return lambda address: SimGattClient(gatt, address.upper())

    def clock(self) -> float:
        return self._now

    def wall(self) -> datetime:
        return self.start + timedelta(seconds=self._now)

    def real_s_until(self, sim_s: float, speed: float | None = None) -> float:
        """Real seconds until the simulated clock reads `sim_s`, at `speed` (default: the source's) and within
        `max_ahead_s`."""
        d, speed = max(0.0, sim_s - self._now), self.speed if speed is None else speed
        if self.max_ahead_s is None or 0 < speed <= 1.0:
            return d / speed if speed > 0 else 0.0
        room = max(0.0, self.max_ahead_s - (self.wall() - utcnow()).total_seconds())  # lead still to gain
        if speed <= 0:  # flat out is held at max_ahead_s too (`__aiter__`): then real time (review19gw)
            return max(0.0, d - room)
        fast = room / (speed - 1.0)  # real seconds at full speed before the clock is held
        return d / speed if d <= speed * fast else fast + (d - speed * fast)

    def _make(self, p: PatientPlan) -> _Sim:
        if isinstance(p.band, int):
            b = self.site.bands[p.band]
        else:
            found = self.site.by_address.get(str(p.band).upper())
            if found is None:
                raise ValueError(f"scenario band {p.band} is not in the site config")
            b = found
        route = list(p.route)
        home = next((q.get("home") for q in self.site.patients if q.get("id") == b.patient_id and q.get("home")), None)
        if not route:
            for r in self.site.routes:
                if r.get("patient_id") == b.patient_id and r.get("geometry", {}).get("type") == "LineString":
                    route = [(lat, lon) for lon, lat in r["geometry"]["coordinates"]]
            if route and home:  # the site's route: walked inside the zone in force, raising nothing unpromised
                route = self._inside(b.patient_id, (float(home["lat"]), float(home["lon"])), route)
        if isinstance(p.at, tuple):
            start = p.at
        elif home:
            start = (float(home["lat"]), float(home["lon"]))
        elif route:
            start = route[0]
        else:
            raise ValueError(f"scenario patient on band {b.address}: no start (at / home / route)")
        seq0 = int(self.start.timestamp()) & 0x7FFFFFFF  # bands keep counting across runs
        return _Sim(p, b, start, list(route), route, p.speed_mps, p.battery_pct, seq0)

    def _inside(self, patient_id: int | None, home: Point, route: list[Point]) -> list[Point]:
        """The part of a site's route the patient walks back and forth inside the zone in force at the start
        (the night zone at night, by the gateway's own rule): a routine walk, not an excursion."""
        from gateway.simulate.district import night_rule
        from gateway.simulate.paths import route_inside

        night = night_rule(self.site, patient_id)(self.start)
        return route_inside(self.site, patient_id, home, route, night=night)

    # -- one simulated second ---------------------------------------------------
    def inject(self, band: int, event: Event) -> None:
        """Add an event to the band's plan while running (`at` is simulated seconds, as in the file)."""
        sim = self.sims[band]
        sim.extra.append(event)
        sim.extra.sort(key=lambda e: e.at)

    def _due(self, s: _Sim) -> Iterator[Event]:
        evs = s.plan.events
        while s.next_event < len(evs) and evs[s.next_event].at <= self._now:
            s.next_event += 1
            yield evs[s.next_event - 1]
        while s.extra and s.extra[0].at <= self._now:
            yield s.extra.pop(0)

    def _events(self, s: _Sim) -> None:
        for e in self._due(s):
            a = e.args
            if e.type == "walk_path":
                s.path, s.walking, s.lying = [_pt(x) for x in a["path"]], True, False
                s.speed = float(a.get("speed_mps", s.speed))
                s.route = []
            elif e.type == "walk_out":
                from gateway.simulate.paths import walk_out

                s.path = walk_out(self.site, s.band.patient_id, s.pos, beyond_m=float(a.get("beyond_m", 120.0)))
                s.walking, s.lying, s.route = True, False, []
                s.speed = float(a.get("speed_mps", s.speed))
            elif e.type == "quiet":
                s.silent_until = self._now + float(a.get("duration_s", 1e12))
            elif e.type == "walk_to":
                to = a.get("to") or _offset(s.pos, float(a["distance_m"]), float(a.get("bearing_deg", 0.0)))
                s.path, s.walking, s.lying = [to], True, False
                s.speed = float(a.get("speed_mps", s.speed))
                s.route = []  # no more back and forth: this is a wander
            elif e.type == "fall":
                s.trace = motion.fall(self.rng)
                s.trace_all = list(s.trace)
                s.walking = False
            elif e.type == "sos":
                s.sos_until = self._now + float(a.get("duration_s", 30))
            elif e.type == "remove_band":
                s.worn, s.band_pos = False, s.pos
            elif e.type == "put_on":
                s.worn, s.band_pos = True, None
            elif e.type == "stop":
                s.walking = False
            elif e.type == "resume":
                s.walking, s.lying = True, False
            elif e.type == "battery":
                s.battery = float(a["pct"])
            elif e.type == "charge":
                s.charging = True
            elif e.type == "uncharge":
                s.charging = False

    def _move(self, s: _Sim) -> None:
        if not s.walking or s.lying:
            return
        if not s.path and len(s.route) > 1:
            s.route.reverse()  # walk the route back and forth
            s.path = list(s.route[1:])
        if not s.path:
            return
        metres = s.speed
        while metres > 0 and s.path:
            nxt = s.path[0]
            d = distance_m(s.pos, nxt)
            s.pos, arrived = _step_towards(s.pos, nxt, metres)
            metres -= d
            if arrived:
                s.path.pop(0)
        s.steps += int(s.speed / 0.6)

    def _samples(self, s: _Sim) -> list[motion.Sample]:
        """This second's 50 Hz wrist samples (the summary is made from them; a raw stream sends them)."""
        if s.trace:
            chunk, s.trace = s.trace[: motion.HZ], s.trace[motion.HZ :]
            if not s.trace:
                s.lying = True
                if motion.band_flags_fall(s.trace_all):
                    s.fall_flag_until = self._now + 60.0
            return chunk
        if not s.worn:
            return motion.still(self.rng, 1.0, (0.0, 0.0, 1.0), 0.002)
        if s.lying:
            return motion.still(self.rng, 1.0, (-0.97, 0.1, 0.2))
        if s.walking and (s.path or len(s.route) > 1):
            return motion.walking(self.rng, 1.0)
        return motion.still(self.rng, 1.0, self._posture(s))

    def _posture(self, s: _Sim) -> motion.Sample:
        """A living wrist at rest shifts every half minute to four minutes (a few to 25 degrees): only
        a band left on a table lies dead still for long (detect/band.py's table signature)."""
        if self._now >= s.posture_at:
            s.posture = motion.tilted(motion.RESTING, self.posture_rng.uniform(-25.0, 25.0),
                                      self.posture_rng.uniform(-25.0, 25.0))
            s.posture_at = self._now + self.posture_rng.uniform(30.0, 240.0)
        return s.posture

    def _motion(self, s: _Sim) -> Motion:
        samples = self._samples(s)
        if self.gatt is not None:
            self.gatt.record(s.band.address, self._now + 59.0 + 1.0 / motion.HZ, samples)  # band clock: sim + 60 s, last sample now
        return motion.summarise(samples)

    def second(self) -> list[Advert]:
        """Advance one simulated second; the adverts heard during it, in time order."""
        out: list[tuple[float, Advert]] = []
        for s in self.sims:
            self._events(s)
            self._move(s)
            mot = self._motion(s)
            hours = 1.0 / 3600.0
            s.battery = min(100.0, s.battery + 20.0 * hours) if s.charging else max(0.0, s.battery - s.plan.drain_pct_per_h * hours)
            if s.battery <= 0.0 or self._now < s.silent_until:
                continue  # a dead (or broken, or shielded) band says nothing
            s.seq += 1
            state = band.BandState(
                seq=s.seq,
                sos=self._now < s.sos_until,
                fall=self._now < s.fall_flag_until,
                worn=s.worn,
                charging=s.charging,
                low_battery=s.battery < 15.0,
                battery_pct=math.floor(s.battery),
                motion=mot,
                steps=s.steps,
            )
            frame = band.encode(s.band.address, s.band.key, state)
            where = s.band_pos or s.pos
            for rep in range(self.scenario.radio.repeats):
                offset = self.rng.uniform(0.0, 1.0 / self.scenario.radio.repeats) + rep / self.scenario.radio.repeats
                for rx in self.site.receivers:
                    d = distance_m(where, (rx.lat, rx.lon))
                    if d > self._reach_m:
                        continue  # 20 dB below the receiver's sensitivity on average: never heard
                    rssi = self.radio.rssi(s.band.address, rx.id, d, 1.0 / self.scenario.radio.repeats)
                    if rssi is None:
                        continue
                    t = self._now + offset
                    out.append((t, Advert(s.band.address, rssi, rx.id, self.start + timedelta(seconds=t), t,
                                          {band.COMPANY_ID: frame}, {}, None, None)))
        out.sort(key=lambda x: x[0])
        return [a for _t, a in out]

    def frames(self) -> Iterator[Advert | None]:
        """The whole scenario without waiting (benchmarks, fast tests). None marks each second."""
        while self._now < self.scenario.duration_s:
            adverts = self.second()
            yield from adverts
            self._now += 1.0
            yield None
        self.done = True

    async def __aiter__(self) -> AsyncIterator[Advert | None]:
        """Paced by `speed` (simulated seconds per real second; 0 = as fast as possible)."""
        t0 = time.monotonic()
        while self._now < self.scenario.duration_s:
            adverts = self.second()
            delay = t0 + (self._now + 1.0) / self.speed - time.monotonic() if self.speed > 0 else 0.0
            if self.max_ahead_s is not None:  # no further ahead of the wall clock than that (flat out too)
                ahead = (self.wall() + timedelta(seconds=1.0) - utcnow()).total_seconds()
                delay = max(delay, ahead - self.max_ahead_s)
            if delay > 0:
                await asyncio.sleep(delay)
            elif self.speed <= 0:
                await asyncio.sleep(0)
            for a in adverts:
                yield a
            self._now += 1.0
            yield None
        self.done = True
