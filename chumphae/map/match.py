"""The match step: a position (with its uncertainty disc) judged against a safe zone and the map.

Status follows the disc, not the centre: inside when the whole disc lies in
the zone, outside when the whole disc lies outside, uncertain otherwise. So a
BLE fix ±40 m near the garden fence is not called a wander, and the detector
downstream can wait for a better fix. When the locate step sends a region
(the grid cells holding ~95 % of its likelihood: a ring around one receiver,
say) the region decides in the same way, cell by cell: wholly outside →
outside, even though the covering disc still touches the zone (unless the region has run ahead of the
position's centre, `LEAD_M`: then uncertain); and when the region's cells carry
their weights (`Position.region_weights`) the Match says the probability outside (`outside_p`: the
weight of the cells outside over the region's). Distances are metres in the map's UTM
zone. Two paths give the same answers: `match` for one position (gateway,
live feed) and `match_many` for a batch (vectorised: one CRS transform, one
STRtree query per layer, one distance call per zone).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence

import numpy as np
import shapely
from numpy.typing import NDArray
from shapely.geometry.base import BaseGeometry

from chumphae.map.describe import describe, no_landmark
from chumphae.map.layers import MapLayers
from chumphae.map.zones import Zone
from chumphae.values import Match, Place, Position, ZoneStatus


def classify(signed_distance_m: float, uncertainty_m: float) -> ZoneStatus:
    """Disc of radius r at signed distance d (negative inside): inside if d ≤ −r, outside if d ≥ r."""
    r = max(0.0, uncertainty_m)
    if signed_distance_m <= -r:
        return ZoneStatus.INSIDE
    if signed_distance_m >= r:
        return ZoneStatus.OUTSIDE
    return ZoneStatus.UNCERTAIN


def outside_p(weights: Sequence[float], covered: NDArray[np.bool_]) -> float | None:
    """The probability outside the zone: the weight of the region's cells outside (`covered` False) over the
    region's whole weight (`Position.region_weights`, one per cell); None when the locate step gave no
    weights. Shared with the fallback matcher (`gateway.basic`)."""
    if len(weights) != len(covered):
        return None
    w = np.asarray(weights, dtype=np.float64)
    total = float(w.sum())
    return float(w[~covered].sum()) / total if total > 0 else None


LEAD_M = 20.0  # a region wholly outside whose weighted mean is further than this from the centre does not decide


def lead_m(weights: Sequence[float], x: NDArray[np.float64], y: NDArray[np.float64], cx: float, cy: float) -> float:
    """How far the region's weighted mean (`Position.region_weights`; cells at x, y in metres) lies from the
    position's centre (cx, cy, same metres); 0 without weights. The locate step's centre moves at most
    walking speed from one fix to the next; its cloud does not: when the evidence contradicts the tracked
    cloud, the few particles drawn from that window alone take the weight and the cloud jumps tens of
    metres in one step, the centre following at walking pace. Such a region says where the evidence alone
    points, not where a walking patient can be: it must not call the patient outside (`region_clears`)."""
    if len(weights) != len(x):
        return 0.0
    w = np.asarray(weights, dtype=np.float64)
    total = float(w.sum())
    if total <= 0:
        return 0.0
    return math.hypot(float(w @ x) / total - cx, float(w @ y) / total - cy)


def region_clears(edge_m: float, cell_m: float, lead: float) -> bool:
    """A region with no cell in the zone decides OUTSIDE: its nearest cell centre (`edge_m` from the zone's
    edge) clears it by half a cell's diagonal, and its weighted mean leads the centre by at most `LEAD_M`
    (+ half a cell, `lead_m`). Shared with the fallback matcher (`gateway.basic`)."""
    half = cell_m * 0.7072
    return edge_m >= half and lead <= LEAD_M + half


class Matcher:
    """Matches positions against zones and names the place; holds only the read-only layer set."""

    PLACE_CELL_M = 5.0  # places are named once per 5 m cell ("120 m north of …" is not finer than that)
    PLACE_CACHE = 65_536

    def __init__(self, layers: MapLayers) -> None:
        self.layers = layers
        self._place_cache: dict[tuple[int, int], Place] = {}
        self._place_lock = threading.Lock()  # one matcher serves the backend's threads; the cache is cleared when full

    # -- one position -------------------------------------------------------
    def match(self, position: Position, zone: Zone | None) -> Match:
        x, y = self.layers.metric.xy(position.lon, position.lat)
        return self._matches([position], np.atleast_1d(x), np.atleast_1d(y), [zone])[0]

    def place(self, lon: float, lat: float) -> Place:
        x, y = self.layers.metric.xy(lon, lat)
        return self._places(np.atleast_1d(x), np.atleast_1d(y))[0]

    # -- many positions -----------------------------------------------------
    def places(self, lons: Sequence[float], lats: Sequence[float]) -> list[Place]:
        """The places of many points, named once per `PLACE_CELL_M` cell (as `match_many` names them)."""
        x, y = self.layers.metric.xy(lons, lats)
        return self._places_cached(np.atleast_1d(x), np.atleast_1d(y))

    def match_many(self, positions: Sequence[Position], zones: Sequence[Zone | None], *,
                   schedule: bool = False) -> list[Match]:
        """Batch path: `zones[i]` is the zone of `positions[i]` (patients share Zone objects freely).
        `schedule`: say in each Match which of its zone's geometries applied ("day" / "night")."""
        if len(positions) != len(zones):
            raise ValueError("one zone (or None) per position")
        if not positions:
            return []
        x, y = self.layers.metric.xy([p.lon for p in positions], [p.lat for p in positions])
        return self._matches(positions, x, y, zones, schedule)

    def _matches(self, positions: Sequence[Position], x: NDArray[np.float64], y: NDArray[np.float64],
                 zones: Sequence[Zone | None], schedule: bool = False) -> list[Match]:
        n = len(positions)
        signed = np.full(n, np.nan)
        # Group positions by the geometry in force (day or night of each zone) for one vectorised call each.
        groups: dict[int, tuple[BaseGeometry, BaseGeometry, list[int]]] = {}
        geom: list[BaseGeometry | None] = [None] * n
        for i, (p, z) in enumerate(zip(positions, zones, strict=True)):
            if z is not None:
                g = geom[i] = z.at(p.t)
                groups.setdefault(id(g), (g, z.edge_of(g), []))[2].append(i)
        for g, edge, idx_list in groups.values():
            idx = np.asarray(idx_list)
            covered = shapely.intersects_xy(g, x[idx], y[idx])
            d = shapely.distance(edge, shapely.points(x[idx], y[idx]))
            signed[idx] = np.where(covered, -d, d)
        route_i, route_d = self.layers.routes.nearest(x, y)
        places = self._places_cached(x, y)
        status: list[ZoneStatus] = []
        clearance: list[float | None] = [None] * n
        share: list[float | None] = [None] * n
        prob: list[float | None] = [None] * n
        regions: list[int] = []  # uncertain by the disc, with a region to decide it
        for i, (p, z) in enumerate(zip(positions, zones, strict=True)):
            if z is None:
                status.append(ZoneStatus.NO_ZONE)
                continue
            st = classify(float(signed[i]), p.uncertainty_m)
            status.append(st)
            share[i] = prob[i] = 1.0 if st == ZoneStatus.OUTSIDE else 0.0 if st == ZoneStatus.INSIDE else None
            if st == ZoneStatus.OUTSIDE:
                clearance[i] = float(signed[i]) - p.uncertainty_m
            elif st == ZoneStatus.UNCERTAIN and p.region:
                regions.append(i)
        if regions:
            decided = self._region_statuses([positions[i] for i in regions], [zones[i] for i in regions],
                                            [geom[i] for i in regions])
            for i, (st, c, f, q) in zip(regions, decided, strict=True):
                status[i], clearance[i], share[i], prob[i] = st, c, f, q
        out: list[Match] = []
        for i, (p, z) in enumerate(zip(positions, zones, strict=True)):
            sched = None if not schedule or z is None else ("night" if geom[i] is z.night else "day")
            out.append(Match(position=p, status=status[i], zone_version=z.version if z else None,
                             distance_to_boundary_m=None if z is None else float(signed[i]),
                             distance_to_route_m=float(route_d[i]) if route_i[i] >= 0 else None,
                             place=places[i], schedule=sched, clearance_m=clearance[i], outside_share=share[i],
                             outside_p=prob[i]))
        return out

    def _region_statuses(self, ps: Sequence[Position], zs: Sequence[Zone | None], gs: Sequence[BaseGeometry | None]
                         ) -> list[tuple[ZoneStatus, float | None, float, float | None]]:
        """`_region_status` for many positions at once: one CRS transform for every cell, then one
        point-in-zone and one distance call per zone geometry; the same answers, cell for cell."""
        sizes = [len(p.region) for p in ps]
        lon = [q[1] for p in ps for q in p.region]
        lat = [q[0] for p in ps for q in p.region]
        x, y = self.layers.metric.xy(lon, lat)
        x, y = np.atleast_1d(x), np.atleast_1d(y)
        starts = np.cumsum([0, *sizes[:-1]])
        covered = np.zeros(len(x), dtype=bool)
        dist = np.zeros(len(x))
        by_geom: dict[int, tuple[BaseGeometry, BaseGeometry, list[int]]] = {}
        for k, (z, g) in enumerate(zip(zs, gs, strict=True)):
            assert z is not None and g is not None
            by_geom.setdefault(id(g), (g, z.edge_of(g), []))[2].append(k)
        cells_of = [np.arange(starts[k], starts[k] + sizes[k]) for k in range(len(ps))]
        for g, _edge, ks in by_geom.values():
            cells = np.concatenate([cells_of[k] for k in ks])
            covered[cells] = shapely.intersects_xy(g, x[cells], y[cells])
        any_in = np.logical_or.reduceat(covered, starts)
        all_in = np.logical_and.reduceat(covered, starts)
        mixed = any_in & ~all_in  # uncertain whatever the distances: none computed for them
        for _g, edge, ks in by_geom.values():
            ks = [k for k in ks if not mixed[k]]
            if ks:
                cells = np.concatenate([cells_of[k] for k in ks])
                dist[cells] = shapely.distance(edge, shapely.points(x[cells], y[cells]))
        d_min = np.minimum.reduceat(dist, starts)
        cx, cy = self.layers.metric.xy([p.lon for p in ps], [p.lat for p in ps])
        cx, cy = np.atleast_1d(cx), np.atleast_1d(cy)
        out_share = 1.0 - np.add.reduceat(covered.astype(np.float64), starts) / np.asarray(sizes, dtype=np.float64)
        out: list[tuple[ZoneStatus, float | None, float, float | None]] = []
        for k, p in enumerate(ps):
            half = p.region_cell_m * 0.7072
            d = float(d_min[k])
            f = float(out_share[k])
            q = outside_p(p.region_weights, covered[starts[k]:starts[k] + sizes[k]])
            if any_in[k] and not all_in[k]:
                out.append((ZoneStatus.UNCERTAIN, None, f, q))
            elif not any_in[k]:
                sl = slice(starts[k], starts[k] + sizes[k])
                clear = region_clears(d, p.region_cell_m, lead_m(p.region_weights, x[sl], y[sl], float(cx[k]), float(cy[k])))
                out.append((ZoneStatus.OUTSIDE, d - half, f, q) if clear else (ZoneStatus.UNCERTAIN, None, f, q))
            else:
                out.append((ZoneStatus.INSIDE, None, f, q) if d >= half else (ZoneStatus.UNCERTAIN, None, f, q))
        return out

    def _region_status(self, p: Position, z: Zone) -> tuple[ZoneStatus, float | None, float, float | None]:
        """The locate step's region, cell by cell: every cell clear of the zone → outside (and by how
        much), every cell inside → inside, else uncertain; the share of its cells outside the zone, and
        the probability outside (the cells' weights outside over their whole weight; None without weights).
        A cell is a square `region_cell_m` wide: its centre must clear the edge by half its diagonal."""
        g = z.at(p.t)
        x, y = self.layers.metric.xy([q[1] for q in p.region], [q[0] for q in p.region])
        x, y = np.atleast_1d(x), np.atleast_1d(y)
        covered = shapely.intersects_xy(g, x, y)
        half = p.region_cell_m * 0.7072
        share = 1.0 - float(covered.sum()) / len(covered)
        q = outside_p(p.region_weights, covered)
        if covered.any() and not covered.all():
            return ZoneStatus.UNCERTAIN, None, share, q
        d = float(shapely.distance(z.edge_of(g), shapely.points(x, y)).min())
        if not covered.any():
            cx, cy = self.layers.metric.xy(p.lon, p.lat)
            clear = region_clears(d, p.region_cell_m, lead_m(p.region_weights, x, y, float(cx), float(cy)))
            return (ZoneStatus.OUTSIDE, d - half, share, q) if clear else (ZoneStatus.UNCERTAIN, None, share, q)
        return (ZoneStatus.INSIDE, None, share, q) if d >= half else (ZoneStatus.UNCERTAIN, None, share, q)

    def _places_cached(self, x: NDArray[np.float64], y: NDArray[np.float64]) -> list[Place]:
        """`_places`, remembered per `PLACE_CELL_M` cell (a still patient's place is looked up once); one caller
        at a time, so a clear by one thread never empties the cache under another's reads."""
        keys = list(zip((x // self.PLACE_CELL_M).astype(int).tolist(), (y // self.PLACE_CELL_M).astype(int).tolist(),
                        strict=True))
        with self._place_lock:
            miss = [i for i, k in enumerate(keys) if k not in self._place_cache]
            if miss:
                if len(self._place_cache) + len(miss) > self.PLACE_CACHE:
                    self._place_cache.clear()
                    miss = list(range(len(keys)))  # the hits went with the clear: name them again too
                cx = (np.floor(x[miss] / self.PLACE_CELL_M) + 0.5) * self.PLACE_CELL_M
                cy = (np.floor(y[miss] / self.PLACE_CELL_M) + 0.5) * self.PLACE_CELL_M
                for i, place in zip(miss, self._places(cx, cy), strict=True):
                    self._place_cache[keys[i]] = place
            return [self._place_cache[k] for k in keys]

    def _places(self, x: NDArray[np.float64], y: NDArray[np.float64]) -> list[Place]:
        L = self.layers
        parcel = L.parcels.under(x, y)
        building = L.buildings.under(x, y)
        lm, _ = L.landmarks.nearest(x, y)
        lm_x = shapely.get_x(L.landmarks.geoms[np.maximum(lm, 0)]) if len(L.landmarks) else np.zeros(len(x))
        lm_y = shapely.get_y(L.landmarks.geoms[np.maximum(lm, 0)]) if len(L.landmarks) else np.zeros(len(x))
        out = []
        for i in range(len(x)):
            k = int(lm[i])
            if k >= 0:
                th, en = describe(float(x[i] - lm_x[i]), float(y[i] - lm_y[i]),
                                  L.landmarks.names_th[k], L.landmarks.names_en[k])
            else:
                th, en = no_landmark()
            out.append(Place(
                parcel_code=L.parcels.codes[parcel[i]] if parcel[i] >= 0 else None,
                building_code=L.buildings.codes[building[i]] if building[i] >= 0 else None,
                landmark=L.landmarks.codes[k] if k >= 0 else None,
                description_th=th, description_en=en))
        return out
