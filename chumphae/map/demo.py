"""Realistic homes for demo patients: a house on a residential parcel, the routes near it, safe places nearby.

`chumphae seed-demo` places its patients with this, so the demo shows homes
in the town and in the villages, zones made of real walking routes, and
descriptions that name real (synthetic-map) landmarks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import shapely

from chumphae.map.layers import MapLayers

if TYPE_CHECKING:  # zones re-exports this module; import it lazily to avoid a cycle
    from chumphae.map.zones import ZoneSpec

RESIDENTIAL = "บ้านพักอาศัย"
SAFE_PLACE_KINDS = ("temple", "health_station", "market", "village_hall", "park", "shop")


@dataclass(frozen=True, slots=True)
class DemoHome:
    parcel_code: str
    building_code: str
    lon: float
    lat: float
    route_codes: tuple[str, ...]  # nearest walking routes first
    place_codes: tuple[str, ...]  # nearby landmarks a patient may safely walk to
    area: str  # "Chumphae town" or "Ban ..." (the nearest landmark's village)

    def zone_spec(self, routes: int = 2, places: int = 1) -> ZoneSpec:
        """A plausible starting zone: home, the nearest routes, the nearest safe place."""
        from chumphae.map.zones import ZoneSpec

        return ZoneSpec(home_parcel_code=self.parcel_code, home_building_code=self.building_code,
                        route_codes=self.route_codes[:routes], place_codes=self.place_codes[:places])


def demo_homes(layers: MapLayers, n: int, seed: int = 4005, *, town_share: float = 0.5,
               route_radius_m: float = 150.0, place_radius_m: float = 1200.0) -> list[DemoHome]:
    """`n` distinct residential buildings, about `town_share` of them in the town, deterministic by seed."""
    b = layers.buildings
    houses = np.flatnonzero(b.kinds == RESIDENTIAL)
    if not len(houses):
        raise ValueError("the map has no residential buildings (use บ้านพักอาศัย)")
    cent = shapely.centroid(b.geoms[houses])
    lm, _ = layers.landmarks.nearest(shapely.get_x(cent), shapely.get_y(cent))
    areas = np.array([_area(layers, int(k)) for k in lm], dtype=object)
    rng = np.random.default_rng(seed)
    town = houses[areas == "Chumphae town"]
    village = houses[areas != "Chumphae town"]
    n_town = min(len(town), round(n * town_share))
    picked = list(rng.choice(town, size=n_town, replace=False)) if n_town else []
    picked += list(rng.choice(village, size=min(len(village), n - n_town), replace=False))
    area_of = dict(zip(houses.tolist(), areas.tolist(), strict=True))
    out = []
    for i in sorted(int(k) for k in picked):
        geom = b.geoms[i]
        c = geom.centroid
        lon, lat = layers.metric.lonlat(c.x, c.y)
        routes = layers.routes.within(geom, route_radius_m)[:4]
        places = [int(k) for k in layers.landmarks.within(geom, place_radius_m)
                  if layers.landmarks.kinds[k] in SAFE_PLACE_KINDS][:3]
        code = str(b.codes[i])
        out.append(DemoHome(parcel_code=layers.parcel_of_building(code) or "", building_code=code,
                            lon=float(lon), lat=float(lat),
                            route_codes=tuple(str(layers.routes.codes[k]) for k in routes),
                            place_codes=tuple(str(layers.landmarks.codes[k]) for k in places),
                            area=str(area_of[i])))
    return out


def _area(layers: MapLayers, landmark: int) -> str:
    if landmark < 0:
        return "Chumphae town"
    return str(layers.landmarks.props[landmark].get("village") or "Chumphae town")
