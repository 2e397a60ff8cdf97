"""Safe zones from the map: parts, margins, schedules in Bangkok time, versions in the database."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlmodel import Session

from chumphae.map.layers import MapLayers
from chumphae.map.match import Matcher
from chumphae.map.zones import ZoneBuildError, ZoneSpec, build_zone
from chumphae.map.zonestore import active_zone, active_zones, save_zone, spec_for_patient, zone_history
from chumphae.values import Position, ZoneStatus
from tests.factories import make_patient
from tests.map.conftest import lonlat


def test_home_from_the_building_code_with_a_margin(tiny_layers: MapLayers) -> None:
    zone = build_zone(tiny_layers, ZoneSpec(home_building_code="01A001-B001", margin_m=5, night=None))
    # the parcel (found from the building code) grown by 5 m with round corners: 50² − (4 − π)·5²
    assert zone.day.area == pytest.approx(2500 - (4 - 3.14159) * 25, rel=0.002)


def test_day_is_home_routes_and_places_night_is_home(tiny_layers: MapLayers) -> None:
    spec = ZoneSpec(home_parcel_code="01A001", margin_m=0, route_codes=("R1",), tolerance_m=10,
                    place_codes=("LM1",), place_radius_m=20)
    zone = build_zone(tiny_layers, spec)
    assert zone.night is not None and zone.night.area == pytest.approx(1600)
    # home 40 × 40 + path corridor 200 × 20 with a round far end (its near end lies in the parcel)
    # + the temple's grounds (parcel 01A002, 60 × 60 m; the 20 m disc round the temple lies within)
    assert zone.day.area == pytest.approx(1600 + 200 * 20 + 3.14159 * 10 ** 2 / 2 + 3600, rel=0.002)
    assert zone.warnings and "2 separate parts" in zone.warnings[0]
    # 19:59 Bangkok is day, 20:00 night, 05:59 night, 06:00 day
    bkk = lambda h, m: datetime(2026, 3, 1, h, m, tzinfo=UTC).replace(hour=(h - 7) % 24)  # noqa: E731
    assert not zone.is_night(bkk(19, 59)) and zone.is_night(bkk(20, 0))
    assert zone.is_night(bkk(5, 59)) and not zone.is_night(bkk(6, 0))


def test_unknown_codes_are_named(tiny_layers: MapLayers) -> None:
    with pytest.raises(ZoneBuildError, match="no route R9, R8"):
        build_zone(tiny_layers, ZoneSpec(home_parcel_code="01A001", route_codes=("R1", "R9", "R8")))
    with pytest.raises(ZoneBuildError, match="no parcel 99Z999"):
        build_zone(tiny_layers, ZoneSpec(home_parcel_code="99Z999"))
    with pytest.raises(ZoneBuildError, match="needs a home"):
        build_zone(tiny_layers, ZoneSpec())


def test_home_from_a_point_only(tiny_layers: MapLayers) -> None:
    on_parcel = build_zone(tiny_layers, ZoneSpec(home_point=lonlat(5, 5), margin_m=0, night=None))
    assert on_parcel.day.area == pytest.approx(1600)
    nowhere = build_zone(tiny_layers, ZoneSpec(home_point=lonlat(500, 500), margin_m=0, night=None))
    assert nowhere.day.area == pytest.approx(3.14159 * 30 ** 2, rel=0.01)


def test_spec_round_trips_through_json() -> None:
    spec = ZoneSpec(home_parcel_code="03I002", route_codes=("R1", "R2"), place_codes=("LM1",))
    js = spec.to_json()
    assert js["schedules"] == {"night": {"start": "20:00", "end": "06:00", "only": "home"}}
    assert ZoneSpec.from_json(js) == spec
    assert ZoneSpec.from_json(ZoneSpec(home_parcel_code="x", night=None).to_json()).night is None


def test_versions_are_stored_and_the_latest_is_active(session: Session, tiny_layers: MapLayers) -> None:
    patient = make_patient(session, home_parcel_code="01A001", home_building_code="01A001-B001")
    spec = spec_for_patient(patient, margin_m=0, tolerance_m=10)
    assert spec.home_building_code == "01A001-B001" and spec.margin_m == 0
    row1, _ = save_zone(session, patient_id=patient.id, spec=spec, layers=tiny_layers)  # type: ignore[arg-type]
    wider = ZoneSpec.from_json({**spec.to_json(), "route_codes": ["R1"]})
    row2, built = save_zone(session, patient_id=patient.id, spec=wider, layers=tiny_layers)  # type: ignore[arg-type]
    session.commit()
    assert (row1.version, row2.version, built.version) == (1, 2, 2)
    history = zone_history(session, patient.id)  # type: ignore[arg-type]
    assert [(z.version, z.active) for z in history] == [(1, False), (2, True)]
    zone = active_zone(session, patient.id, tiny_layers.metric)  # type: ignore[arg-type]
    assert zone is not None and zone.version == 2 and zone.spec == wider
    assert zone.day.symmetric_difference(built.day).area < 0.01  # stored WGS 84 WKB comes back to the metre
    assert set(active_zones(session)) == {patient.id}
    # a match records the version it was judged against
    lon, lat = lonlat(140, 20)
    m = Matcher(tiny_layers).match(Position("AA", datetime(2026, 3, 1, 5, tzinfo=UTC), lat, lon, 3), zone)
    assert m.status is ZoneStatus.INSIDE and m.zone_version == 2


def test_a_zone_shipped_as_wgs84_matches_like_the_original(tiny_layers: MapLayers) -> None:
    from chumphae.map.zonestore import zone_from_wgs84

    spec = ZoneSpec(home_parcel_code="01A001", margin_m=0, route_codes=("R1",), tolerance_m=10)
    built = build_zone(tiny_layers, spec, version=4)
    m = tiny_layers.metric
    shipped = zone_from_wgs84(m.to_wgs84(built.day), m.to_wgs84(built.night), spec, version=4)  # type: ignore[arg-type]
    matcher = Matcher(tiny_layers)
    for x, y, r in [(140, 20, 5), (140, 36, 5), (20, 43, 5), (250, 20, 1)]:
        lon, lat = lonlat(x, y)
        for t in (datetime(2026, 3, 1, 5, tzinfo=UTC), datetime(2026, 3, 1, 16, tzinfo=UTC)):
            a = matcher.match(Position("AA", t, lat, lon, r), built)
            b = matcher.match(Position("AA", t, lat, lon, r), shipped)
            assert a.status is b.status and a.zone_version == b.zone_version == 4
            assert abs(a.distance_to_boundary_m - b.distance_to_boundary_m) < 0.01  # type: ignore[operator]
