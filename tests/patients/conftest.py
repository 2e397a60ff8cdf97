"""A tiny tax map for the import tests (debt27): the shipped map's landmarks around the test homes.

An import that gives homes positions on an empty map loads the map first (`CHUMPHAE_MAP_PATH`, else the shipped
`mapdata/chumphae.gpkg`: +6–9 s a test, nearly all of it parcels and buildings, which naming a village does not
use). Here `CHUMPHAE_MAP_PATH` is a GeoJSON of the shipped map's own landmarks (codes, names, villages and
points as they are in the file, in its CRS EPSG:32648 stated in the `crs` member, as the importer demands)
within `KEEP_M` of every home position these tests import. `KEEP_M` ≥ `VILLAGE_RADIUS_M`: each home's landmarks
within the naming radius are all here, so each home gets the name the shipped map gives it. The other layers
read from this file keep nothing (points are no parcels, buildings or routes). A test importing a home
elsewhere adds its position to `HOMES`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from chumphae.map.store import DEFAULT_MAP
from chumphae.patients.import43 import VILLAGE_RADIUS_M

HOMES = ((16.5442, 102.0997), (16.55, 102.10), (16.2, 102.5),  # test_import43.py (lat, lon)
         (16.545012, 102.100134), (16.5461, 102.1012), (16.5, 102.1))  # test_import43_docs21.py
KEEP_M = VILLAGE_RADIUS_M + 500.0
SHIPPED_CRS = 32648  # mapdata/chumphae.gpkg: WGS 84 / UTM zone 48N (metres)


@pytest.fixture(scope="session")
def tiny_map(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import numpy as np
    import pyogrio
    from pyproj import Transformer

    landmarks = pyogrio.read_dataframe(DEFAULT_MAP, layer="landmarks")
    assert landmarks.crs.to_epsg() == SHIPPED_CRS, landmarks.crs
    to_utm = Transformer.from_crs(4326, SHIPPED_CRS, always_xy=True)
    homes = np.array([to_utm.transform(lon, lat) for lat, lon in HOMES])
    x, y = landmarks.geometry.x.to_numpy(), landmarks.geometry.y.to_numpy()
    near = np.hypot(x[:, None] - homes[None, :, 0], y[:, None] - homes[None, :, 1]).min(axis=1) <= KEEP_M
    columns = [c for c in landmarks.columns if c != landmarks.geometry.name]
    features = [{"type": "Feature", "properties": {c: row[c] for c in columns},
                 "geometry": {"type": "Point", "coordinates": [row.geometry.x, row.geometry.y]}}
                for _, row in landmarks[near].iterrows()]
    path = tmp_path_factory.mktemp("map") / "landmarks-near-test-homes.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "name": "landmarks",
                                "crs": {"type": "name", "properties": {"name": f"urn:ogc:def:crs:EPSG::{SHIPPED_CRS}"}},
                                "features": features}, ensure_ascii=False), encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def _tiny_map_path(tiny_map: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    from chumphae.config import reset_settings

    monkeypatch.setenv("CHUMPHAE_MAP_PATH", str(tiny_map))
    reset_settings()
    yield
