#!/usr/bin/env python3
"""Wander and fall detection over many simulated patient-days, through the real gateway pipeline.

What runs (nothing mocked between the radio and the detections):
  band frames   gateway.simulate: each band's real Smart Chumphae frame (AES-CCM with its
                key), heard by each receiver with log-distance path loss, slow shadowing,
                per-packet noise and drops (gateway/simulate/radio.py);
  decode        gateway.decode (authentication, replay guard);
  locate        gateway.locate (median RSSI window, multilateration / proximity, uncertainty);
  match         gateway.steps.MapMatcher = chumphae.map.match.Matcher against the patient's
                zone built from mapdata/chumphae.gpkg (home parcel + 2 assigned routes + the
                nearest safe place; night rule 20:00–06:00: home only);
  detect        chumphae.detect.runner.Detectors (per-patient thresholds by group);
all inside gateway.pipeline.Pipeline, fed second by second as Gateway._consume feeds it.

The simulated world:
  - patients on residential parcels of the Chumphae map (chumphae.map.demo.demo_homes);
    half NHSO group 2 "wanderers" (dwell 120 s by day, 30 s at night), half homebound
    ADL 5–11 (300 s / 120 s);
  - per site a receiver in the house, receivers along the patient's two assigned routes
    every `--rx-spacing` metres (default 50 m: the deployment README states; 100 m, the default until
    wander-31, is a cheaper one that misses the alarm goals, docs/wander-detection.md) and one at
    the zone's safe place (`place_receivers`; `--no-place-rx`: none, the bench before trace27);
  - a day: night in bed (20:00–06:00 the zone is the home only), time at home by day,
    2–3 normal walks along the assigned routes (out and back, on the road at a lateral
    offset of up to ±12 m from the centreline: the zone edge is 20 m from it, so some walks
    run close to the edge under RSSI noise; these must NOT alert), some true wander
    episodes (day: along a route then off it 120–350 m, out 6–20 min; night: out of the
    house along the road and off it, 5–15 min; each really leaves, `leaves`: 40 m from the zone
    within 80 m of path after the exit, never back in before the return), falls (the simulator's wrist fall trace,
    lying 4–10 min after) and hard negatives (the simulator's table-slap trace).

Time: no sleeping. The driver calls the source's `second()` and the pipeline's `tick()`
itself. Everything that can make or miss an alert is simulated second by second: every
walk, episode, fall and slap with minutes around it, the 20:00 / 06:00 zone switches, and
random 5-min windows of quiet time at home (`--quiet-share` of the day). Between those the
wall clock jumps (only while the patient is at home, inside, still, with no excursion or
fall pending: nothing a detector is waiting on). Radio/locate state runs on the continuous
monotonic clock; the detectors' last-heard time moves with the jump (the band was heard all
through the skipped time, so the jump is not a silence). Quiet-time false alerts are counted in the sampled windows and scaled up
to the whole quiet time (the scale factor is printed); everything else is counted as is.

Ground truth and counting rules:
  - the true position is the simulator's; it is "outside" when it is not covered by the
    zone geometry in force (day or night) at that wall time;
  - an excursion = a maximal run of outside seconds [exit, return); a true wander episode =
    an excursion longer than the patient's dwell for that schedule (all injected episodes
    are ≥ 5 min; walks are built to stay inside, and any unplanned excursion is reported);
  - a wander alert matches an episode if raised (wall time at which the pipeline emitted it)
    in [exit, return + GRACE_S]; the first such alert counts, later ones in the same
    episode are "repeats" (not false);
  - delay = alert time − true exit time (it includes the dwell: "beyond dwell" = delay − dwell);
  - any wander alert not matching an episode is a false wander alert;
  - left_coverage alerts are counted the same way, separately (with sparse receivers a
    wandering patient is often lost before a fix is confidently outside: the caregiver
    gets "left coverage" instead); "caught" = wander or left coverage, whichever first;
  - baseline, on the very same positions: a Traccar-style geofence (alert at the first
    in-coverage position whose centre is outside the zone, no uncertainty, no dwell,
    re-armed by a centre inside);
  - falls: a FALL detection within [impact − 5 s, impact + 20 s] of a simulated fall is a
    true detection; any other FALL detection is a false alarm (per slap and per day).

Usage: .venv/bin/python scripts/bench_detect.py [--days 5] [--patients 20] [--seed 5]
The last line is a one-line summary with the headline figures.
"""

from __future__ import annotations

import argparse
import logging
import math
import multiprocessing
import random
import resource
import statistics
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import shapely
import shapely.ops
from shapely.geometry import LineString, Point

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from chumphae.detect.runner import Detectors  # noqa: E402
from chumphae.detect.thresholds import Thresholds, thresholds_for  # noqa: E402
from chumphae.map.demo import DemoHome, demo_homes  # noqa: E402
from chumphae.map.layers import MapLayers  # noqa: E402
from chumphae.map.zones import Zone, build_zone, place_point  # noqa: E402
from chumphae.timeutil import BANGKOK  # noqa: E402
from chumphae.values import AlertType, Detection, Match, Motion, Position, Reading  # noqa: E402
from gateway.pipeline import Pipeline  # noqa: E402
from gateway.simulate import motion  # noqa: E402
from gateway.simulate.scenario import PatientPlan, Radio, Scenario  # noqa: E402
from gateway.simulate.source import SimSource, _Sim  # noqa: E402
from gateway.siteconfig import SiteConfig, parse  # noqa: E402
from gateway.steps import MapMatcher  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MAP = ROOT / "mapdata" / "chumphae.gpkg"
DAY = 86_400
GRACE_S = 120.0
WALK_OFFSET_M = 12.0  # lateral offset of a walk from the route centreline (tolerance is 20 m)
WINDOW_S = 300  # one sampled quiet window
WALK_REACH_M = 300.0  # a walk turns back at most this far along a route
LEAVE_M = 40.0  # a wander excursion goes at least this far from the zone (wander-24's rule, `leaves`) ...
LEAVE_WITHIN_M = 80.0  # ... within this much of its path after it left, and stays that far to its end
RX_SPACING_M = 50.0  # receivers along the routes this far apart: the deployment README states (wander-31; was 100)
RADIO = Radio(p1m_dbm=-59.0, path_loss_n=2.2, noise_db=4.0, shadowing_db=3.0, drop_rate=0.15,
              sensitivity_dbm=-100.0, repeats=1)

LatLon = tuple[float, float]
XYPath = list[tuple[float, float]]  # metric


# -- the site ------------------------------------------------------------------------------
@dataclass
class Site:
    pid: int
    home: DemoHome
    zone: Zone
    config: SiteConfig
    th: Thresholds
    group: str
    routes: list[LineString]  # metric
    home_xy: tuple[float, float]
    layers: MapLayers

    def to_latlon(self, pts: Iterable[tuple[float, float]]) -> list[LatLon]:
        pts = list(pts)
        lon, lat = self.layers.metric.lonlat([p[0] for p in pts], [p[1] for p in pts])
        return [(float(a), float(b)) for a, b in zip(lat, lon, strict=True)]


def build_site(layers: MapLayers, home: DemoHome, pid: int, rng: random.Random, spacing_m: float,
               place_rx: bool = True) -> Site:
    spec = home.zone_spec()
    zone = build_zone(layers, spec, patient_id=pid, version=1)
    routes = [layers.routes.geoms[layers.routes.by_code[c]] for c in spec.route_codes]
    hx, hy = layers.metric.xy(home.lon, home.lat)
    rx_xy: list[tuple[str, float, float]] = [("rx-home", float(hx), float(hy))]
    for r, line in zip(spec.route_codes, routes, strict=True):
        n = max(2, math.ceil(line.length / spacing_m) + 1)
        for k in range(n):
            p = line.interpolate(k * line.length / (n - 1))
            if all(math.hypot(p.x - x, p.y - y) > spacing_m / 3 for _i, x, y in rx_xy):  # shared corners
                rx_xy.append((f"rx-{r}-{k}", p.x + rng.uniform(-3, 3), p.y + rng.uniform(-3, 3)))
    lon, lat = layers.metric.lonlat([x for _i, x, _y in rx_xy], [y for _i, _x, y in rx_xy])
    receivers = [{"id": i, "lat": float(la), "lon": float(lo), "p1m_dbm": RADIO.p1m_dbm + rng.gauss(0, 1.5),
                  "path_loss_n": RADIO.path_loss_n}  # each receiver calibrated, to ±1.5 dB
                 for (i, _x, _y), la, lo in zip(rx_xy, lat, lon, strict=True)]
    if place_rx:  # trace27: a receiver at each safe place of the zone (else that part of the zone is blind)
        receivers += place_receivers(layers, spec, pid, spacing_m, rx_xy)
    wanderer = pid % 2 == 1
    th = thresholds_for(8, 2 if wanderer else None)
    cfg = parse({"site_id": f"bench-{pid}", "gateway_id": f"gw-{pid}", "receivers": receivers,
                 "bands": [{"address": f"C0:FF:EE:00:{pid // 256:02X}:{pid % 256:02X}",
                            "key_hex": rng.randbytes(16).hex(), "patient_id": pid}],
                 "patients": [{"id": pid, "home": {"lat": home.lat, "lon": home.lon}}]})
    return Site(pid, home, zone, cfg, th, th.group, routes, (float(hx), float(hy)), layers)


def place_receivers(layers: MapLayers, spec: Any, pid: int, spacing_m: float,
                    rx_xy: list[tuple[str, float, float]]) -> list[dict[str, Any]]:
    """One receiver at each safe place of the zone (`spec.place_codes`: the place's grounds, as the zone has
    them), skipped within spacing / 3 of a receiver already placed. Without it the place (~8,000–16,000 m² of the
    zone, 100+ m from every route receiver) is a part of the zone no receiver hears: a wearer 100–150 m off the
    road is as likely there as where they are, and `outside_p` stays 0.6–0.8 (trace27). Calibrated like the
    others (±1.5 dB), from the patient's own stream, so the shared site stream (other sites, band keys) is as before."""
    prng = random.Random(pid + 1_000_003)
    out: list[dict[str, Any]] = []
    for k, code in enumerate(spec.place_codes):
        c = place_point(layers, code, spec.place_radius_m, spec.margin_m)
        if all(math.hypot(c.x - x, c.y - y) > spacing_m / 3 for _i, x, y in rx_xy):
            lon, lat = layers.metric.lonlat([c.x], [c.y])
            out.append({"id": f"rx-place-{k}", "lat": float(lat[0]), "lon": float(lon[0]),
                        "p1m_dbm": RADIO.p1m_dbm + prng.gauss(0, 1.5), "path_loss_n": RADIO.path_loss_n})
    return out


# -- paths (metric) --------------------------------------------------------------------------
def _along(line: LineString, s0: float, s1: float, offset: float, step: float = 5.0) -> list[tuple[float, float]]:
    """Points along `line` from arc length s0 to s1, shifted `offset` metres to its left."""
    n = max(1, int(abs(s1 - s0) // step))
    out = []
    for k in range(n + 1):
        s = s0 + (s1 - s0) * k / n
        p = line.interpolate(s)
        a, b = line.interpolate(max(0.0, s - 1.0)), line.interpolate(min(line.length, s + 1.0))
        dx, dy = b.x - a.x, b.y - a.y
        norm = math.hypot(dx, dy) or 1.0
        out.append((p.x - dy / norm * offset, p.y + dx / norm * offset))
    return out


def _inside(zone_geom: Any, pts: list[tuple[float, float]], margin: float = 1.0) -> bool:
    dense = shapely.segmentize(LineString(pts), 2.0) if len(pts) > 1 else Point(pts[0])
    return bool(zone_geom.buffer(-margin).covers(dense))


def _length(pts: list[tuple[float, float]]) -> float:
    return sum(math.dist(a, b) for a, b in zip(pts, pts[1:], strict=False))


def outbound(site: Site, rng: random.Random, offset: float) -> list[tuple[float, float]] | None:
    """Home → the first assigned route → (maybe the second route) → a point along it; inside the day zone."""
    l1 = site.routes[0]
    h = Point(site.home_xy)
    s_entry = l1.project(h)
    e = l1.interpolate(s_entry)
    path = [site.home_xy, (e.x, e.y)]
    if len(site.routes) > 1 and rng.random() < 0.4 and l1.distance(site.routes[1]) < 5.0:
        l2 = site.routes[1]
        j1 = shapely.ops.nearest_points(l1, l2)[0]
        s_j = l1.project(j1)
        path += _along(l1, s_entry, s_j, 0.0)
        s2 = l2.project(j1)
        path += _along(l2, s2, _reach(l2, s2, rng), rng.uniform(-offset, offset))
    else:
        path += _along(l1, s_entry, _reach(l1, s_entry, rng), rng.uniform(-offset, offset))
    return path if _length(path) > 40 else None


def _reach(line: LineString, s0: float, rng: random.Random) -> float:
    """Where along `line` a walk from arc length s0 turns back: 60–WALK_REACH_M metres either way."""
    d = rng.uniform(60.0, WALK_REACH_M) * rng.choice((-1, 1))
    return min(line.length, max(0.0, s0 + d))


def normal_walk(site: Site, rng: random.Random) -> list[tuple[float, float]]:
    for _ in range(30):
        out = outbound(site, rng, WALK_OFFSET_M)
        if out is not None and _inside(site.zone.day, out):
            return out + out[::-1]
    e = site.routes[0].interpolate(site.routes[0].project(Point(site.home_xy)))
    return [site.home_xy, (e.x, e.y), site.home_xy]


def leaves(zone_geom: Any, path: XYPath, far_m: float = LEAVE_M, within_m: float = LEAVE_WITHIN_M) -> bool:
    """Whether an outbound wander path really leaves `zone_geom` (the zone in force for the episode), by the
    truth geometry, the path densified every 2 m: it starts inside and ends outside; from its first point
    outside (more than a millimetre from the zone) it never comes back in; within `within_m` of path after
    that point it is `far_m` from the zone; and from where it first is, it stays at least that far to its end
    (where the wearer lingers).
    An excursion 0.7 m outside a corridor for 14 min (wander-23's 284 p1) is not one a caregiver would call
    wandering, and no locator can tell it from a walk on the road's verge."""
    if len(path) < 2:
        return False
    xy = shapely.get_coordinates(shapely.segmentize(LineString(path), 2.0))
    d = shapely.distance(zone_geom, shapely.points(xy))
    s = np.concatenate(([0.0], np.cumsum(np.hypot(*np.diff(xy, axis=0).T))))
    out = d > 1e-3
    if out[0] or not out[-1]:
        return False
    k0 = int(np.argmax(out))
    if not out[k0:].all():
        return False
    far = np.nonzero(d[k0:] >= far_m)[0]
    if far.size == 0:
        return False
    k1 = k0 + int(far[0])
    return bool(s[k1] - s[k0] <= within_m and (d[k1:] >= far_m).all())


def wander_path(site: Site, rng: random.Random, night: bool) -> list[tuple[float, float]] | None:
    """Out along a route, then off it away from the zone; returns the outbound path (inside → far outside),
    or None when 40 tries found no way out (that day then has no wander episode, as when no slot is free)."""
    return wander_search(site, rng, night)[0]


def wander_search(site: Site, rng: random.Random, night: bool) -> tuple[XYPath | None, bool]:
    """`wander_path` and whether its path was re-drawn: a path the generator drew before wander-24 (which
    checked only that the path is outside, not by how much) that fails `leaves`. The search then goes on with a
    copy of `rng`, so `rng` ends where the old generator left it and the rest of the patient's plan draws the
    same numbers (only the slot times that depend on the episode's length can move)."""
    zone = site.zone.night if night and site.zone.night is not None else site.zone.day
    src = rng
    for _ in range(40):
        path, old = _wander_try(site, src, night, zone)
        if path is not None:
            return path, src is not rng or path is not old
        if old is not None and src is rng:  # the old generator returned here: search on without moving `rng`
            src = random.Random()
            src.setstate(rng.getstate())
    return None, src is not rng


def _wander_try(site: Site, rng: random.Random, night: bool, zone: Any) -> tuple[XYPath | None, XYPath | None]:
    """One try, with the old generator's draws: the path (the first side that meets `leaves`, or None) and the
    old generator's path for this try (the first side whose far points are all outside the zone, or None)."""
    base = outbound(site, rng, 0.0)
    if base is None or not _inside(site.zone.day, base):
        return None, None
    if night:
        base = base[: max(2, len(base) // 2)]
    (ax, ay), (bx, by) = base[-2], base[-1]
    dx, dy = bx - ax, by - ay
    norm = math.hypot(dx, dy) or 1.0
    dist = rng.uniform(120, 350)
    signs = [1, -1]
    rng.shuffle(signs)
    old: XYPath | None = None
    for sgn in signs:
        nx, ny = -dy / norm * sgn, dx / norm * sgn
        off = [(bx + nx * d, by + ny * d) for d in np.arange(5.0, dist + 1, 5.0)]
        far = [p for p in off if math.dist(p, (bx, by)) >= 30.0]
        if far and not any(zone.intersects(Point(p)) for p in far[::2]):
            path = base + off
            old = path if old is None else old
            if leaves(zone, path):
                return path, old
    return None, old


def local_xy(site: Site) -> Any:
    """lat/lon → metric x/y, linearised at the home (exact to millimetres over a village)."""
    lat0, lon0 = site.home.lat, site.home.lon
    x0, y0 = site.layers.metric.xy(lon0, lat0)
    x1, y1 = site.layers.metric.xy(lon0 + 1e-3, lat0)
    x2, y2 = site.layers.metric.xy(lon0, lat0 + 1e-3)
    a, b, c, d = (x1 - x0) / 1e-3, (x2 - x0) / 1e-3, (y1 - y0) / 1e-3, (y2 - y0) / 1e-3
    x0, y0 = float(x0), float(y0)

    def to_xy(lat: float, lon: float) -> tuple[float, float]:
        return x0 + a * (lon - lon0) + b * (lat - lat0), y0 + c * (lon - lon0) + d * (lat - lat0)
    return to_xy


# -- the source ------------------------------------------------------------------------------
class BenchSource(SimSource):
    """The simulator, driven by the benchmark: paths and wrist events set directly, wall clock
    that can jump (only `start` moves; the monotonic clock the radio/locate step sees does not).
    Walking / still / lying summaries are drawn from pools of real 50 Hz traces summarised
    (the per-second summaries are independent, so this changes cost, not what the band says)."""

    POOL = 400

    def __init__(self, scenario: Scenario, site: SiteConfig, start: datetime) -> None:
        super().__init__(scenario, site, speed=0.0, start=start)
        r = self.rng
        self.pools = {
            "walk": [motion.summarise(motion.walking(r, 1.0)) for _ in range(self.POOL)],
            "still": [motion.summarise(motion.still(r, 1.0)) for _ in range(self.POOL)],
            "lying": [motion.summarise(motion.still(r, 1.0, (-0.97, 0.1, 0.2))) for _ in range(self.POOL)],
        }
        self.slap: list[motion.Sample] = []
        s = self.sims[0]
        s.walking, s.route, s.path = False, [], []

    @property
    def sim(self) -> _Sim:
        return self.sims[0]

    def walk(self, path: list[LatLon], speed: float) -> None:
        s = self.sim
        s.path, s.route, s.speed, s.walking, s.lying = list(path), [], speed, True, False

    def fall(self) -> None:
        s = self.sim
        s.path, s.walking = [], False
        s.trace = motion.fall(self.rng)
        s.trace_all = list(s.trace)

    def get_up(self) -> None:
        self.sim.lying = False

    def table_slap(self) -> None:
        self.slap = motion.table_slap(self.rng)

    def _events(self, s: _Sim) -> None:  # the benchmark drives events itself
        return

    def _motion(self, s: _Sim) -> Motion:
        if self.slap:
            chunk, self.slap = self.slap[: motion.HZ], self.slap[motion.HZ:]
            return motion.summarise(chunk)
        if s.trace or not s.worn:
            return super()._motion(s)
        kind = "lying" if s.lying else "walk" if s.walking and s.path else "still"
        return self.rng.choice(self.pools[kind])


# -- the capture -----------------------------------------------------------------------------
@dataclass
class Raised:
    type: AlertType
    at: float  # wall seconds since the run's start (when the pipeline emitted it)
    t_detect: float  # the detection's own t
    night: bool


class Capture:
    """Wraps the real steps: records detections (with the wall time they were raised) and
    every matched position for the baseline."""

    def __init__(self, matcher: MapMatcher, detectors: Detectors, t0: datetime) -> None:
        self.matcher, self.detectors, self.t0 = matcher, detectors, t0
        self.now = 0.0
        self.raised: list[Raised] = []
        self.positions: list[tuple[float, bool, float | None, bool]] = []  # at, in_coverage, signed d, night

    def __call__(self, position: Position, patient_id: int | None) -> Match | None:
        m = self.matcher(position, patient_id)
        if m is not None:
            self.positions.append((self.now, position.in_coverage, m.distance_to_boundary_m, m.schedule == "night"))
        return m

    def _keep(self, found: list[Detection]) -> list[Detection]:
        for d in found:
            self.raised.append(Raised(d.type, self.now, (d.t - self.t0).total_seconds(), bool(d.details.get("night"))))
        return found

    def on_reading(self, reading: Reading, patient_id: int | None) -> list[Detection]:
        return self._keep(self.detectors.on_reading(reading, patient_id))

    def on_position(self, position: Position, match: Match | None, patient_id: int | None) -> list[Detection]:
        return self._keep(self.detectors.on_position(position, match, patient_id))

    def tick(self, wall: datetime) -> list[Detection]:
        return self._keep(self.detectors.tick(wall))


# -- one patient's days -------------------------------------------------------------------------
@dataclass
class Action:
    at: float  # wall seconds since the run's start
    kind: str  # walk | wander | return | fall | get_up | slap
    path: list[LatLon] = field(default_factory=list)
    speed: float = 0.8
    redrawn: bool = False  # a wander path re-drawn by wander-24's rule (`leaves`)


@dataclass
class PatientRun:
    pid: int
    group: str
    dwell_day: float
    dwell_night: float
    days: int
    raised: list[Raised]
    positions: list[tuple[float, bool, float | None, bool]]
    excursions: list[tuple[float, float, bool]]  # exit, return, night (true track)
    planned_episodes: int
    falls: list[float]  # impact wall seconds
    slaps: list[float]
    walks: int
    active: list[tuple[float, float]]  # activity intervals (walks, episodes, falls, slaps)
    simulated_s: float
    quiet_simulated_s: float
    quiet_total_s: float
    adverts: int
    redrawn: int = 0  # wander paths re-drawn by `leaves` (the old generator's path did not really leave)


def _free(busy: list[tuple[float, float]], a: float, b: float) -> bool:
    return all(b <= x or a >= y for x, y in busy)


def plan_days(site: Site, rng: random.Random, days: int, p_wander: float, p_fall: float,
              slaps: int) -> tuple[list[Action], list[tuple[float, float]], int]:
    """Actions and activity intervals for `days` days (t = 0 is the first local midnight)."""
    acts: list[Action] = []
    busy: list[tuple[float, float]] = []
    episodes = 0

    def slot(lo: float, hi: float, dur: float) -> float | None:
        for _ in range(60):
            t = rng.uniform(lo, hi - dur)
            if _free(busy, t - 900, t + dur + 900):
                return t
        return None

    for d in range(days):
        base = d * DAY
        if rng.random() < p_wander:  # a true wander episode
            night = rng.random() < 0.3
            wpath, redrawn = wander_search(site, rng, night)
            speed = rng.uniform(0.6, 1.0)
            out_s = math.ceil(_length(wpath) / speed) if wpath is not None else 0
            linger = rng.uniform(300, 600) if night else rng.uniform(360, 720)
            dur = out_s * 2 + linger
            t = slot(base + 21.5 * 3600, base + 28 * 3600, dur) if night else slot(base + 8 * 3600, base + 17 * 3600, dur)
            if wpath is not None and t is not None and t + dur < days * DAY - 600:
                path = wpath
                ll = site.to_latlon(path)
                acts += [Action(t, "wander", ll, speed, redrawn), Action(t + out_s + linger, "return", ll[::-1], speed)]
                busy.append((t - 120, t + dur + 300))
                episodes += 1
        for _ in range(rng.choice((2, 3))):  # normal walks along the assigned routes
            path = normal_walk(site, rng)
            speed = rng.uniform(0.6, 1.0)
            dur = math.ceil(_length(path) / speed)
            t = slot(base + 7 * 3600, base + 19 * 3600, dur)
            if t is not None:
                acts.append(Action(t, "walk", site.to_latlon(path), speed))
                busy.append((t - 60, t + dur + 120))
        if rng.random() < p_fall:
            t = slot(base + 7 * 3600, base + 19.5 * 3600, 700)
            if t is not None:
                lie = rng.uniform(180, 360)
                acts += [Action(t, "fall"), Action(t + lie, "get_up")]
                busy.append((t - 60, t + lie + 120))
        for _ in range(slaps):
            t = slot(base + 7 * 3600, base + 19.5 * 3600, 90)
            if t is not None:
                acts.append(Action(t, "slap"))
                busy.append((t - 30, t + 60))
        for h in (6, 20):  # the zone switches (day ↔ night zone): simulated every day
            busy.append((base + h * 3600 - 120, base + h * 3600 + 180))
    acts.sort(key=lambda a: a.at)
    return acts, sorted(busy), episodes


def _windows(busy: list[tuple[float, float]], days: int, rng: random.Random, share: float) -> list[tuple[float, float]]:
    """What is simulated second by second: activity (with the zone switches), sampled quiet windows."""
    w = list(busy)
    n = int(share * days * DAY / WINDOW_S)
    for _ in range(n):
        t = rng.uniform(0, days * DAY - WINDOW_S)
        w.append((t, t + WINDOW_S))
    w.append((0, 300))  # warm-up: the first fixes
    w.sort()
    merged: list[list[float]] = []
    for a, b in w:
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    return [(a, min(b, days * DAY)) for a, b in merged]


def run_patient(site: Site, days: int, seed: int, start: datetime, *, p_wander: float = 0.6,
                p_fall: float = 0.4, slaps: int = 3, quiet_share: float = 0.01) -> PatientRun:
    rng = random.Random(seed)
    acts, active, episodes = plan_days(site, rng, days, p_wander, p_fall, slaps)
    windows = _windows(active, days, rng, quiet_share)
    scen = Scenario(f"bench-{site.pid}", seed, float(days * DAY), (PatientPlan(band=0, at="home"),), RADIO)
    src = BenchSource(scen, site.config, start)
    detectors = Detectors()
    detectors.set_thresholds(site.pid, site.th)
    cap = Capture(MapMatcher(site.layers, {site.pid: site.zone}), detectors, start)
    pipe = Pipeline(site.config, None, cap, cap)
    zone = site.zone
    to_xy = local_xy(site)
    night_rule = zone.spec.night
    assert night_rule is not None
    excursions: list[tuple[float, float, bool]] = []
    out_since: float | None = None
    out_night = False
    falls: list[float] = []
    slap_at: list[float] = []
    walks = 0
    ai = 0
    simulated = 0.0
    quiet_sim = 0.0

    def pending() -> bool:  # a detector waiting on time: no jump now (it would fire at once)
        st = detectors.states.get(site.pid)
        return st is not None and (st.wander.outside_since is not None or st.fall.pending is not None)

    def wall_s() -> float:
        return (src.wall() - start).total_seconds()

    def in_active(t: float) -> bool:
        return any(a <= t < b for a, b in active)

    for wa, wb in windows:
        t = wall_s()
        if t < wa:  # jump the wall clock (patient at home, inside, nothing pending)
            jump = timedelta(seconds=wa - t)
            src.start += jump
            # the band was heard all through the skipped time at home: the jump is not a silence
            # (without this, a window whose first second happens to lose every packet reads as a
            # band unheard for hours, and a home near the zone edge raises left coverage)
            st = detectors.states.get(site.pid)
            if st is not None and st.last_heard is not None:
                detectors.states[site.pid] = replace(st, last_heard=st.last_heard + jump)
        while wall_s() < wb or out_since is not None or src.sim.walking and src.sim.path or pending():
            t = wall_s()
            if t >= days * DAY:
                break
            while ai < len(acts) and acts[ai].at <= t:
                a = acts[ai]
                ai += 1
                if a.kind in ("walk", "wander", "return"):
                    src.walk(a.path, a.speed)
                    walks += a.kind == "walk"
                elif a.kind == "fall":
                    src.fall()
                    falls.append(t + 1.4)  # the trace's impact comes ~1.3–1.5 s in
                elif a.kind == "get_up":
                    src.get_up()
                elif a.kind == "slap":
                    src.table_slap()
                    slap_at.append(t + 0.5)
            cap.now = t
            for advert in src.second():
                pipe.handle(advert)
            # ground truth: the true position in this second against the zone in force
            lat, lon = src.sim.pos
            x, y = to_xy(lat, lon)
            geom = zone.at(src.wall())
            src._now += 1.0
            cap.now = wall_s()
            pipe.tick(src.clock(), src.wall())
            simulated += 1
            if not in_active(t):
                quiet_sim += 1
            inside = bool(shapely.intersects_xy(geom, float(x), float(y)))
            if not inside and out_since is None:
                out_since, out_night = t, geom is zone.night
            elif inside and out_since is not None:
                excursions.append((out_since, t, out_night))
                out_since = None
    if out_since is not None:
        excursions.append((out_since, wall_s(), out_night))
    quiet_total = days * DAY - sum(min(b, days * DAY) - a for a, b in _merge(active))
    return PatientRun(site.pid, site.group, site.th.wander_dwell_s, site.th.wander_dwell_night_s, days,
                      cap.raised, cap.positions, excursions, episodes, falls, slap_at, walks, _merge(active),
                      simulated, quiet_sim, quiet_total, pipe.stats.adverts,
                      sum(a.redrawn for a in acts if a.kind == "wander"))


def _merge(iv: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[list[float]] = []
    for a, b in sorted(iv):
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


# -- scoring --------------------------------------------------------------------------------------
@dataclass
class WanderScore:
    episodes: int = 0
    detected: int = 0
    delays: list[float] = field(default_factory=list)
    beyond: list[float] = field(default_factory=list)
    false_active: int = 0  # during walks / episodes / events
    false_quiet: int = 0  # during sampled quiet time
    repeats: int = 0
    missed: list[tuple[int, float]] = field(default_factory=list)
    false_active_night: int = 0  # of false_active, raised 20:00–06:00 local
    false_quiet_night: int = 0  # of false_quiet, raised 20:00–06:00 local
    # per true episode: (patient, exit wall s, dwell s, beyond the dwell s or None when not alerted)
    detail: list[tuple[int, float, float, float | None]] = field(default_factory=list)
    false_at: list[tuple[int, float]] = field(default_factory=list)  # (patient, wall s) of each false alert


def _night_s(at: float) -> bool:
    """A wall time (seconds since the first local midnight) in 20:00–06:00."""
    h = (at % DAY) / 3600.0
    return h >= 20.0 or h < 6.0


def score_alerts(run: PatientRun, times: list[float], score: WanderScore) -> None:
    """Match alert times to the run's true episodes (see module docstring)."""
    eps = [(a, b, n) for a, b, n in run.excursions if b - a > (run.dwell_night if n else run.dwell_day)]
    score.episodes += len(eps)
    first: dict[int, float] = {}
    for at in sorted(times):
        k = next((i for i, (a, b, _n) in enumerate(eps) if a <= at <= b + GRACE_S), None)
        if k is None:
            night = _night_s(at)
            score.false_at.append((run.pid, at))
            if any(a <= at < b for a, b in run.active):
                score.false_active += 1
                score.false_active_night += night
            else:
                score.false_quiet += 1
                score.false_quiet_night += night
        elif k in first:
            score.repeats += 1
        else:
            first[k] = at
    for k, (a, _b, n) in enumerate(eps):
        dwell = run.dwell_night if n else run.dwell_day
        if k in first:
            score.detected += 1
            score.delays.append(first[k] - a)
            score.beyond.append(first[k] - a - dwell)
            score.detail.append((run.pid, a, dwell, first[k] - a - dwell))
        else:
            score.missed.append((run.pid, a))
            score.detail.append((run.pid, a, dwell, None))


def baseline_times(run: PatientRun) -> list[float]:
    """Traccar-style: the first in-coverage position whose centre is outside; re-armed by a centre inside."""
    out, armed = [], True
    for at, cov, d, _night in run.positions:
        if not cov or d is None:
            continue
        if d > 0 and armed:
            out.append(at)
            armed = False
        elif d <= 0:
            armed = True
    return out


@dataclass
class Report:
    runs: list[PatientRun]
    wander: WanderScore
    caught: WanderScore
    left: WanderScore
    base: WanderScore
    falls: int
    falls_found: int
    fall_false: int
    slaps: int
    slap_false: int
    patient_days: int
    quiet_scale: float
    cpu_s: float
    other: dict[str, int]
    unplanned: int


def score(runs: list[PatientRun], cpu_s: float) -> Report:
    w, c, lc, b = WanderScore(), WanderScore(), WanderScore(), WanderScore()
    falls = found = ff = slaps = sf = unplanned = 0
    other: dict[str, int] = {}
    for r in runs:
        score_alerts(r, [x.at for x in r.raised if x.type == AlertType.WANDER], w)
        score_alerts(r, [x.at for x in r.raised if x.type in (AlertType.WANDER, AlertType.LEFT_COVERAGE)], c)
        score_alerts(r, [x.at for x in r.raised if x.type == AlertType.LEFT_COVERAGE], lc)
        score_alerts(r, baseline_times(r), b)
        eps = sum(1 for a, bb, n in r.excursions if bb - a > (r.dwell_night if n else r.dwell_day))
        unplanned += max(0, len(r.excursions) - r.planned_episodes) + max(0, eps - r.planned_episodes)
        fall_alerts = [x.t_detect for x in r.raised if x.type == AlertType.FALL]
        used: set[int] = set()
        for f in r.falls:
            k = next((i for i, t in enumerate(fall_alerts) if i not in used and f - 5 <= t <= f + 20), None)
            falls += 1
            if k is not None:
                found += 1
                used.add(k)
        for i, t in enumerate(fall_alerts):
            if i in used:
                continue
            ff += 1
            if any(s - 5 <= t <= s + 20 for s in r.slaps):
                sf += 1
        slaps += len(r.slaps)
        for x in r.raised:
            if x.type not in (AlertType.WANDER, AlertType.LEFT_COVERAGE, AlertType.FALL):
                other[str(x.type)] = other.get(str(x.type), 0) + 1
    q_sim = sum(r.quiet_simulated_s for r in runs)
    q_tot = sum(r.quiet_total_s for r in runs)
    return Report(runs, w, c, lc, b, falls, found, ff, slaps, sf, sum(r.days for r in runs),
                  q_tot / q_sim if q_sim else float("nan"), cpu_s, other, unplanned)


def per100(s: WanderScore, rep: Report) -> float:
    return 100.0 * (s.false_active + s.false_quiet * rep.quiet_scale) / rep.patient_days


def per100_night(s: WanderScore, rep: Report) -> float:
    """The part of `per100` raised at night (20:00–06:00 local)."""
    return 100.0 * (s.false_active_night + s.false_quiet_night * rep.quiet_scale) / rep.patient_days


def poisson_upper(k: int, conf_z: float = 1.645) -> float:
    """One-sided 95 % upper bound of a Poisson mean after k events (Wilson–Hilferty; k = 0 → 3.0)."""
    if k == 0:
        return 3.0
    n = k + 1
    return n * (1.0 - 1.0 / (9.0 * n) + conf_z / (3.0 * math.sqrt(n))) ** 3


def left_lines(rep: Report) -> tuple[str, float, float]:
    """The false left-coverage count as measured: active time is simulated in full (exact count); quiet
    time is sampled, so its count is a rate over the sampled hours with a 95 % upper bound."""
    lc = rep.left
    q_sim_h = sum(r.quiet_simulated_s for r in rep.runs) / 3600
    q_tot_h = sum(r.quiet_total_s for r in rep.runs) / 3600
    quiet_rate = lc.false_quiet / q_sim_h if q_sim_h else float("nan")
    est = 100.0 * (lc.false_active + quiet_rate * q_tot_h) / rep.patient_days
    upper = 100.0 * (lc.false_active + poisson_upper(lc.false_quiet) / q_sim_h * q_tot_h) / rep.patient_days
    line = (f"false left-coverage: {lc.false_active} in active time (all of it simulated) + {lc.false_quiet} in "
            f"{q_sim_h:.1f} h of sampled quiet time (of {q_tot_h:.0f} h quiet) → ≈ {est:.1f} per 100 patient-days, "
            f"95 % upper bound {upper:.1f} (quiet share: --quiet-share; 1.0 simulates every second)")
    return line, est, upper


def _q(xs: list[float], p: float) -> float:
    if not xs:
        return float("nan")
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, math.ceil(p * len(s)) - 1))]


def _med(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def lines(rep: Report) -> list[str]:
    w, c, lc, b = rep.wander, rep.caught, rep.left, rep.base
    sim_h = sum(r.simulated_s for r in rep.runs) / 3600
    adverts = sum(r.adverts for r in rep.runs)
    walks = sum(r.walks for r in rep.runs)

    def row(name: str, s: WanderScore) -> str:
        return (f"  {name:<30} {s.detected:>3}/{s.episodes:<3} delay median {_med(s.delays):6.0f} s  "
                f"p95 {_q(s.delays, 0.95):6.0f} s  beyond dwell median {_med(s.beyond):6.0f} s  "
                f"false {s.false_active + s.false_quiet:>4} ({s.false_active} active + {s.false_quiet} quiet)  "
                f"≈ {per100(s, rep):6.1f} /100 patient-days")

    out = [
        f"patient-days {rep.patient_days} ({len(rep.runs)} patients; {sim_h:.0f} h simulated second by second, "
        f"{adverts:,} adverts through decode → locate → match → detect; {rep.cpu_s:.0f} s CPU)",
        f"walks along assigned routes {walks}; true wander episodes {w.episodes} "
        f"(planned {sum(r.planned_episodes for r in rep.runs)}, of which re-drawn to really leave "
        f"{sum(r.redrawn for r in rep.runs)}; unplanned excursions {rep.unplanned}); "
        f"quiet time sampled 1/{rep.quiet_scale:.0f} (quiet false alerts scaled ×{rep.quiet_scale:.0f})",
        "wander (alerts raised / true episodes; delay = alert − true exit, includes the dwell):",
        row("wander alert (chumphae.detect)", w),
        row("left_coverage alert", lc),
        row("caught: wander or left coverage", c),
        f"  wander beyond dwell: median {_med(w.beyond):.0f} s, p95 {_q(w.beyond, 0.95):.0f} s",
        row("baseline: first fix outside", b),
    ]
    if w.missed:
        out.append(f"  missed by wander alert: {len(w.missed)} (caught by left coverage: "
                   f"{len(w.missed) - len(c.missed)})")
    ratio = per100(b, rep) / per100(w, rep) if per100(w, rep) > 0 else float("inf")
    out.append(f"false wander alerts by time of day: day {per100(w, rep) - per100_night(w, rep):.1f} + night "
               f"{per100_night(w, rep):.1f} per 100 patient-days (raw: day {w.false_active - w.false_active_night} "
               f"active + {w.false_quiet - w.false_quiet_night} quiet, night {w.false_active_night} active + "
               f"{w.false_quiet_night} quiet)")
    left_line, left_est, left_upper = left_lines(rep)
    out.append(left_line)
    out += [
        f"false wander alerts: detector {per100(w, rep):.1f} vs baseline {per100(b, rep):.1f} per 100 patient-days "
        f"(baseline/detector ×{ratio:.1f})",
        f"falls: {rep.falls_found}/{rep.falls} detected (sensitivity {rep.falls_found / max(1, rep.falls):.2f}); "
        f"false fall alarms {rep.fall_false} = {rep.fall_false / rep.patient_days:.2f}/patient-day "
        f"({rep.slap_false}/{rep.slaps} table slaps alarmed)",
        "other alerts (not scored; the wall-clock jumps make band/battery ones meaningless): "
        + (", ".join(f"{k} {v}" for k, v in sorted(rep.other.items())) or "none"),
        (f"SUMMARY patient_days={rep.patient_days} episodes={w.episodes} wander_detected={w.detected} "
         f"caught_with_left_coverage={c.detected} delay_median_s={_med(w.delays):.0f} "
         f"delay_p95_s={_q(w.delays, 0.95):.0f} beyond_dwell_median_s={_med(w.beyond):.0f} "
         f"false_wander_per100d={per100(w, rep):.1f} false_day_per100d={per100(w, rep) - per100_night(w, rep):.1f} "
         f"false_night_per100d={per100_night(w, rep):.1f} baseline_detected={b.detected} "
         f"baseline_false_per100d={per100(b, rep):.1f} fall_sensitivity={rep.falls_found / max(1, rep.falls):.2f} "
         f"fall_false_per_day={rep.fall_false / rep.patient_days:.2f} "
         f"wander_beyond_dwell_p95_s={_q(w.beyond, 0.95):.0f} false_left_per100d={left_est:.1f} "
         f"false_left_per100d_upper95={left_upper:.1f} false_left_active={rep.left.false_active} "
         f"false_left_quiet={rep.left.false_quiet}"),
    ]
    return out


def run(days: int, patients: int, seed: int, *, quiet_share: float = 0.01, spacing_m: float = RX_SPACING_M,
        p_wander: float = 0.6, p_fall: float = 0.4, slaps: int = 3, progress: bool = False,
        jobs: int = 1, only: list[int] | None = None, place_rx: bool = True) -> Report:
    t0 = time.process_time()
    child0 = resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime
    logging.getLogger("gateway.pipeline").setLevel(logging.ERROR)  # alerts are counted, not logged
    layers = MapLayers.from_file(MAP)
    homes = demo_homes(layers, patients, seed=seed)
    rng = random.Random(seed)
    start = datetime(2025, 6, 2, tzinfo=BANGKOK).astimezone(UTC)  # a local midnight
    sites = [build_site(layers, h, i + 1, rng, spacing_m, place_rx) for i, h in enumerate(homes)]
    args = [(site, days, seed * 1000 + i, start, p_wander, p_fall, slaps, quiet_share)
            for i, site in enumerate(sites) if only is None or site.pid in only]
    runs: list[PatientRun] = []
    if jobs > 1:  # patients are independent: the same runs, in worker processes (CPU summed over them)
        with multiprocessing.get_context("fork").Pool(jobs) as pool:
            for r in pool.imap(_run_one, args):
                runs.append(r)
                if progress:
                    print(f"  patient {r.pid}/{len(homes)} {time.process_time() - t0:.0f} s", file=sys.stderr,
                          flush=True)
    else:
        for a in args:
            runs.append(_run_one(a))
            if progress:
                print(f"  patient {a[0].pid}/{len(homes)} ({a[0].group}, {len(a[0].config.receivers)} receivers) "
                      f"{time.process_time() - t0:.0f} s", file=sys.stderr, flush=True)
    cpu = time.process_time() - t0 + resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime - child0
    return score(runs, cpu)


def _run_one(a: tuple[Site, int, int, datetime, float, float, int, float]) -> PatientRun:
    site, days, seed, start, p_wander, p_fall, slaps, quiet_share = a
    logging.getLogger("gateway.pipeline").setLevel(logging.ERROR)
    return run_patient(site, days, seed, start, p_wander=p_wander, p_fall=p_fall, slaps=slaps,
                       quiet_share=quiet_share)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--days", type=int, default=5)
    ap.add_argument("--patients", type=int, default=20)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--seeds", default="", help="several seeds, e.g. 101-105,107,201-210: each run as --seed, "
                    "then the wander figures pooled over all of them")
    ap.add_argument("--only", default="", help="run only these patients of each seed, e.g. 5,8 (the others are "
                    "planned the same, not simulated): to trace a few episodes")
    ap.add_argument("--episodes", action="store_true", help="one line per true wander episode and per false "
                    "wander alert (seed, patient, exit, dwell, beyond the dwell): the tail is a few episodes")
    ap.add_argument("--quiet-share", type=float, default=0.01, help="share of the day sampled as quiet windows")
    ap.add_argument("--rx-spacing", type=float, default=RX_SPACING_M,
                    help="metres between receivers along routes (default 50: the documented deployment)")
    ap.add_argument("--no-place-rx", action="store_true", help="no receiver at the zone's safe place (the bench "
                    "before trace27: that part of the zone heard by no receiver)")
    ap.add_argument("--quiet", action="store_true", help="no progress on stderr")
    ap.add_argument("--jobs", type=int, default=1, help="worker processes (patients run independently; "
                    "the figures do not depend on it)")
    a = ap.parse_args(argv)
    seeds = parse_seeds(a.seeds) if a.seeds else [a.seed]
    reps: list[tuple[int, Report]] = []
    for seed in seeds:
        rep = run(a.days, a.patients, seed, quiet_share=a.quiet_share, spacing_m=a.rx_spacing,
                  progress=not a.quiet, jobs=a.jobs, only=parse_seeds(a.only) if a.only else None,
                  place_rx=not a.no_place_rx)
        reps.append((seed, rep))
        if len(seeds) > 1:
            print(f"== seed {seed}")
        for line in lines(rep):
            print(line)
        if a.episodes:
            for line in episode_lines(seed, rep):
                print(line)
        sys.stdout.flush()
    if len(seeds) > 1:
        print(pooled_line(reps))


def parse_seeds(spec: str) -> list[int]:
    """'101-103,107' → [101, 102, 103, 107]."""
    out: list[int] = []
    for part in spec.split(","):
        lo, _, hi = part.strip().partition("-")
        out += list(range(int(lo), int(hi or lo) + 1))
    return out


def episode_lines(seed: int, rep: Report) -> list[str]:
    """Each true wander episode (its wander alert beyond the dwell, or 'missed') and each false wander."""
    out = [f"EPISODE seed={seed} patient={pid} exit_s={a:.0f} dwell_s={dw:.0f} "
           f"beyond_s={'missed' if b is None else f'{b:.0f}'}" for pid, a, dw, b in rep.wander.detail]
    out += [f"FALSE_WANDER seed={seed} patient={pid} at_s={at:.0f}" for pid, at in rep.wander.false_at]
    return out


def pooled_line(reps: list[tuple[int, Report]]) -> str:
    """The wander figures over several seeds' runs, pooled episode by episode."""
    beyond = [b for _s, r in reps for b in r.wander.beyond]
    eps = sum(r.wander.episodes for _s, r in reps)
    return (f"POOLED seeds={len(reps)} patient_days={sum(r.patient_days for _s, r in reps)} episodes={eps} "
            f"wander_detected={sum(r.wander.detected for _s, r in reps)} "
            f"caught_with_left_coverage={sum(r.caught.detected for _s, r in reps)} "
            f"beyond_dwell_median_s={_med(beyond):.0f} beyond_dwell_p95_s={_q(beyond, 0.95):.0f} "
            f"beyond_dwell_max_s={max(beyond, default=float('nan')):.0f} "
            f"false_wander={sum(r.wander.false_active + r.wander.false_quiet for _s, r in reps)} "
            f"false_left={sum(r.left.false_active + r.left.false_quiet for _s, r in reps)} "
            f"wander_paths_redrawn={sum(x.redrawn for _s, r in reps for x in r.runs)} "
            f"cpu_s={sum(r.cpu_s for _s, r in reps):.0f}")


if __name__ == "__main__":
    main()
