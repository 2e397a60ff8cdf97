"""fix19 (issue 13): a decimal in a query string (`lat`, `lon`, `radius_m`, the four numbers of `bbox`) is ASCII
digits with an optional `-`, one `.` and an exponent, nothing else, as fix18 made every integer.

pydantic's lax float and Python's `float()` had read `1_6.54` as 16.54, ` 16.54` and `16.54 ` as 16.54, `١٦` as
16 and `+16.54`, and a bbox `inf`: a mistyped map request answered for another place. Now each is the documented
422 `validation` problem, checked at one place (`chumphae.numtext.ascii_decimal`).
"""

from __future__ import annotations

import typing
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from tests.conftest import World
from tests.mobile.test_strict_query_ints_fix18 import params_without

GOOD = {"lat": "16.5446", "lon": "102.0991", "radius_m": "300"}
BAD = ["1_6.5446", "+16.5446", " 16.5446", "16.5446 ", "١٦.5", "１６.5", "16.5\n", "16,5", "0x10", "1e", "--1",
       "", "nan", "inf"]


def _url(**over: str) -> str:
    q = {**GOOD, **over}
    return "/api/v1/map/landmarks?" + "&".join(f"{k}={quote(v, safe='')}" for k, v in q.items())


@pytest.mark.parametrize("value", ["16.5446", "16.5446e0", "0016.5446", ".5e1"])
def test_a_decimal_in_ascii_digits_is_taken(client: TestClient, world: World, value: str) -> None:
    r = client.get(_url(lat=value if value != ".5e1" else "16.5446", radius_m="300" if value != ".5e1" else value),
                   headers=world.auth("caregiver"))
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("value", BAD, ids=repr)
@pytest.mark.parametrize("name", ["lat", "lon", "radius_m"])
def test_anything_else_is_a_422_validation_problem(client: TestClient, world: World, name: str, value: str) -> None:
    r = client.get(_url(**{name: value}), headers=world.auth("caregiver"))
    assert r.status_code == 422, (name, value, r.status_code, r.text)
    body = r.json()
    assert body["code"] == "validation" and body["errors"], body


@pytest.mark.parametrize("value", ["1_02.0", "١٠٢.0", " 102.0", "+102.0", "inf", "nan"], ids=repr)
def test_a_bbox_number_follows_the_same_rule(client: TestClient, world: World, value: str) -> None:
    ok = client.get("/api/v1/map/landmarks?bbox=102.0,16.4,102.2,16.6", headers=world.auth("caregiver"))
    assert ok.status_code == 200, ok.text
    r = client.get(f"/api/v1/map/landmarks?bbox={quote(value, safe='')},16.4,102.2,16.6",
                   headers=world.auth("caregiver"))
    assert r.status_code == 422, (value, r.text)
    assert r.json()["code"] == "validation"


def test_every_decimal_path_or_query_parameter_takes_ascii_digits_only(client: TestClient) -> None:
    """A route added later with a plain `float` parameter fails here."""
    from chumphae.api.schemas import AsciiDecimal  # before fix19 it did not exist (this test fails, not the file)

    checked, plain = params_without(typing.cast(typing.Any, client.app), float, AsciiDecimal)
    assert checked >= 3 and not plain, (checked, plain)
