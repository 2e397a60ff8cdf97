"""Safe zones (assign routes/places → new version; GeoJSON with ETag), map layers, and search mode."""

from __future__ import annotations

import math
from datetime import datetime, time, timedelta

from fastapi.testclient import TestClient
from sqlmodel import Session, select

from chumphae.map.store import save_records
from chumphae.models import FeedEvent, PositionRecord, SafeZone
from chumphae.timeutil import BANGKOK, utcnow
from tests.conftest import World
from tests.mobile.conftest import TINY_MAP, UTM48, X0, Y0, lonlat


def test_a_route_two_patients_walk_reaches_the_gateway_as_each_ones_route(client: TestClient, mapped: World) -> None:
    """Two patients of one site whose zones both take route R1: the site configuration lists R1 for each
    (the gateway's simulator and locator look routes up by patient)."""
    from chumphae.auth.service import create_gateway
    from tests.factories import make_band

    with Session(mapped.engine) as s:
        make_band(s, patient_id=mapped.other_patient, address="C0:CA:FE:00:00:02")
        _, token = create_gateway(s, slug="gw-tiny", name="gw tiny", site="chumphae")
        s.commit()
    for patient, user in ((mapped.own_patient, "volunteer"), (mapped.other_patient, "volunteer2")):
        r = client.put(f"/api/v1/patients/{patient}/zone", json={"route_codes": ["R1"]}, headers=mapped.auth(user))
        assert r.status_code == 200, r.text
    doc = client.get("/api/v1/gateway/config", headers={"Authorization": f"Bearer {token}"}).json()
    assert sorted((r["patient_id"], r["code"]) for r in doc["routes"]) == sorted(
        [(mapped.own_patient, "R1"), (mapped.other_patient, "R1")])
    assert doc["routes"][0]["geometry"] == doc["routes"][1]["geometry"]


def test_assign_routes_and_places_versions_the_zone(client: TestClient, mapped: World) -> None:
    url = f"/api/v1/patients/{mapped.own_patient}/zone"
    h = mapped.auth("volunteer")
    empty = client.get(url, headers=h)
    assert empty.status_code == 200 and empty.json()["features"] == [] and empty.json()["version"] is None

    r = client.put(url, json={"route_codes": ["R1"]}, headers=h)
    assert r.status_code == 200, r.text
    assert (r.json()["version"], r.json()["spec"]["route_codes"]) == (1, ["R1"])
    r = client.put(url, json={"place_codes": ["LM1"]}, headers=h)  # routes kept
    assert (r.json()["version"], r.json()["spec"]["route_codes"], r.json()["spec"]["place_codes"]) == (2, ["R1"], ["LM1"])
    assert r.json()["warnings"]  # the temple grounds are not joined to the home: said so

    zone = client.get(url, headers=h)
    assert zone.status_code == 200 and zone.headers["content-type"] == "application/geo+json"
    kinds = [f["properties"]["kind"] for f in zone.json()["features"]]
    assert kinds == ["zone_day", "zone_night", "route"]
    assert zone.json()["features"][2]["properties"]["code"] == "R1"
    assert "home_point" not in zone.json()["spec"]
    with Session(mapped.engine) as s:
        rows = s.exec(select(SafeZone).where(SafeZone.patient_id == mapped.own_patient)).all()
    assert sorted((z.version, z.active, z.created_by) for z in rows) == [
        (1, False, mapped.users["volunteer"]), (2, True, mapped.users["volunteer"])]

    etag, modified = zone.headers["etag"], zone.headers["last-modified"]
    assert client.get(url, headers={**h, "If-None-Match": etag}).status_code == 304
    assert client.get(url, headers={**h, "If-Modified-Since": modified}).status_code == 304
    client.put(url, json={"night": None}, headers=h)
    again = client.get(url, headers={**h, "If-None-Match": etag})
    assert again.status_code == 200 and again.headers["etag"] != etag
    assert [f["properties"]["kind"] for f in again.json()["features"]] == ["zone_day", "route"]

    bad = client.put(url, json={"route_codes": ["R9"]}, headers={**h, "Accept-Language": "en"})
    assert bad.status_code == 422
    assert bad.json()["code"] == "zone_build" and "R9" in bad.json()["detail"]
    assert client.put(url, json={"route_codes": ["R1"]}, headers=mapped.auth("caregiver")).status_code == 403


def test_map_around_a_point_with_etag(client: TestClient, mapped: World) -> None:
    lon, lat = lonlat(0, 200)
    h = mapped.auth("volunteer")
    r = client.get("/api/v1/map/landmarks", params={"lat": lat, "lon": lon, "radius_m": 50}, headers=h)
    assert r.status_code == 200
    assert [f["id"] for f in r.json()["features"]] == ["LM1"]
    near_home = client.get("/api/v1/map/parcels", params={"lat": lat, "lon": lon, "radius_m": 100}, headers=h).json()
    assert [f["id"] for f in near_home["features"]] == ["01A002"]  # the home parcel is 130 m away
    wide = client.get("/api/v1/map/parcels", params={"lat": lat, "lon": lon, "radius_m": 400}, headers=h).json()
    assert sorted(f["id"] for f in wide["features"]) == ["01A001", "01A002"]

    etag = r.headers["etag"]
    params = {"lat": lat, "lon": lon, "radius_m": 50}
    assert client.get("/api/v1/map/landmarks", params=params, headers={**h, "If-None-Match": etag}).status_code == 304
    assert client.get("/api/v1/map/landmarks", params=params,
                      headers={**h, "If-Modified-Since": r.headers["last-modified"]}).status_code == 304
    with Session(mapped.engine) as s:  # a re-import changes the map: the old copy is stale
        save_records(s, TINY_MAP[-1:], "test-tiny-2")
        s.commit()
    assert client.get("/api/v1/map/landmarks", params=params, headers={**h, "If-None-Match": etag}).status_code == 200

    assert client.get("/api/v1/map/landmarks", headers=h).status_code == 422
    assert client.get("/api/v1/map/landmarks", params={"bbox": "1,2,3"}, headers=h).status_code == 422
    assert client.get("/api/v1/map/rivers", params={"bbox": "102,16,103,17"}, headers=h).status_code == 404


def _rssi(d: float) -> int:
    return round(-59 - 27 * math.log10(d))  # the phone's default log-distance model


def _sightings(band_xy: tuple[float, float], spots: list[tuple[float, float]], start: datetime) -> list[dict]:
    out = []
    for k, (x, y) in enumerate(spots):
        lon, lat = lonlat(x, y)
        d = math.dist(band_xy, (x, y))
        for j in range(3):
            out.append({"t": (start + timedelta(seconds=4 * k + j)).isoformat(), "lat": lat, "lon": lon,
                        "accuracy_m": 5, "rssi": _rssi(d) + (j - 1)})
    return out


def test_search_sightings_become_matched_positions_on_the_feed(client: TestClient, mapped: World) -> None:
    h = mapped.auth("volunteer")
    client.put(f"/api/v1/patients/{mapped.own_patient}/zone", json={"route_codes": ["R1"]}, headers=h)
    # Yesterday 10:00 in Chumphae: the day zone (home + route R1) is in force.
    day = datetime.combine((utcnow().astimezone(BANGKOK) - timedelta(days=1)).date(), time(10), tzinfo=BANGKOK)
    on_route = (140.0, 20.0)
    body = {"address": "c0:ca:fe:00:00:01",
            "sightings": _sightings(on_route, [(120, -5), (165, 0), (140, 50)], day)}
    r = client.post(f"/api/v1/patients/{mapped.own_patient}/search/sightings", json=body, headers=h)
    assert r.status_code == 201, r.text
    [pos] = r.json()["positions"]
    x, y = UTM48.xy(pos["lon"], pos["lat"])
    err = math.dist((float(x) - X0, float(y) - Y0), on_route)
    assert err < pos["uncertainty_m"], (err, pos)
    assert pos["source"] == "search" and pos["zone_version"] == 1
    assert pos["zone_status"] in ("inside", "uncertain")
    assert "Wat Thotsop" in pos["description_en"]

    # A minute later the band is heard 120 m north of the route, far outside the zone: a second position.
    later = day + timedelta(minutes=5)
    body = {"sightings": _sightings((140, 140), [(120, 120), (165, 125), (140, 170)], later)}
    r = client.post(f"/api/v1/patients/{mapped.own_patient}/search/sightings", json=body, headers=h)
    [far] = r.json()["positions"]
    assert far["zone_status"] == "outside"

    with Session(mapped.engine) as s:
        stored = s.exec(select(PositionRecord).order_by(PositionRecord.t)).all()
        feed = s.exec(select(FeedEvent).where(FeedEvent.kind == "position")).all()
    assert [(p.source, p.zone_status) for p in stored][1] == ("search", "outside")
    assert len(feed) == 2 and feed[-1].payload["position"]["zone_status"] == "outside"
    listed = client.get(f"/api/v1/patients/{mapped.own_patient}/positions", params={"source": "search"},
                        headers=mapped.auth("caregiver")).json()
    assert listed["total"] == 2


def test_search_refuses_another_band(client: TestClient, mapped: World) -> None:
    lon, lat = lonlat(0, 0)
    body = {"address": "C0:CA:FE:99:99:99",
            "sightings": [{"t": utcnow().isoformat(), "lat": lat, "lon": lon, "accuracy_m": 5, "rssi": -70}]}
    r = client.post(f"/api/v1/patients/{mapped.own_patient}/search/sightings", json=body,
                    headers={**mapped.auth("caregiver"), "Accept-Language": "en"})
    assert r.status_code == 409 and r.json()["code"] == "band_mismatch"
