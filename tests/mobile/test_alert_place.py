"""An alert whose gateway only words the zone ("outside the safe zone", no parcel, building or landmark) is
stored with the place named from the backend's own tax map, so the feed, the page and LINE/SMS messages
say where the patient was last seen."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlmodel import Session, select

from chumphae.ingest.envelope import AlertBody
from chumphae.ingest.service import BandInfo, _alert_input
from chumphae.models import Wristband
from tests.conftest import World
from tests.mobile.conftest import BAND, lonlat


def _body(lon: float, lat: float, place: dict[str, object]) -> AlertBody:
    return AlertBody.model_validate({
        "type": "wander", "severity": "high", "address": BAND, "t": datetime.now(UTC).isoformat(),
        "confidence": 0.9, "lat": lat, "lon": lon, "uncertainty_m": 25.0, "details": {},
        "match": {"status": "outside", "zone_version": 1, "distance_to_boundary_m": 80.0, "place": place}})


def test_zone_words_alone_are_replaced_by_the_tax_map_place(mapped: World) -> None:
    lon, lat = lonlat(60, 200)  # 60 m east of the test temple
    with Session(mapped.engine) as s:
        band = s.exec(select(Wristband).where(Wristband.address == BAND)).one()
        assert band.id is not None
        bands = {BAND: BandInfo(id=band.id, address=BAND, patient_id=mapped.own_patient, site=band.site,
                                active=True, worn=True, battery_pct=80.0)}
        zone_only = {"parcel_code": None, "building_code": None, "landmark": None,
                     "description_th": "อยู่นอกเขตปลอดภัย", "description_en": "outside the safe zone"}
        got = _alert_input(s, 1, band.site, _body(lon, lat, zone_only), bands)
        assert got.description_en is not None and "Wat Thotsop" in got.description_en
        assert got.description_th is not None and "วัดทดสอบ" in got.description_th
        named = {**zone_only, "landmark": "LM9", "description_th": "หน้าตลาด", "description_en": "at the market"}
        kept = _alert_input(s, 1, band.site, _body(lon, lat, named), bands)
        assert kept.description_en == "at the market"  # a gateway that named the place is believed
