"""outside27: the night rule's hours a volunteer sets on a zone (`PUT …/zone` `night`) are the hours the
patient's gateway keeps. They had stayed in the zone's spec only: the site configuration carried no
schedule, so every gateway judged night 20:00–06:00 (the threshold defaults) whatever the rule said."""

from __future__ import annotations

from datetime import datetime

from fastapi.testclient import TestClient
from sqlmodel import Session

from chumphae.timeutil import BANGKOK
from chumphae.values import Position, ZoneStatus
from gateway import siteconfig
from gateway.service import default_steps
from tests.conftest import World
from tests.mobile.conftest import BAND, lonlat


def test_the_zones_night_hours_reach_the_gateway(client: TestClient, mapped: World) -> None:
    from chumphae.auth.service import create_gateway

    with Session(mapped.engine) as s:
        _, token = create_gateway(s, slug="gw-tiny", name="gw tiny", site="chumphae")
        s.commit()
    url = f"/api/v1/patients/{mapped.own_patient}/zone"
    r = client.put(url, json={"route_codes": ["R1"], "night": {"start": "17:30", "end": "21:00"}},
                   headers=mapped.auth("volunteer"))
    assert r.status_code == 200, r.text
    gw = {"Authorization": f"Bearer {token}"}
    doc = client.get("/api/v1/gateway/config", headers=gw).json()
    [patient] = [p for p in doc["patients"] if p["id"] == mapped.own_patient]
    assert patient["thresholds"] == {"night_start": "17:30", "night_end": "21:00"}

    # The gateway's matcher: 60 m along route R1 (day zone), outside the home-only night zone.
    lon, lat = lonlat(100, 20)
    matcher, _ = default_steps(siteconfig.parse(doc))
    for hh, mm, status, schedule in ((18, 0, ZoneStatus.OUTSIDE, "night"), (21, 30, ZoneStatus.INSIDE, "day"),
                                     (17, 0, ZoneStatus.INSIDE, "day")):
        t = datetime(2026, 12, 3, hh, mm, tzinfo=BANGKOK)
        m = matcher(Position(BAND, t, lat, lon, 1.0), mapped.own_patient)
        assert m is not None and (m.status, m.schedule) == (status, schedule), (hh, mm)

    # No night rule: nothing added; the patient's own overrides go as they were.
    client.put(url, json={"night": None}, headers=mapped.auth("volunteer"))
    doc = client.get("/api/v1/gateway/config", headers=gw).json()
    assert [p["thresholds"] for p in doc["patients"] if p["id"] == mapped.own_patient] == [{}]
