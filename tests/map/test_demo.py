"""Demo homes: real houses on residential parcels, with routes and safe places near them."""

from __future__ import annotations

from collections import Counter

import shapely

from chumphae.map.demo import RESIDENTIAL, demo_homes
from chumphae.map.layers import MapLayers
from chumphae.map.zones import build_zone


def test_thirty_homes_in_town_and_villages(chumphae_layers: MapLayers) -> None:
    L = chumphae_layers
    homes = demo_homes(L, 30, seed=4005)
    assert homes == demo_homes(L, 30, seed=4005)  # deterministic
    assert homes != demo_homes(L, 30, seed=1)
    assert len({h.building_code for h in homes}) == 30
    areas = Counter(h.area for h in homes)
    assert areas["Chumphae town"] == 15 and len(areas) >= 6  # half in town, the rest over several villages
    for h in homes:
        i = L.buildings.index(h.building_code)
        assert i is not None and L.buildings.kinds[i] == RESIDENTIAL
        assert h.building_code.startswith(h.parcel_code + "-B")
        x, y = L.metric.xy(h.lon, h.lat)
        assert L.parcels.geom(h.parcel_code).contains(shapely.Point(float(x), float(y)))  # type: ignore[union-attr]
        assert h.route_codes, h
        for code in h.route_codes:
            assert L.routes.geom(code).distance(L.buildings.geoms[i]) <= 150  # type: ignore[union-attr]
        zone = build_zone(L, h.zone_spec())
        assert zone.day.contains(L.buildings.geoms[i]) and zone.day.area > zone.night.area  # type: ignore[union-attr]
