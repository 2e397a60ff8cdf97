"""GET /api/v1/gateway/config: the gateway's own site only, ETag and 304, user tokens refused."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlmodel import Session

from chumphae.models import Wristband
from tests.ingest.conftest import BAND, FOREIGN_BAND, Site


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
