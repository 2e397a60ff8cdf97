"""Map features through the real database: the demo load is idempotent, imports replace, layers rebuild."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pytest
from shapely.geometry import box
from sqlmodel import Session

from chumphae.map.geojson import features_geojson
from chumphae.map.layers import MapLayers
from chumphae.map.store import (
    DEFAULT_DATASET,
    import_file,
    load_default_map,
    load_layers,
    map_info,
    remove_dataset,
    stored_records,
)
from tests.map.conftest import to_wgs


def test_default_map_loads_once_and_rebuilds_the_same_layers(session: Session,
                                                            chumphae_layers: MapLayers) -> None:
    first = load_default_map(session)
    session.commit()
    assert not first.skipped and first.kept == first.read == sum(chumphae_layers.counts().values())
    again = load_default_map(session)
    assert again.skipped and "already loaded" in "\n".join(again.lines())
    info = {r["layer"]: r for r in map_info(session)}
    assert {k: v["count"] for k, v in info.items()} == chumphae_layers.counts()
    assert all(r["dataset"] == DEFAULT_DATASET for r in info.values())
    x0, y0, x1, y1 = info["parcels"]["bbox"]
    assert 102.0 < x0 < 102.1 < x1 < 102.25 and 16.4 < y0 < 16.54 < y1 < 16.7

    layers = load_layers(session)
    assert layers.counts() == chumphae_layers.counts() and layers.metric.epsg == 32648
    code = "29F008"
    assert layers.parcels.geom(code).equals_exact(chumphae_layers.parcels.geom(code), 1e-6)  # type: ignore[union-attr]
    i = layers.routes.index("R00001")
    assert layers.routes.names_th[i] == "ถนนมะลิวัลย์ (ทางหลวงหมายเลข 12)"  # Thai survives the JSON/text columns
    # The database path and the in-memory path of the GeoJSON endpoint give the same features.
    bbox = (102.095, 16.540, 102.100, 16.545)
    from_db = features_geojson(session, "parcels", bbox, limit=5000)
    from_mem = features_geojson(layers, "parcels", bbox, limit=5000)
    assert {f["id"] for f in from_db["features"]} == {f["id"] for f in from_mem["features"]}
    assert len(from_db["features"]) > 50


def test_import_replaces_its_own_dataset_only(session: Session, tmp_path: Path) -> None:
    path = tmp_path / "tessaban.gpkg"
    gdf = gpd.GeoDataFrame({"parcel_code": ["01A001", "01A002"], "land_type": ["โฉนดที่ดิน", "น.ส.3ก."]},
                           geometry=[to_wgs(box(0, 0, 30, 30)), to_wgs(box(30, 0, 60, 30))], crs=4326)
    gdf.to_crs(32648).to_file(path, engine="pyogrio")
    s1 = import_file(session, path, "parcels")
    s2 = import_file(session, path, "parcels")  # a second run replaces, not doubles
    assert s1.dataset == s2.dataset == "tessaban" and s2.kept == 2
    other = import_file(session, path, "parcels", dataset="other")
    assert other.kept == 2
    recs = stored_records(session, ["tessaban"])
    assert sorted(r.code for r in recs) == ["01A001", "01A002"]  # type: ignore[type-var]
    assert {r.kind for r in recs} == {"โฉนดที่ดิน", "น.ส.3ก."}
    assert remove_dataset(session, "other") == 2
    assert [(r["dataset"], r["count"]) for r in map_info(session)] == [("tessaban", 2)]


def test_layers_need_features(session: Session) -> None:
    with pytest.raises(ValueError, match="no map features"):
        load_layers(session)
