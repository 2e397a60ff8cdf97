"""The API against its own published schema (api19): every operation of /openapi.json fuzzed by schemathesis.

The seeded demo district (the shipped map, 30 patients, their bands, zones and users) on SQLite, an alert or two,
positions and visits; the app in process (schemathesis' ASGI transport), a real token for each role. Per
operation, role and mode (positive: data the document says is valid; negative: data it says is not), a bounded,
derandomized number of examples, so a run is the same run every time. Each answer must be:

- never a 5xx (an exception the app lets out counts as one);
- a status the operation documents, its media type and body as documented;
- for positive data, not refused as invalid (a 422 `validation` there means the document says less than the
  app enforces: a client built from it would send what is refused);
- a 4xx or 5xx as docs/mobile-api.md "Errors" says: `application/problem+json`, `status` the HTTP status, a
  documented `code`, `type` `/problems/<code>`, `instance` the path as sent; a `validation` problem has
  `errors` of `{loc, msg}`; a 401 says `WWW-Authenticate: Bearer`.

And the app's logs during the whole run never carry a seeded patient's CID or name.

Two rules JSON Schema cannot say are stated in the document's words only, and the positive data is made to keep
them before it is sent: an integer field takes a JSON integer (`7.0` is refused; JSON Schema counts it as an
integer), and a `cid` has a valid check digit.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote

import jsonschema_rs  # schemathesis' own validator (installed with it)
import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import FailedHealthCheck, Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import positive_data_acceptance
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from chumphae.api.app import create_app
from chumphae.api.problems import MEDIA_TYPE
from chumphae.models import Patient, PositionRecord, Visit
from chumphae.seed import SeedResult, seed_demo
from tests.conftest import World
from tests.feed.conftest import raise_alert

# Examples per operation and mode, by role (admin last: its revoke / rotate / erase run at the very end).
# Admin reaches every route's own code, volunteer1 the patient-scoped answers; no token and a caregiver get a few,
# for their 401 / 403 answers' shape (which role may do what is tests/core/test_authz.py's, every role against
# the schema tests/security/test_schemathesis.py's).
EXAMPLES = {"anonymous": 2, "caregiver1": 3, "volunteer1": 10, "admin": 20}
NEGATIVE = ("admin",)  # negative data as admin only: the others are mostly refused (403) before their input is read
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
DESTRUCTIVE = ("/revoke", "/rotate", "/erase")
# docs/mobile-api.md "Errors": the codes a client may see, by HTTP status.
CODES = {
    400: {"bad_request"}, 401: {"unauthorized"}, 403: {"forbidden", "patient_forbidden", "field_forbidden"},
    404: {"not_found"}, 405: {"bad_request"}, 409: {"band_in_use", "no_band", "band_mismatch", "alert_conflict",
                                                    "conflict", "receiver_clash"},
    413: {"bad_request"}, 422: {"validation", "zone_build", "visit_in_future"}, 429: {"too_many_attempts"},
    503: {"unavailable"},
}


def seed(engine: Engine) -> SeedResult:
    """The demo district, plus what its seed lacks: positions, visits and alerts (open ones) behind small ids."""
    with Session(engine, expire_on_commit=False) as s:
        result = seed_demo(s)
        s.commit()
        now = datetime.now(UTC)
        for pid in (1, 2, 3):
            s.add(PositionRecord(patient_id=pid, t=now - timedelta(minutes=5), lat=16.5443, lon=102.1001,
                                 uncertainty_m=20.0))
            s.add(Visit(patient_id=pid, user_id=result.user_ids["volunteer1"], t=now, adl_score=9, notes="ok"))
        s.commit()
    for pid, kind in ((1, "sos"), (2, "wander"), (3, "fall"), (20, "sos")):
        raise_alert(engine, pid, kind)
    return result


def keep_inexpressible_rules(value: Any) -> Any:
    """Positive data made to keep what JSON Schema cannot say: integral floats sent as JSON integers (an
    integer field refuses `7.0`; a number field takes `7` as well), a `cid` with its check digit."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, list):
        return [keep_inexpressible_rules(v) for v in value]
    if isinstance(value, dict):
        out = {k: keep_inexpressible_rules(v) for k, v in value.items()}
        cid = out.get("cid")
        if isinstance(cid, str) and len(cid) == 13 and cid.isdigit():
            check = (11 - sum(int(d) * (13 - i) for i, d in enumerate(cid[:12])) % 11) % 10
            out["cid"] = cid[:12] + str(check)
        return out
    return value


def header(response: Any, name: str) -> str:
    """One header of a schemathesis response (its headers are lists of values)."""
    values = response.headers.get(name) or response.headers.get(name.title()) or [""]
    return str(values[0])


def problem_failures(case: Any, response: Any) -> list[str]:
    """How a 4xx / 5xx answer differs from docs/mobile-api.md "Errors" (empty: as documented)."""
    status = response.status_code
    if status < 400:
        return []
    media = header(response, "content-type").split(";")[0]
    if media != MEDIA_TYPE:
        return [f"{status} as {media!r}, not {MEDIA_TYPE}"]
    body = response.json()
    wrong = []
    code = body.get("code")
    if body.get("status") != status:
        wrong.append(f"body status {body.get('status')!r} for HTTP {status}")
    if code not in CODES.get(status, set()):
        wrong.append(f"code {code!r} is not documented for {status}")
    if body.get("type") != f"/problems/{code}":
        wrong.append(f"type {body.get('type')!r}")
    if unquote(str(body.get("instance"))) != unquote(case.formatted_path):  # `?` and `#` stay escaped there
        wrong.append(f"instance {body.get('instance')!r} for {case.formatted_path!r}")
    if code == "validation":
        errors = body.get("errors")
        if not errors or any(set(e) != {"loc", "msg"} or not isinstance(e["loc"], list) for e in errors):
            wrong.append(f"validation errors {errors!r}")
    if status == 401 and header(response, "www-authenticate") != "Bearer":
        wrong.append("401 without WWW-Authenticate: Bearer")
    return wrong


def order(op: Any) -> tuple[int, str]:
    return (1 if op.path.endswith(DESTRUCTIVE) else 0, op.label)


class Tally:
    def __init__(self) -> None:
        self.requests = 0
        self.statuses: Counter[int] = Counter()
        self.failures: dict[tuple[str, str, str], str] = {}  # (operation, mode, role) → the first failure

    def fail(self, key: tuple[str, str, str], text: str) -> None:
        self.failures.setdefault(key, text[:600])


def fuzz(op: Any, mode: GenerationMode, role: str, headers: dict[str, str], examples: int, tally: Tally) -> None:
    strategy = op.as_strategy(generation_mode=mode)
    if mode is GenerationMode.POSITIVE:
        strategy = strategy.map(_keep_rules)
        checks = [*CHECKS, positive_data_acceptance]
    else:
        checks = CHECKS

    @settings(max_examples=examples, deadline=None, database=None, derandomize=True,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def run(case: Any) -> None:
        key = (op.label, mode.value, role)
        shown = f"{case.method} {case.formatted_path} query={case.query} body={str(case.body)[:200]}"
        tally.requests += 1
        try:
            response = case.call(headers=headers)
        except Exception as exc:  # noqa: BLE001  (the in-process transport raises what the app let out: a 500)
            tally.statuses[500] += 1
            tally.fail(key, f"{shown} -> {type(exc).__name__}: {exc}")
            return
        tally.statuses[response.status_code] += 1
        try:
            case.validate_response(response, checks=checks, headers=headers)
        except (Exception, FailureGroup) as exc:  # noqa: BLE001  (collect every failure, assert once)
            tally.fail(key, f"{shown} -> {response.status_code} {response.text[:200]} :: {exc}")
        wrong = problem_failures(case, response)
        if wrong:
            tally.fail(key, f"{shown} -> {response.status_code} {response.text[:200]} :: {'; '.join(wrong)}")

    try:
        run()
    except (Unsatisfiable, FailedHealthCheck):
        pass  # no negative data for an operation without inputs (a bare GET)


def _keep_rules(case: Any) -> Any:
    if isinstance(case.body, dict | list):
        case.body = keep_inexpressible_rules(case.body)
    return case


@pytest.mark.slow
def test_every_operation_answers_as_its_schema_says(app_engine: Engine, caplog: pytest.LogCaptureFixture) -> None:
    demo = seed(app_engine)
    with Session(app_engine) as s:
        secrets = [x for p in s.exec(select(Patient)).all() for x in (p.cid, p.name_th, p.name_en) if x]
    app = create_app(manage_engine=False)
    app.state.auth_limiter.max_failures = 0  # the anonymous calls must not lock the roles out
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = sorted((result.ok() for result in schema.get_all_operations()), key=order)
    tally = Tally()
    caplog.set_level(logging.DEBUG)
    for role, examples in EXAMPLES.items():
        headers = {"Authorization": f"Bearer {demo.tokens[role]}"} if role in demo.tokens else {}
        for op in operations:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                if mode is GenerationMode.POSITIVE or role in NEGATIVE:
                    fuzz(op, mode, role, headers, examples, tally)
    assert len(operations) >= 30, [op.label for op in operations]
    assert tally.requests > 20 * len(operations), f"the fuzzer barely ran: {tally.requests} requests"
    assert {200, 201, 204, 401, 403, 404, 422} <= set(tally.statuses), tally.statuses  # it reached real rows
    print(f"schema fuzz: {tally.requests} requests, statuses {dict(sorted(tally.statuses.items()))}")
    assert not tally.failures, "\n\n".join(f"{k}: {v}" for k, v in sorted(tally.failures.items()))
    logged = caplog.text
    assert not [x for x in secrets if x in logged], "a seeded patient's CID or name was logged"


# -- what the fuzz found, each as a plain case -------------------------------------------------------------


def test_a_null_zone_margin_is_refused_not_a_500(mapped: World, client: TestClient) -> None:
    """`PUT …/zone` with `"margin_m": null` (the schema said number or null) raised TypeError: 500."""
    for field in ("margin_m", "tolerance_m", "place_radius_m"):
        r = client.put(f"/api/v1/patients/{mapped.own_patient}/zone", json={field: None},
                       headers=mapped.auth("volunteer"))
        assert r.status_code == 422, (field, r.status_code, r.text)
        assert r.json()["code"] == "validation"
        assert r.json()["errors"][0]["loc"] == ["body", field]
    r = client.put(f"/api/v1/patients/{mapped.own_patient}/zone", json={"margin_m": 15},
                   headers=mapped.auth("volunteer"))
    assert r.status_code == 200 and r.json()["spec"]["margin_m"] == 15


def test_the_schema_says_what_the_app_refuses(client: TestClient) -> None:
    """The document had let any text through where the app refuses control characters, any year where it takes
    1900-2199 and any text as a band address: positive data a client built from it sends was refused (422)."""
    doc = client.get("/openapi.json").json()
    parts = doc["components"]["schemas"]

    def one(prop: dict[str, Any]) -> dict[str, Any]:
        return next((p for p in prop.get("anyOf", [prop]) if p.get("type") == "string"), prop)

    assert one(parts["PatientPatch"]["properties"]["name_th"])["pattern"] == r"^[^\x00-\x1f\x7f]*$"
    assert one(parts["AckIn"]["properties"]["note"])["pattern"] == r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"
    year = r"^(1899-12-31|19\d\d-|2[01]\d\d-|2200-01-01)"  # api27: an offset may bring these days into the window
    assert one(parts["VisitIn"]["properties"]["t"])["pattern"] == year
    assert parts["SightingIn"]["properties"]["t"]["pattern"] == year
    assert parts["BandIn"]["properties"]["address"]["pattern"] == r"^[0-9A-Fa-f]{2}([:-]?[0-9A-Fa-f]{2}){5}$"
    since = next(p for p in doc["paths"]["/api/v1/alerts"]["get"]["parameters"] if p["name"] == "since")
    assert since["schema"]["pattern"] == year
    margin = parts["ZoneIn"]["properties"]["margin_m"]
    assert margin["type"] == "number" and "anyOf" not in margin  # never null


def test_a_problem_names_the_path_as_it_was_sent(client: TestClient) -> None:
    """`instance` had been the decoded path with a typed tab or CR dropped (`/patients/a%09b` → `/patients/ab`):
    not the path asked for, and not a URI reference (RFC 9457); now the path as sent, percent-encoded."""
    for path in ("/api/v1/patients/a%09b", "/api/v1/patients/a%0Db/status", "/api/v1/patients/%E0%B8%81"):
        r = client.get(path)
        assert r.status_code in (401, 422), r.text
        assert r.headers["content-type"] == MEDIA_TYPE
        assert r.json()["instance"] == path
    assert client.get("/api/v1/patients/7?x=1").json()["instance"] == "/api/v1/patients/7"  # no query string


def test_every_example_in_the_document_matches_its_schema(client: TestClient) -> None:
    """The published examples are what client authors copy: the home screen's and `…/status`' had lost every
    `null` (FastAPI drops them: `next_offset`, `building_code`, both required) and their band lacked `site` and
    `has_key`. Each response example and request-body example is checked against its own schema."""
    doc = client.get("/openapi.json").json()
    components = {"components": doc["components"]}
    checked, wrong = 0, []
    for path, operations in doc["paths"].items():
        for method, op in operations.items():
            pairs = [(f"{status} {media}", content["schema"], content["example"])
                     for status, response in op["responses"].items()
                     for media, content in response.get("content", {}).items()
                     if "example" in content and "schema" in content]
            for media, content in op.get("requestBody", {}).get("content", {}).items():
                target = content["schema"]
                while "$ref" in target:
                    target = doc["components"]["schemas"][target["$ref"].rsplit("/", 1)[1]]
                pairs += [(f"body {media}", content["schema"], example) for example in target.get("examples", [])]
            for where, schema, example in pairs:
                checked += 1
                validator = jsonschema_rs.Draft202012Validator({**schema, **components})
                wrong += [f"{method.upper()} {path} {where}: {list(e.instance_path)} {e.message[:200]}"
                          for e in validator.iter_errors(example)]
    assert checked >= 8
    assert not wrong, "\n".join(wrong)


def test_a_band_site_or_model_with_a_control_character_is_refused(mapped: World, client: TestClient) -> None:
    """docs/mobile-api.md: no control characters on any route; a band's `site` and `model` took them (a NUL or a
    newline was stored as sent)."""
    url = f"/api/v1/patients/{mapped.own_patient}/bands"
    for body in ({"site": "gw-town\x00"}, {"site": "gw\ntown"}, {"model": "v1\x07"}):
        r = client.put(url, json={"address": "C0:CA:FE:00:00:09", **body}, headers=mapped.auth("volunteer"))
        assert r.status_code == 422, (body, r.status_code, r.text)
        assert r.json()["errors"][0]["loc"][:2] == ["body", next(iter(body))]
    r = client.put(url, json={"address": "C0:CA:FE:00:00:09", "site": "gw-town"}, headers=mapped.auth("volunteer"))
    assert r.status_code == 200 and r.json()["band"]["site"] == "gw-town"
