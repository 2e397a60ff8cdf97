"""What every HTTP answer of the API carries: security headers, finite JSON, documented problem responses."""

from __future__ import annotations

import json
import math
from typing import Any

import fastapi.routing
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chumphae.api.problems import MEDIA_TYPE, problem_schema

SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]
# The public tax map (no personal data) keeps its own ETag caching; every other API answer is never stored.
OWN_CACHING = ("/api/v1/map/",)


def finite(value: Any) -> Any:
    """`value` with every NaN or infinity replaced by null (JSON has no such numbers)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def dumps(value: Any) -> str:
    """JSON text that is always valid JSON: non-finite numbers become null."""
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except ValueError:
        return json.dumps(finite(value), ensure_ascii=False, allow_nan=False, separators=(",", ":"))


class FiniteJSONResponse(JSONResponse):
    def render(self, content: Any) -> bytes:
        return dumps(content).encode("utf-8")


class SecurityHeaders:
    """Pure ASGI middleware (works for streaming and leaves WebSockets alone)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        api = path.startswith("/api/") or path == "/healthz" or path.startswith("/docs") \
            or path == "/openapi.json"
        no_store = api and not path.startswith(OWN_CACHING)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", [])
                           if k.lower() not in {name for name, _ in SECURITY_HEADERS}]
                headers += SECURITY_HEADERS
                if no_store:
                    headers = [(k, v) for k, v in headers if k.lower() != b"cache-control"]
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


PROBLEMS = {
    400: "The body could not be read (`bad_request`): bytes that are not UTF-8 text (nor UTF-16 or UTF-32, "
         "which are read too when the body's first bytes show them). A body that is text but not JSON is 422 "
         "`validation`.",
    401: "No valid token (`unauthorized`).",
    403: "The role may not do this, or the patient is not the caller's (`forbidden`, `patient_forbidden`, "
         "`field_forbidden`).",
    404: "No such thing (`not_found`).",
    409: "It conflicts with what exists (e.g. `alert_conflict`, `band_in_use`).",
    422: "The request is not valid (`validation`): `errors` says where.",
    429: "Too many failed authentications from this address (`too_many_attempts`); see Retry-After.",
    500: "A bug (`server_error`); never expected.",
    503: "The database is unavailable (`unavailable`); see Retry-After.",
}


def problems(*statuses: int, about: dict[int, str] | None = None) -> dict[int | str, dict[str, Any]]:
    """A route's `responses=` for the problem statuses its own body raises (a 409 it checks for, the 403 and 404
    of `deps.patient_for`); `about` words a status for this route. What its dependencies and parameters answer
    is added without it (`problem_statuses`)."""
    return {status: {"description": (about or {}).get(status, PROBLEMS[status])} for status in statuses}


# A path or query parameter of this name is a patient looked up and checked (`deps.patient_for`).
PATIENT_PARAMETER = "patient_id"


def problem_statuses(route: Any) -> tuple[set[int], bool]:
    """The problem statuses an operation can answer, and whether it reads a bearer token: 500 always; what each
    dependency declares (`deps.answers`: the session 503, a token 401 and 429, a role 403); 422 for any path,
    query, header or body parameter, 404 for a path parameter (every one names a thing looked up), 403 and 404
    for a path or query parameter named `patient_id` (`deps.patient_for`'s `patient_forbidden` and `not_found`:
    declared even when the route forgets `PATIENT_PROBLEMS`, debt30), 400 for a body (undecodable bytes); and
    the route's own `problems(...)`."""
    statuses, bearer = {500}, False
    stack = [route.dependant]
    while stack:
        dependant = stack.pop()
        statuses |= getattr(dependant.call, "problem_statuses", frozenset())
        bearer = bearer or bool(getattr(dependant.call, "bearer", False))
        if any(p.name == PATIENT_PARAMETER for p in [*dependant.path_params, *dependant.query_params]):
            statuses |= {403, 404}
        if dependant.path_params:
            statuses |= {404, 422}
        if dependant.query_params or dependant.header_params or dependant.cookie_params:
            statuses.add(422)
        if dependant.body_params:
            statuses |= {400, 422}
        stack.extend(dependant.dependencies)
    statuses |= {int(status) for status in route.responses if int(status) in PROBLEMS}
    return statuses, bearer


def _api_routes(app: FastAPI) -> list[Any]:
    """The app's API routes, each with its full `path_format`, `methods` and `responses`: FastAPI 0.165 keeps an
    included router as one entry of `app.routes` (`fastapi.routing.iter_route_contexts` walks it); older ones
    list the routes themselves."""
    contexts = getattr(fastapi.routing, "iter_route_contexts", None)
    if contexts is None:
        return [r for r in app.routes if isinstance(r, APIRoute)]
    return [c for c in contexts(app.routes) if isinstance(c.original_route, APIRoute)]


def keep_example_nulls(app: FastAPI, schema: dict[str, Any]) -> None:
    """Put the routes' response examples back as written: FastAPI drops every `null` from the document
    (`exclude_none`), so an example's `"next_offset": null` or `"building_code": null` had vanished and the
    published example lacked fields its own schema requires (api19)."""
    for route in _api_routes(app):
        for method in route.methods or ():
            op = schema.get("paths", {}).get(route.path_format, {}).get(method.lower())
            for status, response in route.responses.items():
                for media, content in response.get("content", {}).items():
                    if op is not None and "example" in content:
                        target = op["responses"][str(status)]["content"][media]
                        target["example"] = json.loads(dumps(content["example"]))


def install_openapi(app: FastAPI) -> None:
    """Every operation documents the problem statuses it can answer (`problem_statuses`), and only those, as
    application/problem+json; an operation that reads a bearer token says so (`security`)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, description=app.description,
                             routes=app.routes)
        keep_example_nulls(app, schema)
        components = schema.setdefault("components", {})
        components.setdefault("schemas", {})["Problem"] = problem_schema()
        components.setdefault("securitySchemes", {})["bearer"] = {"type": "http", "scheme": "bearer"}
        ref = {"$ref": "#/components/schemas/Problem"}
        for route in _api_routes(app):
            statuses, bearer = problem_statuses(route)
            for method in route.methods or ():
                op = schema.get("paths", {}).get(route.path_format, {}).get(method.lower())
                if op is None:
                    continue
                responses = op.setdefault("responses", {})
                for status in PROBLEMS:
                    responses.pop(str(status), None)  # FastAPI's own 422 (HTTPValidationError) included
                for status in sorted(statuses):
                    own = route.responses.get(status, route.responses.get(str(status), {}))
                    responses[str(status)] = {"description": own.get("description") or PROBLEMS[status],
                                              "content": {MEDIA_TYPE: {"schema": ref}}}
                if bearer:
                    op["security"] = [{"bearer": []}]
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
