"""fix18 (issue 13): an integer in a path or a query string is an optional `-` and ASCII digits, nothing else.

`int()` (and a lax pydantic int) had read `1_0` as 10 (`/patients/1_0` answered for patient 10), `+1`, ` 1`
and `1.0` as 1, and digits of other scripts (`１`, `٣`) as theirs; the feed's `?cursor=` took `٣` as 3 and
ended the upgrade in a ValueError on `²`. Now each is the documented 422 `validation` problem (the feed: no
cursor), checked at one place (`schemas.AsciiInt`), which every route's integer parameter ends with.
"""

from __future__ import annotations

import typing
from pathlib import Path
from urllib.parse import quote

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from websockets.asyncio.client import connect

from tests.conftest import World
from tests.feed.conftest import raise_alert, server  # noqa: F401  (fixture)
from tests.feed.liveserver import LiveServer, recv_json

ROOT = Path(__file__).resolve().parents[2]

# Each is read as an integer by int() (all but `0x1`, `²` and empty) or by a lax pydantic int.
BAD = ["1_0", "+1", " 1", "1 ", "1.0", "0x1", "１", "٣", "²", "1\n", "--1", "-", ""]

# (who, url with {v} where the integer goes); one per integer type and route family.
ROUTES = [
    ("admin", "/api/v1/patients/{v}"),  # PatientId (path)
    ("caregiver", "/api/v1/patients/{v}/status"),
    ("admin", "/api/v1/alerts/{v}"),  # AlertId (path)
    ("admin", "/api/v1/patients?offset={v}"),  # Offset
    ("admin", "/api/v1/patients?limit={v}"),  # a route's own limit
    ("caregiver", "/api/v1/alerts?patient_id={v}"),  # OptionalPatientQuery
    ("caregiver", "/api/v1/alerts?limit={v}"),
    ("care_manager", "/api/v1/district/overview?volunteer={v}"),  # OptionalUserQuery
    ("care_manager", "/api/v1/district/overview?limit={v}"),
    ("caregiver", "/api/v1/map/parcels?bbox=102.0,16.4,102.2,16.6&limit={v}"),
    ("volunteer", "/api/v1/patients/{own}/visits?limit={v}"),
    ("volunteer", "/api/v1/patients/{own}/bands?offset={v}"),
    ("caregiver", "/api/v1/patients/{own}/positions?offset={v}"),
    ("volunteer", "/api/v1/mobile/patients?limit={v}"),
]


def _url(template: str, value: str, world: World) -> str:
    return template.format(v=quote(value, safe=""), own=world.own_patient)


@pytest.mark.parametrize(("who", "template"), ROUTES)
def test_a_route_takes_its_integer_in_ascii_digits(client: TestClient, world: World, who: str,
                                                   template: str) -> None:
    good = "1"
    if template.startswith("/api/v1/patients/{v}"):
        good = str(world.own_patient)
    elif template.startswith("/api/v1/alerts/{v}"):
        good = str(raise_alert(world.engine, world.own_patient, "sos").alert_id)
    for value in (good, "0" + good):  # leading zeros are still ASCII digits
        r = client.get(_url(template, value, world), headers=world.auth(who))
        assert r.status_code == 200, r.text  # the check is real: the same route answers a plain integer


@pytest.mark.parametrize("value", BAD, ids=[repr(v) for v in BAD])
@pytest.mark.parametrize(("who", "template"), ROUTES)
def test_anything_else_is_a_422_validation_problem(client: TestClient, world: World, who: str, template: str,
                                                   value: str) -> None:
    if value == "" and "?" not in template:
        pytest.skip("an empty path segment is another route (or none)")
    url = _url(template, value, world)
    r = client.get(url, headers=world.auth(who))
    assert r.status_code == 422, (url, r.status_code, r.text)
    body = r.json()
    assert body["code"] == "validation" and body["errors"], body


def test_patient_1_0_is_not_patient_10(client: TestClient, world: World) -> None:
    digits = str(world.own_patient)
    spelled = f"{digits[:-1]}_{digits[-1]}" if len(digits) > 1 else f"0_{digits}"  # int() reads it as the id
    r = client.get(f"/api/v1/patients/{spelled}", headers=world.auth("admin"))
    assert r.status_code == 422, r.text  # had answered for the patient whose id it spells without the `_`


def test_every_integer_path_or_query_parameter_takes_ascii_digits_only(client: TestClient) -> None:
    """A route added later with a plain `int` parameter fails here (the rule lives at one place)."""
    from chumphae.api.schemas import AsciiInt  # here: before fix18 it did not exist (this test fails, not the file)

    checked, plain = params_without(typing.cast(typing.Any, client.app), int, AsciiInt)
    assert checked >= 35 and not plain, (checked, plain)  # 37 at fix18


def test_the_openapi_bounds_are_still_minimum_and_maximum(client: TestClient) -> None:
    """The validator sits after each Path / Query: before them, pydantic writes the bounds as `ge` / `le`."""
    spec = client.get("/openapi.json").json()
    text = str(spec["paths"])
    assert "'ge':" not in text and "'le':" not in text
    params = {p["name"]: p["schema"] for p in spec["paths"]["/api/v1/alerts"]["get"]["parameters"]}
    assert (params["limit"]["minimum"], params["limit"]["maximum"]) == (1, 500)
    assert params["offset"]["maximum"] == 1_000_000 and params["patient_id"]["anyOf"][0]["maximum"] == 2**31 - 1


def params_without(app: typing.Any, kind: type, ours: object) -> tuple[int, list[str]]:
    """How many path / query parameters of every route are of `kind`, and those whose Annotated lacks `ours`."""
    checked, plain = 0, []
    for route in _api_routes(app.routes):
        stack = [route.dependant]
        while stack:
            dep = stack.pop()
            stack.extend(dep.dependencies)
            for field in [*dep.path_params, *dep.query_params]:
                members = [a for a in typing.get_args(field.field_info.annotation) if a is not type(None)] \
                    or [field.field_info.annotation]
                inner = [typing.get_args(a)[0] if hasattr(a, "__metadata__") else a for a in members]
                if kind not in inner:
                    continue
                checked += 1
                if ours not in field.field_info.metadata and not _union_member_is(ours, field.field_info.annotation):
                    plain.append(f"{route.path} {field.name}")
    return checked, plain


def _api_routes(routes: list[typing.Any]) -> typing.Iterator[APIRoute]:
    """Every APIRoute, also inside included routers (FastAPI ≥ 0.16x keeps them as their own routes)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif (inner := getattr(route, "original_router", None)) is not None:
            yield from _api_routes(inner.routes)


def _union_member_is(ours: object, annotation: object) -> bool:
    return any(ours in getattr(a, "__metadata__", ()) for a in typing.get_args(annotation))


def test_mobile_api_says_so() -> None:
    text = " ".join((ROOT / "docs" / "mobile-api.md").read_text(encoding="utf-8").split())
    assert ("An integer in a path or a query string (an id, `limit`, `offset`, `volunteer`) is ASCII digits "
            "with an optional leading `-`, nothing else:") in text
    feed = " ".join((ROOT / "docs" / "feed-protocol.md").read_text(encoding="utf-8").split())
    assert "ASCII digits only" in feed


@pytest.mark.parametrize("value", ["٣", "²", "1_0", "+1", "１"], ids=repr)
async def test_a_feed_cursor_not_in_ascii_digits_counts_as_none(server: LiveServer, world: World,  # noqa: F811
                                                                value: str) -> None:
    raise_alert(world.engine, world.own_patient, "sos")
    raise_alert(world.engine, world.own_patient, "wander")  # a small cursor such as 1 or 3 could be replayed
    url = f"{server.ws}/ws/alerts?cursor={quote(value, safe='')}"
    async with connect(url, additional_headers=world.auth("caregiver")) as ws:
        welcome = await recv_json(ws)
        assert welcome["type"] == "welcome" and welcome["resumed_from"] is None, welcome
        first = await recv_json(ws)
        assert first["type"] == "snapshot", first  # no `resync`: no cursor was sent, as the protocol says


async def test_a_feed_cursor_in_ascii_digits_still_resumes(server: LiveServer, world: World) -> None:  # noqa: F811
    sos = raise_alert(world.engine, world.own_patient, "sos")
    async with connect(f"{server.ws}/ws/alerts?cursor={sos.cursor - 1}",
                       additional_headers=world.auth("caregiver")) as ws:
        assert (await recv_json(ws))["resumed_from"] == sos.cursor - 1
        frame = await recv_json(ws)
        assert (frame["type"], frame["cursor"]) == ("alert", sos.cursor)
