"""The shipped Chumphae layer set: the LTAX shape of its fields, its CRS and size, and that the script makes it."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import geopandas as gpd
import pyogrio
import pytest
import shapely

from chumphae.map.store import DEFAULT_MAP

ROOT = Path(__file__).resolve().parents[2]


def read(layer: str) -> gpd.GeoDataFrame:
    return gpd.read_file(DEFAULT_MAP, layer=layer, engine="pyogrio")


def test_layers_crs_and_size() -> None:
    assert sorted(pyogrio.list_layers(DEFAULT_MAP)[:, 0]) == ["buildings", "landmarks", "parcels", "routes"]
    assert DEFAULT_MAP.stat().st_size < 6_000_000
    parcels, buildings, routes = read("parcels"), read("buildings"), read("routes")
    for gdf in (parcels, buildings, routes):
        assert gdf.crs.to_epsg() == 32648 and gdf.is_valid.all()
    assert len(parcels) > 5000 and len(buildings) > 5000
    assert routes.length.sum() > 300_000  # hundreds of km of walking routes
    assert set(routes.kind) >= {"highway", "road", "soi", "lane", "rural_road", "footpath"}
    centre = parcels.to_crs(4326).union_all().centroid
    assert abs(centre.y - 16.544) < 0.03 and abs(centre.x - 102.100) < 0.03


def test_ltax_codes() -> None:
    parcels, buildings = read("parcels"), read("buildings")
    assert parcels.parcel_code.is_unique
    assert parcels.parcel_code.str.fullmatch(r"\d{2}[A-Z]\d{3}").all()
    assert (parcels.zone + parcels.block + parcels.lot == parcels.parcel_code).all()
    assert set(parcels.land_type) >= {"โฉนดที่ดิน", "น.ส.3ก.", "ส.ป.ก. 4-01"}
    assert (parcels.geom_type == "MultiPolygon").all()
    assert buildings.building_code.is_unique
    assert buildings.building_code.str.fullmatch(r"\d{2}[A-Z]\d{3}-B\d{3}").all()
    assert (buildings.building_code.str[:6] == buildings.parcel_code).all()
    joined = buildings.merge(parcels[["parcel_code", "geometry"]], on="parcel_code")
    inside = shapely.within(joined.geometry_x.values, joined.geometry_y.buffer(0.05).values)
    assert inside.all()  # every building stands on its own parcel
    # big paddies outside, small lots in town
    assert parcels[parcels.Scale == "1:4000"].area.median() > 3 * parcels[parcels.Scale == "1:1000"].area.median()


def test_landmarks_people_navigate_by() -> None:
    lm = read("landmarks")
    assert lm.landmark_id.is_unique
    names = set(lm.name_th)
    assert {"วัดศรีชมภู", "โรงพยาบาลชุมแพ", "ตลาดสดเทศบาลชุมแพ", "โรงเรียนชุมแพศึกษา"} <= names
    assert lm.name_en.notna().all() and lm.name_th.notna().all()
    assert (lm.kind == "health_station").sum() >= 4 and (lm.kind == "temple").sum() >= 5
    assert re.search("โรงพยาบาลส่งเสริมสุขภาพตำบล", " ".join(names))


@pytest.mark.slow
def test_the_script_makes_the_committed_file() -> None:
    spec = importlib.util.spec_from_file_location("make_chumphae_map", ROOT / "scripts" / "make_chumphae_map.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules["make_chumphae_map"] = mod
    spec.loader.exec_module(mod)
    built = mod.build()
    for layer in ("parcels", "buildings", "routes", "landmarks"):
        shipped = read(layer)
        assert len(shipped) == len(built[layer]), layer
        assert shapely.equals_exact(shipped.geometry.values, built[layer].geometry.values, 0.01).all(), layer
        cols = [c for c in shipped.columns if c != "geometry"]
        assert shipped[cols].astype(str).equals(built[layer][cols].astype(str)), layer
