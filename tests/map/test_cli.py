"""`chumphae map ...` end to end: a real file, the settings' database, the printed summary."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
from shapely.geometry import box
from typer.testing import CliRunner

from chumphae.cli import app
from chumphae.map.importer import MapImportError
from tests.map.conftest import to_wgs

runner = CliRunner()


def parcels_file(path: Path, *, with_crs: bool = True) -> Path:
    gdf = gpd.GeoDataFrame({"PCODE": ["05B010", "05B011", "05B011"], "land_type": ["โฉนดที่ดิน"] * 3},
                           geometry=[to_wgs(box(0, 0, 30, 30)), to_wgs(box(30, 0, 60, 30)),
                                     to_wgs(box(60, 0, 90, 30))], crs=4326).to_crs(32648)
    gdf.to_file(path, engine="pyogrio")
    if not with_crs:
        path.with_suffix(".prj").unlink()
    return path


def test_import_then_info_then_where(tmp_path: Path) -> None:
    path = parcels_file(tmp_path / "tessaban_parcels.shp")
    result = runner.invoke(app, ["map", "import", str(path), "--layer", "parcels", "--field", "parcel_code=PCODE"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "features read 3, kept 3, repaired 0, dropped 0, empty 0" in out
    assert "duplicate codes: 1 (e.g. 05B011)" in out
    assert "bounding box (WGS 84): 102.09" in out and "stored 3 features" in out
    info = runner.invoke(app, ["map", "info"])
    assert info.exit_code == 0 and "tessaban_parcels" in info.output and "+07:00" in info.output
    where = runner.invoke(app, ["map", "where", "16.541", "102.09"])
    assert where.exit_code == 0, where.output
    assert "outside the loaded map" not in where.output


def test_where_says_when_a_point_is_off_the_loaded_map(tmp_path: Path) -> None:
    """A point 300 km away was described only as "300 km south-west of <a landmark>", as if the map reached it."""
    path = parcels_file(tmp_path / "tessaban_parcels.shp")
    assert runner.invoke(app, ["map", "import", str(path), "--layer", "parcels",
                               "--field", "parcel_code=PCODE"]).exit_code == 0
    far = runner.invoke(app, ["map", "where", "13.75", "100.5"])  # Bangkok
    assert far.exit_code == 0, far.output
    lines = far.output.splitlines()
    assert lines[-1].startswith("this point is outside the loaded map, ") and lines[-1].endswith(" km beyond its edge")
    assert 300 < float(lines[-1].split(", ")[1].split(" km")[0]) < 500
    assert lines[-2].startswith("จุดนี้อยู่นอกแผนที่ที่โหลดไว้")


def test_import_without_crs_is_refused(tmp_path: Path) -> None:
    path = parcels_file(tmp_path / "nocrs.shp", with_crs=False)
    result = runner.invoke(app, ["map", "import", str(path), "--layer", "parcels"])
    assert result.exit_code != 0 and isinstance(result.exception, MapImportError)
    assert "24048" in str(result.exception) and "--epsg" in str(result.exception)
    ok = runner.invoke(app, ["map", "import", str(path), "--layer", "parcels", "--epsg", "32648", "--dry-run"])
    assert ok.exit_code == 0 and "dry run: nothing stored" in ok.output
    assert "no map loaded" in runner.invoke(app, ["map", "info"]).output
