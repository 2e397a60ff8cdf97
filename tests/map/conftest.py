"""Map fixtures: the committed Chumphae layer set, and a tiny hand-drawn map for hand-computed cases."""

from __future__ import annotations

from pathlib import Path

import pytest
import shapely
from shapely.affinity import translate
from shapely.geometry import LineString, Point, box

from chumphae.map.crs import Metric
from chumphae.map.importer import FeatureRecord
from chumphae.map.layers import MapLayers
from chumphae.map.store import DEFAULT_MAP

# A local origin in UTM 48N inside Chumphae; hand-made features are drawn in metres from it.
UTM48 = Metric(32648)
X0, Y0 = 190000.0, 1831000.0


def lonlat(x: float, y: float) -> tuple[float, float]:
    """Local metres (east, north of the origin) → WGS 84 lon, lat."""
    lon, lat = UTM48.lonlat(X0 + x, Y0 + y)
    return float(lon), float(lat)


def to_wgs(geom: shapely.Geometry) -> shapely.Geometry:
    return UTM48.to_wgs84(translate(geom, X0, Y0))


def rec(layer: str, code: str, geom: shapely.Geometry, **kw: object) -> FeatureRecord:
    return FeatureRecord(layer=layer, code=code, name_th=kw.pop("name_th", None),  # type: ignore[arg-type]
                         name_en=kw.pop("name_en", None), kind=kw.pop("kind", None),  # type: ignore[arg-type]
                         props=dict(kw), geom=to_wgs(geom))


@pytest.fixture(scope="session")
def tiny_layers() -> MapLayers:
    """Home parcel 01A001 = 40 × 40 m square at the origin, its house, a 200 m route east, a temple 200 m north.

        temple grounds 01A002: x −30..30, y 170..230, temple point at (0, 200)
        home 01A001: x 0..40, y 0..40; house 01A001-B001: x 10..20, y 10..20
        route R1: (40, 20) → (240, 20); route R2: (0, 300) → (100, 300)
    """
    return MapLayers.from_records([
        rec("parcels", "01A001", box(0, 0, 40, 40), kind="โฉนดที่ดิน"),
        rec("parcels", "01A002", box(-30, 170, 30, 230), kind="โฉนดที่ดิน"),
        rec("buildings", "01A001-B001", box(10, 10, 20, 20), kind="บ้านพักอาศัย"),
        rec("routes", "R1", LineString([(40, 20), (240, 20)]), kind="footpath", name_th="ทางเดิน"),
        rec("routes", "R2", LineString([(0, 300), (100, 300)]), kind="road"),
        rec("landmarks", "LM1", Point(0, 200), name_th="วัดทดสอบ", name_en="Wat Thotsop", kind="temple"),
    ])


@pytest.fixture(scope="session")
def chumphae_layers() -> MapLayers:
    if not DEFAULT_MAP.exists():
        pytest.fail(f"{DEFAULT_MAP} is missing: run scripts/make_chumphae_map.py")
    return MapLayers.from_file(DEFAULT_MAP)


@pytest.fixture
def map_dir(tmp_path: Path) -> Path:
    d = tmp_path / "maps"
    d.mkdir()
    return d
