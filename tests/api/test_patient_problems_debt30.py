"""Every operation that looks up a patient by id declares the 404 (`not_found`) and the 403 (`patient_forbidden`) of
`deps.patient_for` in the OpenAPI document (debt30).

Those used to be declared only where the route named `responses=PATIENT_PROBLEMS`: a patient id in the query (as
`GET /api/v1/alerts?patient_id=`) on a route that forgot it published neither; a path id got the 404 but not the 403.
The walk finds the patient ids in the generated document itself: a path or query parameter named `patient_id`, and
a request body with a `patient_id` field (`POST /api/v1/users/{user_id}/patients`: 404 when no such patient).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from chumphae.api.app import create_app
from chumphae.api.deps import CurrentUser, SessionDep, patient_for
from chumphae.api.schemas import OptionalPatientQuery, PatientId


def _body_fields(doc: dict[str, Any], op: dict[str, Any]) -> set[str]:
    fields: set[str] = set()
    for content in op.get("requestBody", {}).get("content", {}).values():
        ref = content.get("schema", {}).get("$ref", "")
        schema = doc["components"]["schemas"].get(ref.rsplit("/", 1)[-1], {}) if ref else content.get("schema", {})
        fields |= set(schema.get("properties", {}))
    return fields


def patient_operations(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """`METHOD path` -> operation, for every operation that takes a patient id (path, query or body)."""
    found = {}
    for path, item in doc["paths"].items():
        for method, op in item.items():
            named = {p["name"] for p in op.get("parameters", []) if p["in"] in ("path", "query")}
            if "patient_id" in named or "patient_id" in _body_fields(doc, op):
                found[f"{method.upper()} {path}"] = op
    return found


def undeclared(doc: dict[str, Any]) -> list[str]:
    """The operations with a patient id that do not declare the 404, or (for a path or query id: the caller's
    access is checked) the 403, as application/problem+json."""
    missing = []
    for name, op in patient_operations(doc).items():
        takes = {p["name"] for p in op.get("parameters", []) if p["in"] in ("path", "query")}
        for status in ("404", "403") if "patient_id" in takes else ("404",):
            if "application/problem+json" not in op["responses"].get(status, {}).get("content", {}):
                missing.append(f"{name} {status}")
    return missing


def _doc(app: FastAPI) -> dict[str, Any]:
    with TestClient(app) as client:
        answer = client.get("/openapi.json")
    assert answer.status_code == 200
    doc: dict[str, Any] = answer.json()
    return doc


def test_every_operation_with_a_patient_id_declares_the_patient_404_and_403() -> None:
    doc = _doc(create_app(manage_engine=False))
    found = patient_operations(doc)
    # the walk sees the three ways a patient id arrives (else it would pass by finding nothing)
    assert {"GET /api/v1/patients/{patient_id}", "GET /api/v1/alerts", "POST /api/v1/users/{user_id}/patients"} <= set(found)
    assert len(found) >= 12, sorted(found)
    assert undeclared(doc) == []


def test_a_route_that_forgets_patient_problems_still_declares_them() -> None:
    """Fails on the code before debt30: these two routes name no `responses=` and published no 403 (nor, for the
    query id, the 404), though `patient_for` answers both."""
    app = create_app(manage_engine=False)

    @app.get("/api/v1/patients/{patient_id}/debt30-probe")
    def by_path(patient_id: PatientId, request: Request, session: SessionDep, user: CurrentUser) -> dict[str, int]:
        return {"id": patient_for(session, user, request, patient_id).id or 0}

    @app.get("/api/v1/debt30-probe")
    def by_query(request: Request, session: SessionDep, user: CurrentUser,
                 patient_id: OptionalPatientQuery = None) -> dict[str, int]:
        return {"id": patient_for(session, user, request, patient_id).id or 0 if patient_id else 0}

    doc = _doc(app)
    assert {"GET /api/v1/patients/{patient_id}/debt30-probe", "GET /api/v1/debt30-probe"} <= set(patient_operations(doc))
    assert undeclared(doc) == []
