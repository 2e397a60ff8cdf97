"""Fallback match and detect steps: the gateway's matcher, and its detectors when `chumphae.detect` is absent.

Deliberately small: safe-zone polygons from the site config (day and night
geometry), a dwell time before a wander alert, edge-triggered SOS / band
fall flag / band removed / battery low / left coverage. The real detectors
(fall from the motion summary, personal zones from routes) live in
`chumphae.detect`; `gateway.service.default_steps` prefers them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import shapely
from shapely.geometry import Point, shape
from shapely.geometry.base import BaseGeometry

from chumphae.map.match import lead_m, outside_p, region_clears
from chumphae.timeutil import to_bangkok
from chumphae.values import AlertType, Detection, Match, Place, Position, Reading, ZoneStatus
from gateway.siteconfig import SiteConfig

M_PER_DEG = 110_574.0
NIGHT_HOURS = set(range(20, 24)) | set(range(0, 6))  # Bangkok time
REMOVED_AFTER_S = 60.0
NightRule = Callable[[int, datetime], bool]  # (patient id, time) → night?
BATTERY_LOW_PCT = 15.0


@dataclass(frozen=True, slots=True)
class _Zone:
    version: int | None
    day: BaseGeometry
    night: BaseGeometry | None
    dwell_s: float


def default_night(_patient_id: int, t: datetime) -> bool:
    return to_bangkok(t).hour in NIGHT_HOURS


class ZoneMatcher:
    """Position × the patient's safe zone → Match, with the position's uncertainty respected.

    `night(patient_id, t)` decides night (default: `NIGHT_HOURS` in Bangkok); at night the zone's
    night geometry applies when it has one, and the Match's `schedule` says which geometry applied:
    "night" only then, as `chumphae.map.match` and `gateway.steps` say it. A zone without a night
    shape is "day" at night too: the wander detector takes a move to "night" for a switch of the zone
    in force and floors an excursion's smoothed past there (night30), which at 20:00 changed no
    geometry and cut a real excursion's past (debt33). The wearer's night dwell does not depend on it: the
    detectors apply it in the patient's night hours either way (`chumphae.detect.wander.night_for`)."""

    def __init__(self, config: SiteConfig, night: NightRule | None = None) -> None:
        self._night = night or default_night
        self._zones: dict[int, _Zone] = {}
        for z in config.zones:
            pid = z.get("patient_id")
            if pid is None or not z.get("geometry"):
                continue
            night = shape(z["night_geometry"]) if z.get("night_geometry") else None
            self._zones[int(pid)] = _Zone(z.get("version"), shape(z["geometry"]), night, float(z.get("dwell_s", 60)))

    def dwell_s(self, patient_id: int | None) -> float:
        z = self._zones.get(patient_id) if patient_id is not None else None
        return z.dwell_s if z else 60.0

    def __call__(self, position: Position, patient_id: int | None) -> Match | None:
        z = self._zones.get(patient_id) if patient_id is not None else None
        if z is None or patient_id is None:
            return Match(position, ZoneStatus.NO_ZONE, None, None, None, _place(ZoneStatus.NO_ZONE))
        in_force = z.night if z.night is not None and self._night(patient_id, position.t) else None
        geom = z.day if in_force is None else in_force
        p = Point(position.lon, position.lat)
        m_per_deg_lon = M_PER_DEG * math.cos(math.radians(position.lat))
        # degrees → metres: good enough at village scale, in the fallback only
        d_deg = geom.exterior.distance(p) if hasattr(geom, "exterior") else geom.boundary.distance(p)
        d_m = d_deg * min(M_PER_DEG, m_per_deg_lon)
        inside = geom.contains(p)
        signed = -d_m if inside else d_m
        clearance: float | None = None
        share: float | None = None
        prob: float | None = None
        if d_m <= position.uncertainty_m and position.in_coverage:
            status = ZoneStatus.UNCERTAIN
            if position.region:  # the locate step's likelihood cells decide where the disc cannot
                status, clearance, share, prob = _region_status(position, geom, m_per_deg_lon)
        else:
            status = ZoneStatus.INSIDE if inside else ZoneStatus.OUTSIDE
            share = prob = 0.0 if inside else 1.0
            if status == ZoneStatus.OUTSIDE:
                clearance = d_m - position.uncertainty_m
        return Match(position, status, z.version, round(signed, 1), None, _place(status),
                     schedule="day" if in_force is None else "night", clearance_m=clearance, outside_share=share,
                     outside_p=prob)


def _region_status(position: Position, geom: BaseGeometry, m_per_deg_lon: float
                   ) -> tuple[ZoneStatus, float | None, float, float | None]:
    """As `chumphae.map.match` (its rule, shared: `region_clears`, `lead_m`, `outside_p`): every cell clear
    of the zone → outside, unless the region's weighted mean has run `LEAD_M` ahead of the centre; every
    cell inside → inside; the share of the cells outside the zone and the probability outside (None
    without the cells' weights). Degrees → metres as the matcher above (local, good enough at village scale)."""
    lats = [q[0] for q in position.region]
    lons = [q[1] for q in position.region]
    covered = shapely.intersects_xy(geom, lons, lats)
    share = 1.0 - float(covered.sum()) / len(covered)
    prob = outside_p(position.region_weights, covered)
    if covered.any() and not covered.all():
        return ZoneStatus.UNCERTAIN, None, share, prob
    d = float(shapely.distance(geom.boundary, shapely.points(lons, lats)).min()) * min(M_PER_DEG, m_per_deg_lon)
    half = position.region_cell_m * 0.7072
    if covered.all():
        return (ZoneStatus.INSIDE, None, share, prob) if d >= half else (ZoneStatus.UNCERTAIN, None, share, prob)
    x = (np.asarray(lons) - position.lon) * m_per_deg_lon  # local metres around the centre
    y = (np.asarray(lats) - position.lat) * M_PER_DEG
    if region_clears(d, position.region_cell_m, lead_m(position.region_weights, x, y, 0.0, 0.0)):
        return ZoneStatus.OUTSIDE, round(d - half, 1), share, prob
    return ZoneStatus.UNCERTAIN, None, share, prob


def _place(status: ZoneStatus) -> Place:
    th = {
        ZoneStatus.INSIDE: "อยู่ในเขตปลอดภัย",
        ZoneStatus.OUTSIDE: "อยู่นอกเขตปลอดภัย",
        ZoneStatus.UNCERTAIN: "อยู่ใกล้ขอบเขตปลอดภัย",
        ZoneStatus.NO_ZONE: "ยังไม่มีเขตปลอดภัย",
    }[status]
    en = {
        ZoneStatus.INSIDE: "inside the safe zone",
        ZoneStatus.OUTSIDE: "outside the safe zone",
        ZoneStatus.UNCERTAIN: "near the safe-zone edge",
        ZoneStatus.NO_ZONE: "no safe zone yet",
    }[status]
    return Place(None, None, None, th, en)


@dataclass
class _State:
    sos: bool = False
    fall: bool = False
    unworn_since: datetime | None = None
    removed_sent: bool = False
    battery_low_sent: bool = False
    outside_since: datetime | None = None
    wander_sent: bool = False
    out_of_coverage: bool = False


class BasicDetector:
    """Edge-triggered: one alert per episode, re-armed when the condition clears."""

    def __init__(self, matcher: ZoneMatcher | None = None) -> None:
        self.matcher = matcher
        self._s: dict[str, _State] = {}

    def _st(self, address: str) -> _State:
        return self._s.setdefault(address, _State())

    def on_reading(self, r: Reading, patient_id: int | None) -> list[Detection]:
        s, out = self._st(r.address), []
        if r.sos and not s.sos:
            out.append(Detection(AlertType.SOS, r.t, r.address, patient_id, 1.0, None, {"source": "band_button"}))
        if r.fall_flag and not s.fall:
            out.append(Detection(AlertType.FALL, r.t, r.address, patient_id, 0.8, None, _motion(r)))
        s.sos, s.fall = r.sos, r.fall_flag
        if r.worn is False:
            s.unworn_since = s.unworn_since or r.t
            if not s.removed_sent and (r.t - s.unworn_since).total_seconds() >= REMOVED_AFTER_S:
                s.removed_sent = True
                out.append(Detection(AlertType.BAND_REMOVED, s.unworn_since, r.address, patient_id))
        elif r.worn:
            s.unworn_since, s.removed_sent = None, False
        if r.battery_pct is not None:
            if r.battery_pct <= BATTERY_LOW_PCT and not s.battery_low_sent and not r.charging:
                s.battery_low_sent = True
                out.append(
                    Detection(AlertType.BATTERY_LOW, r.t, r.address, patient_id, 1.0, None, {"battery_pct": r.battery_pct})
                )
            elif r.battery_pct > BATTERY_LOW_PCT + 10:
                s.battery_low_sent = False
        return out

    def on_position(self, p: Position, m: Match | None, patient_id: int | None) -> list[Detection]:
        s, out = self._st(p.address), []
        if not p.in_coverage:
            if not s.out_of_coverage:
                s.out_of_coverage = True
                out.append(Detection(AlertType.LEFT_COVERAGE, p.t, p.address, patient_id, 0.9, m, {}))
            return out
        s.out_of_coverage = False
        if m is None or m.status in (ZoneStatus.NO_ZONE, ZoneStatus.UNCERTAIN):
            return out
        if m.status == ZoneStatus.INSIDE:
            s.outside_since, s.wander_sent = None, False
            return out
        s.outside_since = s.outside_since or p.t
        dwell = self.matcher.dwell_s(patient_id) if self.matcher else 60.0
        outside_s = (p.t - s.outside_since).total_seconds()
        if not s.wander_sent and outside_s >= dwell:
            s.wander_sent = True
            out.append(Detection(AlertType.WANDER, s.outside_since, p.address, patient_id, 0.9, m, {"outside_for_s": round(outside_s)}))
        return out

    def tick(self, wall: datetime) -> list[Detection]:
        return []


def _motion(r: Reading) -> dict[str, Any]:
    if r.motion is None:
        return {"source": "band_flag"}
    return {"source": "band_flag", "max_g": r.motion.max_g, "min_g": r.motion.min_g, "pitch_deg": r.motion.pitch_deg}
