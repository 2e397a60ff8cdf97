"""Importing municipality files: formats × CRSs agree within 0.5 m; no CRS is refused; bad geometry is counted."""

from __future__ import annotations

import warnings
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely
from shapely.geometry import LineString, Point, Polygon, box

from chumphae.map.crs import Metric, transform_geoms
from chumphae.map.importer import MapImportError, parse_field_map, read_layer
from tests.map.conftest import to_wgs

# Three parcels near the town centre (WGS 84), one with Thai land type and a use of its own.
PARCELS_M = [box(0, 0, 40, 30), box(40, 0, 95, 30),
             Polygon([(0, 40), (60, 40), (80, 90), (10, 100), (0, 40)])]
ROWS = [
    {"zone": "03", "block": "I", "lot": "001", "parcel_code": "03I001", "land_type": "โฉนดที่ดิน", "Mapsheet": "5838III1414"},
    {"zone": "03", "block": "I", "lot": "002", "parcel_code": "03I002", "land_type": "ส.ป.ก. 4-01", "Mapsheet": "5838III1414"},
    {"zone": "03", "block": "I", "lot": "003", "parcel_code": "03I003", "land_type": "น.ส.3ก.", "Mapsheet": "5838III1415"},
]


def wgs_parcels() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(ROWS, geometry=[to_wgs(g) for g in PARCELS_M], crs=4326)


def write(gdf: gpd.GeoDataFrame, path: Path, epsg: int, **kw: object) -> Path:
    with warnings.catch_warnings():  # Shapefiles cut long column names, as they do for municipalities
        warnings.simplefilter("ignore")
        gdf.to_crs(epsg).to_file(path, engine="pyogrio", **kw)
    return path


@pytest.mark.parametrize(("name", "epsg"), [
    ("parcels.geojson", 4326),
    ("parcels_utm48.gpkg", 32648),
    ("parcels_utm47.shp", 32647),
    ("parcels_indian1975_48.gpkg", 24048),
    ("parcels_indian1975_47.shp", 24047),
    ("parcels_utm48.geojson", 32648),
])
def test_formats_and_crss_give_the_same_wgs84_geometry(map_dir: Path, name: str, epsg: int) -> None:
    path = write(wgs_parcels(), map_dir / name, epsg)
    result = read_layer(path, "parcels")
    s = result.summary
    assert (s.read, s.kept, s.repaired, s.dropped, s.empty) == (3, 3, 0, 0, 0)
    assert s.source_crs == f"EPSG:{epsg}" and s.metric_epsg == 32648
    by_code = {r.code: r for r in result.records}
    assert set(by_code) == {"03I001", "03I002", "03I003"}
    metric = Metric(32648)
    for row, original in zip(ROWS, PARCELS_M, strict=True):
        got = metric.to_metric(by_code[row["parcel_code"]].geom)
        want = metric.to_metric(to_wgs(original))
        assert shapely.hausdorff_distance(got, want) < 0.5, name
        # Thai attributes survive every format (the Shapefile through its .cpg)
        assert by_code[row["parcel_code"]].kind == row["land_type"]
        assert by_code[row["parcel_code"]].props["Mapsheet"] == row["Mapsheet"]
    assert s.bbox is not None and 102.09 < s.bbox[0] < s.bbox[2] < 102.11


def test_indian_1975_is_not_wgs84(map_dir: Path) -> None:
    """Reading an Indian 1975 file as if WGS 84 would move parcels by tens of metres: the CRS matters."""
    path = write(wgs_parcels(), map_dir / "p.gpkg", 24048)
    right = read_layer(path, "parcels").records[0].geom
    wrong = read_layer(path, "parcels", epsg=32648).records[0].geom
    metric = Metric(32648)
    shift = metric.to_metric(right).centroid.distance(metric.to_metric(wrong).centroid)
    assert 50 < shift < 1000


def test_a_file_without_crs_is_refused_with_the_candidates(map_dir: Path) -> None:
    path = write(wgs_parcels(), map_dir / "nocrs.shp", 32648)
    path.with_suffix(".prj").unlink()
    with pytest.raises(MapImportError) as err:
        read_layer(path, "parcels")
    for code in ("32647", "32648", "24047", "24048"):
        assert code in str(err.value)
    ok = read_layer(path, "parcels", epsg=32648)  # told, it imports
    assert ok.summary.kept == 3 and ok.summary.source_crs == "EPSG:32648"


def test_metres_in_a_file_that_claims_degrees_are_refused(map_dir: Path) -> None:
    gdf = wgs_parcels().to_crs(32648).set_crs(4326, allow_override=True)
    path = map_dir / "lying.geojson"
    gdf.to_file(path, engine="pyogrio")
    with pytest.raises(MapImportError, match="metres"):
        read_layer(path, "parcels")


def test_a_wrong_crs_that_lands_outside_thailand_is_refused(map_dir: Path) -> None:
    path = write(wgs_parcels(), map_dir / "p.shp", 32648)
    with pytest.raises(MapImportError, match="outside Thailand"):
        read_layer(path, "parcels", epsg=32633)


def test_broken_and_empty_geometries_are_counted_not_fatal(map_dir: Path) -> None:
    bowtie = Polygon([(0, 0), (20, 20), (20, 0), (0, 20), (0, 0)])  # self-intersecting: repairable
    flat = Polygon([(0, 0), (10, 10), (0, 0), (0, 0)])  # collapsed ring: nothing polygonal left
    geoms = [to_wgs(box(0, 0, 30, 30)), to_wgs(bowtie), to_wgs(flat), Polygon(), None]
    assert not shapely.is_valid(geoms[1]) and not shapely.is_valid(geoms[2])
    gdf = gpd.GeoDataFrame({"parcel_code": ["01A001", "01A002", "01A003", "01A004", "01A005"]},
                           geometry=geoms, crs=4326)
    path = map_dir / "broken.gpkg"
    gdf.to_file(path, engine="pyogrio")
    result = read_layer(path, "parcels")
    s = result.summary
    assert (s.read, s.kept, s.repaired, s.dropped, s.empty) == (5, 2, 1, 1, 2)
    repaired = next(r for r in result.records if r.code == "01A002")
    assert repaired.geom.is_valid and repaired.geom.geom_type == "MultiPolygon"
    assert Metric(32648).to_metric(repaired.geom).area == pytest.approx(200, rel=0.01)  # two 100 m² triangles
    assert "repaired 1, dropped 1, empty 2" in "\n".join(s.lines())


def test_duplicate_parcel_codes_are_reported(map_dir: Path) -> None:
    gdf = wgs_parcels()
    gdf.loc[2, "parcel_code"] = "03I001"
    result = read_layer(write(gdf, map_dir / "dups.gpkg", 32648), "parcels")
    assert result.summary.kept == 3
    assert result.summary.duplicate_count == 1 and result.summary.duplicate_examples == ("03I001",)
    assert any("duplicate codes: 1 (e.g. 03I001)" in line for line in result.summary.lines())


def test_field_mapping_and_composed_codes(map_dir: Path) -> None:
    gdf = wgs_parcels().rename(columns={"parcel_code": "PCODE", "land_type": "LTYPE"})
    path = write(gdf, map_dir / "renamed.gpkg", 32648)
    mapped = read_layer(path, "parcels", fields=parse_field_map(["parcel_code=PCODE", "land_type=ltype"]))
    assert [r.code for r in mapped.records] == ["03I001", "03I002", "03I003"]
    assert mapped.records[1].kind == "ส.ป.ก. 4-01"
    # without the mapping the code is composed from zone + block + lot, as LTAX defines it
    composed = read_layer(path, "parcels")
    assert [r.code for r in composed.records] == ["03I001", "03I002", "03I003"]
    assert composed.records[0].kind is None and composed.records[0].props["LTYPE"] == "โฉนดที่ดิน"
    with pytest.raises(MapImportError, match="no column 'NOPE'"):
        read_layer(path, "parcels", fields={"parcel_code": "NOPE"})
    with pytest.raises(MapImportError, match="OURS=THEIRS"):
        parse_field_map(["parcel_code"])


def test_thai_shapefile_in_tis620_needs_its_encoding(map_dir: Path) -> None:
    gdf = gpd.GeoDataFrame({"building_c": ["03I001-B001"], "use": ["ยุ้งข้าว"]},
                           geometry=[to_wgs(box(5, 5, 15, 15))], crs=4326)
    path = write(gdf, map_dir / "old.shp", 32648, encoding="cp874")
    path.with_suffix(".cpg").unlink(missing_ok=True)
    result = read_layer(path, "buildings", encoding="cp874")
    rec = result.records[0]
    assert rec.code == "03I001-B001" and rec.kind == "ยุ้งข้าว"
    assert rec.props["parcel_code"] == "03I001"  # derived from the building code


def test_routes_and_landmarks(map_dir: Path) -> None:
    routes = gpd.GeoDataFrame({"route_id": ["R1"], "name": ["ทางเดินไปวัด"], "name_en": ["Path to the temple"],
                               "kind": ["footpath"], "width": [1.5]},
                              geometry=[to_wgs(LineString([(0, 0), (100, 0), (100, 80)]))], crs=4326)
    r = read_layer(write(routes, map_dir / "routes.geojson", 4326), "routes").records[0]
    assert (r.code, r.name_th, r.name_en, r.kind, r.props["width"]) == ("R1", "ทางเดินไปวัด", "Path to the temple",
                                                                       "footpath", 1.5)
    assert Metric(32648).to_metric(r.geom).length == pytest.approx(180, abs=0.5)
    marks = gpd.GeoDataFrame({"name_th": ["วัดศรีชมภู", "ตลาด"], "name_en": ["Wat Si Chomphu", "Market"]},
                             geometry=[to_wgs(Point(10, 10)), to_wgs(box(0, 0, 50, 50))], crs=4326)
    res = read_layer(write(marks, map_dir / "marks.gpkg", 32648), "landmarks")
    assert res.summary.converted == 1 and res.summary.kept == 2 and res.summary.without_code == 2
    assert all(x.geom.geom_type == "Point" for x in res.records)


def test_multi_layer_files_name_their_layer(map_dir: Path) -> None:
    path = map_dir / "two.gpkg"
    wgs_parcels().to_file(path, layer="tax_parcels", engine="pyogrio")
    wgs_parcels().to_file(path, layer="other", engine="pyogrio")
    with pytest.raises(MapImportError, match="several layers"):
        read_layer(path, "parcels")
    assert read_layer(path, "parcels", source_layer="tax_parcels").summary.kept == 3


def test_transform_is_vectorised_and_reversible() -> None:
    pts = [to_wgs(Point(x, x)) for x in np.linspace(0, 5000, 50)]
    back = transform_geoms(transform_geoms(pts, 4326, 24048), 24048, 4326)
    assert max(shapely.distance(Metric(32648).many_to_metric(pts), Metric(32648).many_to_metric(back))) < 0.01
