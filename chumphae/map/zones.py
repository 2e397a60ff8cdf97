"""A patient's safe zone, built from the tax map rather than drawn by hand.

Home parcel (from the building or parcel code) widened by a margin, plus the
walking routes a volunteer assigned, buffered by a tolerance, plus named safe
places (the temple grounds, the health station). At night only the home
counts: a confused person on the road to the temple at 02:00 is not safe.
Pure: takes the layer set and a spec, returns geometry; storing versions is
`zonestore`'s job.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time
from typing import Any

import shapely
from shapely.geometry.base import BaseGeometry

from chumphae.map.crs import Metric
from chumphae.map.layers import MapLayers
from chumphae.timeutil import to_bangkok

HOME_FALLBACK_RADIUS_M = 30.0  # a home known only by a point: a disc around it


class ZoneBuildError(ValueError):
    """A spec that names things the map does not have (the message lists them)."""


@dataclass(frozen=True, slots=True)
class NightRule:
    """Between `start` and `end` (Asia/Bangkok; may wrap midnight) only the home counts."""

    start: time = time(20, 0)
    end: time = time(6, 0)

    def covers(self, t: datetime) -> bool:
        local = to_bangkok(t).time()
        if self.start <= self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end


@dataclass(frozen=True, slots=True)
class ZoneSpec:
    """What a zone is built from; stored as JSON in `safe_zone.spec`."""

    home_parcel_code: str | None = None
    home_building_code: str | None = None
    home_point: tuple[float, float] | None = None  # lon, lat: used when no code is known
    margin_m: float = 10.0
    route_codes: tuple[str, ...] = ()
    tolerance_m: float = 20.0
    place_codes: tuple[str, ...] = ()  # landmark codes (their parcel counts) or parcel codes
    place_radius_m: float = 50.0
    night: NightRule | None = field(default_factory=NightRule)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "home_parcel_code": self.home_parcel_code, "home_building_code": self.home_building_code,
            "home_point": list(self.home_point) if self.home_point else None, "margin_m": self.margin_m,
            "route_codes": list(self.route_codes), "tolerance_m": self.tolerance_m,
            "place_codes": list(self.place_codes), "place_radius_m": self.place_radius_m, "schedules": {},
        }
        if self.night:
            out["schedules"]["night"] = {"start": self.night.start.strftime("%H:%M"),
                                         "end": self.night.end.strftime("%H:%M"), "only": "home"}
        return out

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ZoneSpec:
        night = (d.get("schedules") or {}).get("night")
        point = d.get("home_point")
        return cls(
            home_parcel_code=d.get("home_parcel_code"), home_building_code=d.get("home_building_code"),
            home_point=(float(point[0]), float(point[1])) if point else None,
            margin_m=float(d.get("margin_m", 10.0)), route_codes=tuple(d.get("route_codes") or ()),
            tolerance_m=float(d.get("tolerance_m", 20.0)), place_codes=tuple(d.get("place_codes") or ()),
            place_radius_m=float(d.get("place_radius_m", 50.0)),
            night=NightRule(time.fromisoformat(night["start"]), time.fromisoformat(night["end"])) if night else None)


@dataclass(frozen=True, eq=False)
class Zone:
    """A built zone in the metric CRS, ready for matching (geometries prepared)."""

    spec: ZoneSpec
    metric: Metric
    day: BaseGeometry
    night: BaseGeometry | None
    patient_id: int | None = None
    version: int | None = None
    warnings: tuple[str, ...] = ()
    edges: tuple[BaseGeometry, BaseGeometry | None] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        shapely.prepare(self.day)
        if self.night is not None:
            shapely.prepare(self.night)
        # Boundaries once, not per position: distance to the edge is measured to these.
        object.__setattr__(self, "edges", (self.day.boundary,
                                           None if self.night is None else self.night.boundary))

    def at(self, t: datetime) -> BaseGeometry:
        """The geometry in force at `t` (night rule in Asia/Bangkok time)."""
        if self.night is not None and self.spec.night is not None and self.spec.night.covers(t):
            return self.night
        return self.day

    def edge_of(self, geom: BaseGeometry) -> BaseGeometry:
        """The boundary of the day or night geometry."""
        return self.edges[1] if geom is self.night and self.edges[1] is not None else self.edges[0]

    def is_night(self, t: datetime) -> bool:
        return self.at(t) is self.night


def home_geometry(layers: MapLayers, spec: ZoneSpec) -> tuple[BaseGeometry, str | None]:
    """The home (parcel ∪ building, metric) and the parcel code it came from."""
    parcel_code = spec.home_parcel_code
    parts: list[BaseGeometry] = []
    if spec.home_building_code:
        b = layers.buildings.geom(spec.home_building_code)
        if b is None:
            raise ZoneBuildError(f"no building {spec.home_building_code} on the map")
        parts.append(b)
        parcel_code = parcel_code or layers.parcel_of_building(spec.home_building_code)
    if parcel_code:
        p = layers.parcels.geom(parcel_code)
        if p is None:
            raise ZoneBuildError(f"no parcel {parcel_code} on the map")
        parts.append(p)
    if not parts and spec.home_point:
        x, y = layers.metric.xy(*spec.home_point)
        i = int(layers.parcels.under(x.reshape(1), y.reshape(1))[0])
        if i >= 0:
            parcel_code = layers.parcels.codes[i]
            parts.append(layers.parcels.geoms[i])
        else:
            parts.append(shapely.Point(float(x), float(y)).buffer(HOME_FALLBACK_RADIUS_M))
    if not parts:
        raise ZoneBuildError("a zone needs a home: a building code, a parcel code or a home point")
    return shapely.union_all(parts), parcel_code


def place_geometry(layers: MapLayers, code: str, radius_m: float, margin_m: float) -> BaseGeometry:
    """A named safe place: the parcel a landmark stands on (its grounds), else a disc around it."""
    i = layers.landmarks.index(code)
    if i is not None:
        pt = layers.landmarks.geoms[i]
        j = int(layers.parcels.under(shapely.get_x([pt]), shapely.get_y([pt]))[0])
        if j >= 0:
            return layers.parcels.geoms[j].buffer(margin_m).union(pt.buffer(radius_m))
        return pt.buffer(radius_m)
    p = layers.parcels.geom(code)
    if p is not None:
        return p.buffer(margin_m)
    raise ZoneBuildError(f"no landmark or parcel {code} on the map")


def place_point(layers: MapLayers, code: str, radius_m: float, margin_m: float) -> shapely.Point:
    """Where a receiver for a safe place stands: its grounds' (`place_geometry`) centroid, or a point inside
    them when the centroid falls outside (trace27: a safe place no receiver hears is a blind part of the zone)."""
    g = place_geometry(layers, code, radius_m, margin_m)
    return g.centroid if g.contains(g.centroid) else g.representative_point()


def build_zone(layers: MapLayers, spec: ZoneSpec, *, patient_id: int | None = None,
               version: int | None = None) -> Zone:
    """Day zone = home + routes + places; night zone = home only (when the spec has a night rule)."""
    if spec.margin_m < 0 or spec.tolerance_m <= 0 or spec.place_radius_m <= 0:
        raise ZoneBuildError("margin must be ≥ 0 m, tolerance and place radius > 0 m")
    home, _ = home_geometry(layers, spec)
    home = home.buffer(spec.margin_m) if spec.margin_m else home
    missing = [c for c in spec.route_codes if layers.routes.index(c) is None]
    if missing:
        raise ZoneBuildError(f"no route {', '.join(missing)} on the map")
    routes = [layers.routes.geoms[layers.routes.by_code[c]].buffer(spec.tolerance_m) for c in spec.route_codes]
    places = [place_geometry(layers, c, spec.place_radius_m, spec.margin_m) for c in spec.place_codes]
    day = shapely.union_all([home, *routes, *places])
    warnings: list[str] = []
    n_parts = len(shapely.get_parts(day))
    if n_parts > 1:
        warnings.append(f"the zone has {n_parts} separate parts: a route may not reach the home / "
                        f"เขตปลอดภัยแยกเป็น {n_parts} ส่วน: เส้นทางอาจไม่เชื่อมกับบ้าน")
    return Zone(spec=spec, metric=layers.metric, day=day, night=home if spec.night else None,
                patient_id=patient_id, version=version, warnings=tuple(warnings))


__all__ = ["NightRule", "Zone", "ZoneBuildError", "ZoneSpec", "build_zone", "home_geometry", "place_geometry",
           "place_point"]
