"""The OpenAPI document says exactly what each operation can answer (api27).

Every operation had listed the problem statuses 400-503 whether it could answer them or not (`/healthz` a 401 and
a 429, `GET /api/v1/users` a 404); the gateway rotate's receiver clash was a generic `conflict`; and the time
`pattern` (years 1900-2199) refused times the server takes (`2200-01-01T05:00:00+07:00` is 2199 in UTC). Each
declared status of a sample of operations is reached here over real HTTP, and what a sample does not declare is
checked absent; the patterns are checked against the server's answers both ways.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import jsonschema_rs
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from chumphae.api.app import create_app
from chumphae.auth.limits import FailedAuthLimiter
from chumphae.config import Settings
from chumphae.deliver.linehook import signature
from chumphae.i18n import t
from tests.conftest import World
from tests.factories import make_rotate_clash

PROBLEM = "application/problem+json"
SECRET = "api27-line-secret"
MAX_FAILURES = 3

# (method, path) → the problem statuses it declares: exactly these, none of the others.
EXPECTED: dict[tuple[str, str], set[int]] = {
    ("get", "/healthz"): {500, 503},
    ("get", "/api/v1/me"): {401, 429, 500, 503},
    ("get", "/api/v1/users"): {401, 403, 429, 500, 503},
    ("post", "/api/v1/users"): {400, 401, 403, 422, 429, 500, 503},
    ("get", "/api/v1/alerts"): {401, 403, 404, 422, 429, 500, 503},
    ("post", "/api/v1/gateways/{gateway_id}/rotate"): {401, 403, 404, 409, 422, 429, 500, 503},
    ("post", "/api/v1/line/webhook"): {400, 401, 500, 503},
    ("get", "/api/v1/gateway/config"): {401, 429, 500, 503},
}
PROBLEM_STATUSES = {400, 401, 403, 404, 409, 413, 422, 429, 500, 503}


@pytest.fixture
def app_client(world: World) -> Iterator[TestClient]:
    """The app with a LINE channel secret (the webhook's 400 needs a signed body) and a lock-out after 3 failures."""
    settings = Settings(line_channel_secret=SECRET, auth_max_failures=MAX_FAILURES)
    with TestClient(create_app(settings, manage_engine=False)) as c:
        yield c


@pytest.fixture
def clash(world: World) -> int:
    """A revoked gateway whose receiver id `local` its replacement now holds: rotating it is refused."""
    with Session(world.engine, expire_on_commit=False) as s:
        old = make_rotate_clash(s)
        s.commit()
        assert old.id is not None
        return old.id


@contextmanager
def database_down(engine: Engine) -> Iterator[None]:
    """Every statement fails as a lost connection does (OperationalError), until the block ends."""

    def fail(*_args: object) -> None:
        raise OperationalError("SELECT", {}, ConnectionError("database gone"))

    event.listen(engine, "before_cursor_execute", fail)
    try:
        yield
    finally:
        event.remove(engine, "before_cursor_execute", fail)


def declared(doc: dict[str, Any], method: str, path: str) -> set[int]:
    return {int(s) for s in doc["paths"][path][method]["responses"] if int(s) in PROBLEM_STATUSES}


def test_each_sampled_operation_declares_exactly_what_it_can_answer(app_client: TestClient) -> None:
    doc = app_client.get("/openapi.json").json()
    for (method, path), statuses in EXPECTED.items():
        assert declared(doc, method, path) == statuses, (method, path, sorted(declared(doc, method, path)))
    for path, operations in doc["paths"].items():
        for method, op in operations.items():
            for status, response in op["responses"].items():
                if int(status) in PROBLEM_STATUSES:  # each as a problem body, FastAPI's own 422 body replaced
                    assert list(response["content"]) == [PROBLEM], (method, path, status)
                    assert response["content"][PROBLEM]["schema"] == {"$ref": "#/components/schemas/Problem"}
            assert 500 in declared(doc, method, path)
            # A bearer token is said only where one is read: not for liveness, not for LINE's signed webhook.
            assert ("security" in op) == (401 in declared(doc, method, path) and path != "/api/v1/line/webhook")
    assert "429" not in doc["paths"]["/healthz"]["get"]["responses"]
    rotate = doc["paths"]["/api/v1/gateways/{gateway_id}/rotate"]["post"]["responses"]["409"]
    assert "`receiver_clash`" in rotate["description"]


def _signed(body: bytes) -> dict[str, str]:
    return {"x-line-signature": signature(SECRET, body), "content-type": "application/json"}


def test_each_declared_status_of_the_sample_is_reached(app_client: TestClient, world: World, clash: int) -> None:
    """One real request per declared status (500, a bug, excepted); the problem's `code` is the documented one."""
    c, admin, caregiver = app_client, world.auth("admin"), world.auth("caregiver")
    unfollow = b'{"events": [{"type": "unfollow", "source": {"userId": "U0000000000000000000000000000api"}}]}'
    rotate = f"/api/v1/gateways/{clash}/rotate"

    def down(request: Callable[[], httpx.Response]) -> Callable[[], httpx.Response]:
        def run() -> httpx.Response:
            with database_down(world.engine):
                return request()
        return run

    cases: dict[tuple[str, str], dict[int, Callable[[], httpx.Response]]] = {
        ("get", "/healthz"): {503: down(lambda: c.get("/healthz"))},
        ("get", "/api/v1/me"): {401: lambda: c.get("/api/v1/me"),
                                503: down(lambda: c.get("/api/v1/me", headers=admin))},
        ("get", "/api/v1/users"): {401: lambda: c.get("/api/v1/users"),
                                   403: lambda: c.get("/api/v1/users", headers=caregiver),
                                   503: down(lambda: c.get("/api/v1/users", headers=admin))},
        ("post", "/api/v1/users"): {
            400: lambda: c.post("/api/v1/users", content=b"\xff", headers={**admin, "content-type": "application/json"}),
            401: lambda: c.post("/api/v1/users", json={}),
            403: lambda: c.post("/api/v1/users", json={"name": "x", "role": "caregiver"}, headers=caregiver),
            422: lambda: c.post("/api/v1/users", content=b"{bad", headers={**admin, "content-type": "application/json"}),
            503: down(lambda: c.post("/api/v1/users", json={"name": "x", "role": "caregiver"}, headers=admin))},
        ("get", "/api/v1/alerts"): {
            401: lambda: c.get("/api/v1/alerts"),
            403: lambda: c.get(f"/api/v1/alerts?patient_id={world.other_patient}", headers=caregiver),
            404: lambda: c.get("/api/v1/alerts?patient_id=999999", headers=admin),
            422: lambda: c.get("/api/v1/alerts?limit=0", headers=admin),
            503: down(lambda: c.get("/api/v1/alerts", headers=admin))},
        ("post", "/api/v1/gateways/{gateway_id}/rotate"): {
            401: lambda: c.post(rotate),
            403: lambda: c.post(rotate, headers=caregiver),
            404: lambda: c.post("/api/v1/gateways/999999/rotate", headers=admin),
            409: lambda: c.post(rotate, headers=admin),
            422: lambda: c.post("/api/v1/gateways/1_0/rotate", headers=admin),
            503: down(lambda: c.post(rotate, headers=admin))},
        ("post", "/api/v1/line/webhook"): {
            400: lambda: c.post("/api/v1/line/webhook", content=b"[]", headers=_signed(b"[]")),
            401: lambda: c.post("/api/v1/line/webhook", content=b"{}", headers=_signed(b"{ }")),
            503: down(lambda: c.post("/api/v1/line/webhook", content=unfollow, headers=_signed(unfollow)))},
        ("get", "/api/v1/gateway/config"): {401: lambda: c.get("/api/v1/gateway/config"),
                                            503: down(lambda: c.get("/api/v1/gateway/config", headers=admin))},
    }
    codes = {400: "bad_request", 401: "unauthorized", 403: {"forbidden", "patient_forbidden"}, 404: "not_found",
             409: "receiver_clash", 422: "validation", 503: "unavailable"}
    reached: set[tuple[str, str, int]] = set()
    for (method, path), requests in cases.items():
        assert set(requests) == EXPECTED[(method, path)] - {429, 500}, (method, path)  # 429 below; 500 a bug
        for status, request in requests.items():
            c.app.state.auth_limiter = FailedAuthLimiter(max_failures=MAX_FAILURES)  # this sample's 401s forgotten
            r = request()
            assert r.status_code == status, (method, path, status, r.status_code, r.text)
            assert r.headers["content-type"].startswith(PROBLEM)
            expected = codes[status]
            assert r.json()["code"] in (expected if isinstance(expected, set) else {expected}), (path, r.text)
            reached.add((method, path, status))
    # 429: an address that failed to authenticate too often, on every operation that reads a token.
    c.app.state.auth_limiter = FailedAuthLimiter(max_failures=MAX_FAILURES)
    for _ in range(MAX_FAILURES):
        assert c.get("/api/v1/me", headers={"Authorization": "Bearer nope"}).status_code == 401
    for method, path in [m for m, s in EXPECTED.items() if 429 in s]:
        url = path.replace("{gateway_id}", str(clash))
        r = c.request(method.upper(), url, headers=admin, json={"name": "x", "role": "caregiver"})
        assert r.status_code == 429 and r.json()["code"] == "too_many_attempts", (path, r.text)
        assert int(r.headers["retry-after"]) > 0
    for method, path in [m for m, s in EXPECTED.items() if 429 not in s]:  # no token read: no lock-out
        r = c.request(method.upper(), path, content=b"{}", headers=_signed(b"{}"))
        assert r.status_code != 429, (path, r.text)


def test_what_a_sampled_operation_does_not_declare_it_does_not_answer(app_client: TestClient, world: World) -> None:
    """Inputs that would draw a status the operation does not declare, if it could answer one: none does."""
    doc = app_client.get("/openapi.json").json()
    checks: list[tuple[str, str, set[int], httpx.Response]] = [
        ("get", "/healthz", {401, 403, 429}, app_client.get("/healthz", headers={"Authorization": "Bearer nope"})),
        ("get", "/healthz", {400, 404, 422}, app_client.get("/healthz?x=%ff")),  # no parameters: nothing refused
        ("get", "/api/v1/me", {400, 404, 422}, app_client.get("/api/v1/me?limit=x", headers=world.auth("caregiver"))),
        ("get", "/api/v1/users", {404, 422}, app_client.get("/api/v1/users?offset=-1", headers=world.auth("admin"))),
    ]
    for method, path, absent, r in checks:
        assert not declared(doc, method, path) & absent, (method, path)
        assert r.status_code == 200, (path, r.status_code, r.text)
    webhook = app_client.post("/api/v1/line/webhook", content=b"{bad", headers=_signed(b"{bad"))
    assert 422 not in declared(doc, "post", "/api/v1/line/webhook")
    assert webhook.status_code == 400 and webhook.json()["code"] == "bad_request"  # it reads the body itself


@pytest.mark.parametrize("lang", ["th", "en"])
def test_a_rotate_clash_is_its_own_problem_in_thai_and_english(app_client: TestClient, world: World, clash: int,
                                                                 lang: str) -> None:
    r = app_client.post(f"/api/v1/gateways/{clash}/rotate", headers={**world.auth("admin"), "Accept-Language": lang})
    assert r.status_code == 409 and r.headers["content-type"].startswith(PROBLEM)
    body = r.json()
    assert body["type"] == "/problems/receiver_clash" and body["code"] == "receiver_clash"
    assert body["title"] == t("receiver_clash", lang) != t("conflict", lang) != "receiver_clash"
    assert body["receivers"] == {"gw-new": ["local"]} and "local held by gateway gw-new" in body["detail"]


def _pattern_of(doc: dict[str, Any], path: str, name: str) -> dict[str, Any]:
    """A query parameter's schema (its `pattern` beside the `anyOf` of string and null)."""
    schema: dict[str, Any] = next(p for p in doc["paths"][path]["get"]["parameters"] if p["name"] == name)["schema"]
    assert "pattern" in schema, (path, name)
    return schema


# Each time with what the server answers for it as `until=` (UTC window 1900 ≤ t < 2200, naive = Asia/Bangkok).
TIMES = [
    ("2200-01-01T05:00:00+07:00", True),  # 2199-12-31T22:00Z: the pattern had refused it
    ("2200-01-01T06:59:00", True),  # naive, Bangkok: 23:59Z the day before
    ("2200-01-01", True),  # midnight in Bangkok
    ("1899-12-31T20:00:00-05:00", True),  # 1900-01-01T01:00Z
    ("2025-01-15T10:30:00+07:00", True),
    ("2199-12-31T23:00:00Z", True),
    ("2200-01-01T08:00:00+07:00", False),  # 2200-01-01T01:00Z: out of the window though the pattern lets it by
    ("1899-12-30T23:00:00-05:00", False),
    ("1899-06-01T00:00:00Z", False),
    ("2200-01-02T00:00:00+14:00", False),
    ("2300-01-01T00:00:00Z", False),
    ("0001-01-01T00:00:00Z", False),
]
DAYS = ["2025-01-15", "1900-01-01", "2199-12-31", "2200-01-01", "1899-12-31", "0", "86400", "2025-01-15T00:00:00",
        "2025-01-15T00:00:00Z", "20250115", "2025-1-5"]


def test_the_time_pattern_never_refuses_a_time_the_server_takes(app_client: TestClient, world: World) -> None:
    doc = app_client.get("/openapi.json").json()
    for path in ("/api/v1/alerts", "/api/v1/patients/{patient_id}/positions"):
        for name in ("since", "until"):
            schema = _pattern_of(doc, path, name)
            for value, taken in TIMES:
                r = app_client.get(path.replace("{patient_id}", str(world.own_patient)),
                                   params={name: value}, headers=world.auth("admin"))
                assert (r.status_code == 200) == taken, (path, name, value, r.status_code, r.text)
                if taken:  # what the server takes, the document lets through
                    assert jsonschema_rs.is_valid(schema, value), (path, name, value, schema["pattern"])
                elif not value.startswith(("2200-01-01T08", "1899-12-30")):  # beyond what a text rule can say
                    assert not jsonschema_rs.is_valid(schema, value), (path, name, value)
    parts = doc["components"]["schemas"]
    for model, field in (("VisitIn", "t"), ("SightingIn", "t")):
        prop = parts[model]["properties"][field]
        schema = next(s for s in prop.get("anyOf", [prop]) if s.get("type") == "string")
        assert schema["pattern"] == _pattern_of(doc, "/api/v1/alerts", "since")["pattern"], model


def test_a_visit_time_the_server_takes_is_valid_by_the_document(app_client: TestClient, world: World) -> None:
    """A body time (a visit's `t`): taken by the validation (a time in the future is then `visit_in_future`)."""
    doc = app_client.get("/openapi.json").json()
    prop = doc["components"]["schemas"]["VisitIn"]["properties"]["t"]
    schema = next(s for s in prop.get("anyOf", [prop]) if s.get("type") == "string")
    url = f"/api/v1/patients/{world.own_patient}/visits"
    for value, taken in TIMES:
        r = app_client.post(url, json={"t": value}, headers=world.auth("volunteer"))
        assert (r.json().get("code") != "validation") == taken, (value, r.status_code, r.text)
        if taken:
            assert jsonschema_rs.is_valid(schema, value), value


def test_the_report_day_is_taken_exactly_when_the_document_says(app_client: TestClient, world: World) -> None:
    """`date=`: YYYY-MM-DD, 1900-2199. The server had also taken `0` (1970-01-01), `86400` and a midnight time."""
    doc = app_client.get("/openapi.json").json()
    schema = _pattern_of(doc, "/api/v1/reports/daily", "date")
    for value in DAYS:
        r = app_client.get("/api/v1/reports/daily", params={"date": value, "format": "json"},
                           headers=world.auth("admin"))
        assert r.status_code in (200, 422), (value, r.text)
        assert (r.status_code == 200) == jsonschema_rs.is_valid(schema, value), (value, r.status_code, r.text)
    assert jsonschema_rs.is_valid(schema, "2025-01-15") and not jsonschema_rs.is_valid(schema, "0")
