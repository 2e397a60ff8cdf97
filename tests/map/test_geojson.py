"""GeoJSON for the page: bbox required, clipped, capped."""

from __future__ import annotations

import json

import pytest
import shapely
from shapely.geometry import shape

from chumphae.map.geojson import BBoxError, features_geojson, parse_bbox
from chumphae.map.layers import MapLayers

TOWN = (102.095, 16.540, 102.100, 16.545)


def test_clipped_to_the_bbox_with_thai_properties(chumphae_layers: MapLayers) -> None:
    fc = features_geojson(chumphae_layers, "buildings", TOWN, limit=5000)
    assert fc["type"] == "FeatureCollection" and not fc["truncated"] and len(fc["features"]) > 20
    window = shapely.box(*TOWN).buffer(1e-7)
    for f in fc["features"]:
        assert window.covers(shape(f["geometry"]))
        assert f["id"].startswith(f["properties"]["parcel_code"] + "-B")
    assert any(f["properties"]["kind"] == "บ้านพักอาศัย" for f in fc["features"])
    json.dumps(fc, ensure_ascii=False)  # serialisable as is


def test_a_route_crossing_the_edge_is_cut(chumphae_layers: MapLayers) -> None:
    fc = features_geojson(chumphae_layers, "routes", TOWN, limit=5000)
    full = {c: g for c, g in zip(chumphae_layers.routes.codes, chumphae_layers.routes.wgs84, strict=True)}
    cut = [f for f in fc["features"] if shape(f["geometry"]).length < full[f["id"]].length - 1e-6]
    assert cut, "the routes crossing the bbox edge come back clipped"


def test_hard_cap_and_truncation(chumphae_layers: MapLayers) -> None:
    fc = features_geojson(chumphae_layers, "parcels", (102.0, 16.4, 102.2, 16.7), limit=10**9)
    assert fc["limit"] == 5000 and len(fc["features"]) == 5000 and fc["truncated"]
    small = features_geojson(chumphae_layers, "landmarks", (102.0, 16.4, 102.2, 16.7), limit=10)
    assert len(small["features"]) == 10 and small["truncated"]


@pytest.mark.parametrize("bad", ["1,2,3", "a,b,c,d", "102.1,16.5,102.0,16.6", "0,0,0,0", "200,0,201,1"])
def test_bad_bboxes_are_refused(bad: str) -> None:
    with pytest.raises(BBoxError):
        parse_bbox(bad)


def test_unknown_layer(chumphae_layers: MapLayers) -> None:
    with pytest.raises(ValueError, match="unknown layer"):
        features_geojson(chumphae_layers, "owners", TOWN)
