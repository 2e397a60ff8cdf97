"""GET /api/v1/gateway/config: the gateway's own site only, ETag and 304, user tokens refused; the configuration
version the gateway sockets read instead of building the configuration."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import shapely
from fastapi.testclient import TestClient
from sqlalchemy import delete
from sqlalchemy.engine import Engine
from sqlmodel import Session

from chumphae.ingest import siteconfig
from chumphae.ingest.envelope import Message, parse
from chumphae.ingest.service import IngestState, store
from chumphae.models import Gateway, MapFeature, Patient, SafeZone, Wristband
from tests.factories import make_band
from tests.ingest.conftest import BAND, FOREIGN_BAND, Site
from tests.ingest.test_gateway_socket import frame, position


def test_site_config_with_etag(client: TestClient, site: Site) -> None:
    r = client.get("/api/v1/gateway/config", headers=site.auth())
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    doc, tag = r.json(), r.headers["etag"]
    assert (doc["site_id"], doc["gateway_id"]) == ("ban-nong-phai", "gw-nong-phai-1")
    assert [b["address"] for b in doc["bands"]] == [BAND]  # not the other site's band
    assert doc["bands"][0]["key_hex"] and doc["bands"][0]["patient_id"] == site.world.own_patient
    assert doc["patients"] == [{"id": site.world.own_patient, "code": f"P-{site.world.own_patient:03d}",
                                "ltc_group": 2, "adl_score": 9, "thresholds": {},
                                    "home": {"lat": 16.5442, "lon": 102.0997}}]
    assert "ผู้ป่วยหนึ่ง" not in r.text and "1409900000011" not in r.text  # no names, no CID
    assert doc["receivers"][0]["id"] == "rx-rph" and doc["extent"]["min_lat"] < 16.5442
    assert client.get("/api/v1/gateway/config", headers={**site.auth(), "If-None-Match": tag}).status_code == 304
    other = client.get("/api/v1/gateway/config", headers=site.auth(site.other_token)).json()
    assert [b["address"] for b in other["bands"]] == [FOREIGN_BAND]
    with Session(site.world.engine) as s:
        band = s.get(Wristband, site.band_id)
        assert band is not None
        band.key_hex = "ffeeddccbbaa99887766554433221100"
        s.add(band)
        s.commit()
    r = client.get("/api/v1/gateway/config", headers={**site.auth(), "If-None-Match": tag})
    assert r.status_code == 200 and r.headers["etag"] != tag


def test_user_tokens_are_not_gateway_tokens(client: TestClient, site: Site) -> None:
    for headers in ({}, site.world.auth("admin"), {"Authorization": "Bearer chg_unknown"}):
        r = client.get("/api/v1/gateway/config", headers=headers)
        assert r.status_code == 401 and r.headers["content-type"].startswith("application/problem+json")


def _version(engine: Engine) -> int:
    with engine.connect() as conn:
        v = siteconfig.version(conn)
        assert v is not None
        return v


def _moves(engine: Engine, change: Callable[[Session], object]) -> bool:
    before = _version(engine)
    with Session(engine) as s:
        change(s)
        s.commit()
    return _version(engine) != before


def _set(model: type[Any], row_id: int, **values: Any) -> Callable[[Session], None]:
    def change(s: Session) -> None:
        row = s.get(model, row_id)
        assert row is not None
        for k, v in values.items():
            setattr(row, k, v)
        s.add(row)
    return change


def test_the_configuration_version_moves_with_what_the_configuration_is_built_from(both_site: Site) -> None:
    """Every change a gateway's site configuration reads moves the version (the sockets then build it); the
    ingest's own writes (bands seen, batteries, the gateway's heartbeat and health) do not."""
    site, engine = both_site, both_site.world.engine
    pid = site.world.own_patient
    assert _moves(engine, lambda s: make_band(s, patient_id=pid, address="C0:FF:EE:00:00:07", site="ban-nong-phai"))
    assert _moves(engine, _set(Wristband, site.band_id, key_hex="ffeeddccbbaa99887766554433221100"))
    assert _moves(engine, _set(Wristband, site.band_id, patient_id=site.world.other_patient))
    assert _moves(engine, _set(Patient, pid, home_lat=16.55))
    assert _moves(engine, _set(Patient, pid, thresholds={"wander_dwell_s": 90}))
    assert _moves(engine, _set(Patient, pid, adl_score=5))
    assert _moves(engine, _set(Gateway, site.gateway_id, receivers=[{"id": "rx-2", "lat": 16.5, "lon": 102.1}]))
    assert _moves(engine, _set(Gateway, site.gateway_id, active=False))
    assert _moves(engine, lambda s: s.add(SafeZone(patient_id=pid, version=2, day_wkb=shapely.to_wkb(
        shapely.box(102.09, 16.54, 102.1, 16.55)))))
    feature = MapFeature(layer="routes", code="R-9", geom_wkb=shapely.to_wkb(shapely.LineString([(0, 0), (1, 1)])),
                         minx=0, miny=0, maxx=1, maxy=1, dataset="test")
    assert _moves(engine, lambda s: s.add(feature))
    assert _moves(engine, lambda s: s.execute(delete(MapFeature)))
    # what the ingest writes with every batch does not move it
    assert not _moves(engine, _set(Patient, pid, notes="โทรหาลูกสาว"))
    assert not _moves(engine, _set(Gateway, site.gateway_id, last_heartbeat_at=datetime.now(UTC), health={"up": 1}))
    assert not _moves(engine, _set(Wristband, site.band_id, battery_pct=50.0, worn=True, last_seen_at=datetime.now(UTC)))
    now = datetime.now(UTC)
    state = IngestState(site.gateway_id)
    for batch in range(3):  # the general path, then (PostgreSQL) the one-statement batch of positions
        messages = [parse(frame("position", position(now - timedelta(seconds=30 - batch)))[1], now=now),
                    parse(frame("reading", {"address": BAND, "t": (now - timedelta(seconds=9)).isoformat(),
                                            "battery_pct": 70.0, "worn": True})[1], now=now)]
        messages = [m for m in messages if isinstance(m, Message)]
        before = _version(engine)
        store(engine, gateway_id=site.gateway_id, messages=messages[:1] if batch else messages, state=state)
        assert _version(engine) == before


def test_an_unchanged_configuration_is_not_built_again(both_site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    site, engine = both_site, both_site.world.engine
    with Session(engine) as s:
        known = siteconfig.versioned_etag(s, site.gateway_id)
    builds: list[str] = []
    real = siteconfig._site_part
    monkeypatch.setattr(siteconfig, "_site_part", lambda s, site_: builds.append(site_) or real(s, site_))
    with Session(engine) as s:
        assert siteconfig.versioned_etag(s, site.gateway_id, known) is known
        assert builds == []
        assert siteconfig.versioned_etag(s, site.gateway_id, known, fresh=True) == known  # built, the same
        assert builds == ["ban-nong-phai"]
    with Session(engine) as s:
        make_band(s, patient_id=site.world.own_patient, address="C0:FF:EE:00:00:08", site="ban-nong-phai")
        s.commit()
    with Session(engine) as s:
        moved = siteconfig.versioned_etag(s, site.gateway_id, known)
    assert moved[0] != known[0] and moved[1] != known[1]
