"""A CID and a HOSPCODE are ASCII digits. Python's and pydantic's `\\d` also take Thai digits (๑๐๗๐๗), and `int()`
reads them: `POST /api/v1/patients` stored `"hospcode": "๑๐๗๐๗"`, and a CID written in Thai digits with a valid
check digit passed `valid_cid`, while the hospital's files, the daily summary and every lookup use ASCII."""

from __future__ import annotations

from fastapi.testclient import TestClient

from chumphae.patients.import43 import _birth, valid_cid
from tests.conftest import World

THAI = str.maketrans("0123456789", "๐๑๒๓๔๕๖๗๘๙")
GOOD_CID = "1234567890121"  # check digit valid (tests/docs/test_outsider_docs11.py)


def test_valid_cid_takes_ascii_digits_only() -> None:
    assert valid_cid(GOOD_CID)
    assert not valid_cid(GOOD_CID.translate(THAI))
    assert _birth("19410309") is not None and _birth("19410309".translate(THAI)) is None


def test_thai_digits_in_cid_or_hospcode_are_refused_over_http(client: TestClient, world: World) -> None:
    for field, value in (("cid", GOOD_CID.translate(THAI)), ("hospcode", "10707".translate(THAI))):
        bad = client.post("/api/v1/patients", json={"name_th": "ทดสอบ", field: value}, headers=world.auth("admin"))
        assert (bad.status_code, bad.json()["code"]) == (422, "validation"), bad.text
        assert bad.json()["errors"][0]["loc"] == ["body", field]
    good = client.post("/api/v1/patients", json={"name_th": "ทดสอบ", "cid": GOOD_CID, "hospcode": "10707"},
                       headers=world.auth("admin"))
    assert good.status_code == 201, good.text
