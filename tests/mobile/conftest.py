"""The volunteers' app tests: the small world plus a tiny tax map stored in its database.

Map, in metres east/north of a local origin in UTM 48N inside Chumphae:
    home parcel 01A001: x 0..40, y 0..40 (house 01A001-B001: x 10..20, y 10..20)
    temple grounds 01A002: x −30..30, y 170..230; temple LM1 at (0, 200)
    route R1: (40, 20) → (240, 20); route R2: (0, 300) → (100, 300)
"""

from __future__ import annotations

import pytest
from shapely.affinity import translate
from shapely.geometry import LineString, Point, box
from shapely.geometry.base import BaseGeometry
from sqlmodel import Session

from chumphae.map.crs import Metric
from chumphae.map.importer import FeatureRecord
from chumphae.map.store import save_records
from chumphae.models import Patient
from tests.conftest import World
from tests.factories import make_band

UTM48 = Metric(32648)
X0, Y0 = 190000.0, 1831000.0
BAND = "C0:CA:FE:00:00:01"


def lonlat(x: float, y: float) -> tuple[float, float]:
    lon, lat = UTM48.lonlat(X0 + x, Y0 + y)
    return float(lon), float(lat)


def _rec(layer: str, code: str, geom: BaseGeometry, **kw: str) -> FeatureRecord:
    return FeatureRecord(layer=layer, code=code, name_th=kw.get("name_th"), name_en=kw.get("name_en"),
                         kind=kw.get("kind"), props={}, geom=UTM48.to_wgs84(translate(geom, X0, Y0)))


TINY_MAP = [
    _rec("parcels", "01A001", box(0, 0, 40, 40), kind="โฉนดที่ดิน"),
    _rec("parcels", "01A002", box(-30, 170, 30, 230), kind="โฉนดที่ดิน"),
    _rec("buildings", "01A001-B001", box(10, 10, 20, 20), kind="บ้านพักอาศัย"),
    _rec("routes", "R1", LineString([(40, 20), (240, 20)]), kind="footpath", name_th="ทางเดิน", name_en="Footpath"),
    _rec("routes", "R2", LineString([(0, 300), (100, 300)]), kind="road"),
    _rec("landmarks", "LM1", Point(0, 200), name_th="วัดทดสอบ", name_en="Wat Thotsop", kind="temple"),
]


@pytest.fixture
def mapped(world: World) -> World:
    """The world with the tiny map; the own patient lives on parcel 01A001 and wears band C0:CA:FE:00:00:01."""
    with Session(world.engine) as s:
        save_records(s, TINY_MAP, "test-tiny")
        p = s.get(Patient, world.own_patient)
        assert p is not None
        p.home_parcel_code, p.home_building_code = "01A001", "01A001-B001"
        p.home_lon, p.home_lat = lonlat(15, 15)
        s.add(p)
        make_band(s, patient_id=world.own_patient, address=BAND)
        s.commit()
    return world
