"""Walks on a site: routine walks that stay inside a patient's safe zone, and walks out of it.

Pure functions over the site config (zones and walking routes as GeoJSON,
WGS 84), in a local metric frame (metres east/north of the site's first
point; good to centimetres over a village). Points are (lat, lon).
"""

from __future__ import annotations

import math
import random
from typing import Any

import shapely
from shapely.geometry import LineString, Point, shape
from shapely.geometry.base import BaseGeometry
from shapely.ops import substring

from gateway.siteconfig import SiteConfig

LatLon = tuple[float, float]
M_PER_DEG = 110_574.0


class Frame:
    """Metres east/north of an origin, and back."""

    def __init__(self, origin: LatLon) -> None:
        self.lat0, self.lon0 = origin
        self.kx = M_PER_DEG * math.cos(math.radians(self.lat0))

    def xy(self, p: LatLon) -> tuple[float, float]:
        return (p[1] - self.lon0) * self.kx, (p[0] - self.lat0) * M_PER_DEG

    def latlon(self, x: float, y: float) -> LatLon:
        return round(self.lat0 + y / M_PER_DEG, 7), round(self.lon0 + x / self.kx, 7)

    def geom(self, geojson: dict[str, Any]) -> BaseGeometry:
        return shapely.transform(shape(geojson), lambda c: [(self.xy((lat, lon))) for lon, lat in c])


def frame_for(site: SiteConfig) -> Frame:
    if site.receivers:
        return Frame((site.receivers[0].lat, site.receivers[0].lon))
    home = next((p["home"] for p in site.patients if p.get("home")), None)
    return Frame((float(home["lat"]), float(home["lon"])) if home else (16.5442, 102.0997))


def zone_of(site: SiteConfig, frame: Frame, patient_id: int | None, *, night: bool = False) -> BaseGeometry | None:
    """The patient's day zone, or with `night` the night zone (None when the zone has none)."""
    key = "night_geometry" if night else "geometry"
    z = next((z for z in site.zones if z.get("patient_id") == patient_id and z.get("geometry")), None)
    return frame.geom(z[key]) if z and z.get(key) else None


def routes_of(site: SiteConfig, frame: Frame, patient_id: int | None) -> list[LineString]:
    out = []
    for r in site.routes:
        g = r.get("geometry") or {}
        if r.get("patient_id") == patient_id and g.get("type") == "LineString":
            line = frame.geom(g)
            if line.length > 1.0:
                out.append(line)
    return out


def _coords(line: BaseGeometry) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in line.coords] if isinstance(line, LineString) else []


def routine_walk(site: SiteConfig, patient_id: int | None, home: LatLon, rng: random.Random,
                 *, margin_m: float = 5.0) -> list[LatLon]:
    """Home → the nearest point of one of the patient's routes → some way along it (staying at least
    `margin_m` inside the zone) → back the same way → home. Empty when the patient has no route."""
    frame = frame_for(site)
    zone, routes = zone_of(site, frame, patient_id), routes_of(site, frame, patient_id)
    if not routes or zone is None:
        return []
    inner = zone.buffer(-margin_m)
    line = rng.choice(routes)
    hx, hy = frame.xy(home)
    d0 = line.project(Point(hx, hy))
    d1 = rng.uniform(0.0, line.length)
    leg = substring(line, min(d0, d1), max(d0, d1))
    pts = _coords(leg) if leg.length > 0 else []
    if d1 < d0:
        pts.reverse()
    inside = []
    for x, y in pts:  # stop where the route would leave the inner zone
        if not inner.contains(Point(x, y)):
            break
        inside.append((x, y))
    if not inside:
        return []
    there = [frame.latlon(x, y) for x, y in inside]
    return there + there[-2::-1] + [home]


def route_inside(site: SiteConfig, patient_id: int | None, home: LatLon, route: list[LatLon], *,
                 night: bool = False, margin_m: float = 5.0) -> list[LatLon]:
    """The part of `route` a patient walks back and forth without leaving the zone in force (the night zone
    with `night`, when the patient has one): from the point nearest home towards the end that keeps the
    longer walk, up to where it would come within `margin_m` of the zone's edge. The route as it is without a
    zone; empty when no part of it is inside (the patient then stays home)."""
    frame = frame_for(site)
    zone = (zone_of(site, frame, patient_id, night=True) if night else None) or zone_of(site, frame, patient_id)
    if zone is None or len(route) < 2:
        return route
    line = LineString([frame.xy(p) for p in route])
    if line.length <= 1.0:
        return route
    inner = zone.buffer(-margin_m)
    d0 = line.project(Point(*frame.xy(home)))
    best: list[tuple[float, float]] = []
    for end in (0.0, line.length):
        leg = _coords(substring(line, min(d0, end), max(d0, end)))
        if end < d0:
            leg.reverse()
        inside: list[tuple[float, float]] = []
        for x, y in leg:
            if not inner.contains(Point(x, y)):
                break
            inside.append((x, y))
        if _walked(inside) > _walked(best):
            best = inside
    return [frame.latlon(x, y) for x, y in best] if len(best) > 1 else []


def _walked(pts: list[tuple[float, float]]) -> float:
    return sum(math.dist(a, b) for a, b in zip(pts, pts[1:], strict=False))


def walk_out(site: SiteConfig, patient_id: int | None, home: LatLon, *, beyond_m: float = 120.0,
             min_inside_m: float = 40.0) -> list[LatLon]:
    """Home → along one of the patient's routes toward one of its ends → on in the same direction
    until `beyond_m` outside the safe zone. Of the routes and their two ends, the one that leaves the
    zone soonest after at least `min_inside_m` of walking inside. Without a route: straight out from
    home, away from the zone's centre. The first point is home: a walk, not a jump."""
    frame = frame_for(site)
    zone, routes = zone_of(site, frame, patient_id), routes_of(site, frame, patient_id)
    hx, hy = frame.xy(home)
    best: list[tuple[float, float]] | None = None
    best_len = math.inf
    for line in routes:
        d0 = line.project(Point(hx, hy))
        for end in (0.0, line.length):
            if abs(end - d0) < 1.0:
                continue
            leg = _coords(substring(line, min(d0, end), max(d0, end)))
            if end < d0:
                leg.reverse()
            pts = _out([(hx, hy), *leg], zone, beyond_m)
            inside = _length_inside(pts, zone)
            if inside >= min_inside_m and inside < best_len:
                best, best_len = pts, inside
    if best is None:
        cx, cy = (zone.centroid.x, zone.centroid.y) if zone is not None else (hx - 1.0, hy)
        if math.dist((cx, cy), (hx, hy)) < 1.0:
            cx -= 1.0
        best = _out([(cx, cy), (hx, hy)], zone, beyond_m)[1:]
    return [frame.latlon(px, py) for px, py in best]


def _out(pts: list[tuple[float, float]], zone: BaseGeometry | None, beyond_m: float) -> list[tuple[float, float]]:
    """The walk continued straight on from its last segment until `beyond_m` outside the zone."""
    (ax, ay), (bx, by) = pts[-2], pts[-1]
    d = max(1e-6, math.dist((ax, ay), (bx, by)))
    ux, uy = (bx - ax) / d, (by - ay) / d
    far = zone.buffer(beyond_m) if zone is not None else None
    out = list(pts)
    x, y = bx, by
    for _ in range(400):  # at most 2 km past the last point
        if far is None or not far.contains(Point(x, y)):
            break
        x, y = x + ux * 5.0, y + uy * 5.0
        out.append((x, y))
    return out


def _length_inside(pts: list[tuple[float, float]], zone: BaseGeometry | None) -> float:
    """Metres walked before the first point outside the zone."""
    run = 0.0
    for a, b in zip(pts, pts[1:], strict=False):
        if zone is not None and not zone.contains(Point(*b)):
            return run + math.dist(a, b)
        run += math.dist(a, b)
    return run
