"""Errors as RFC 9457 problem details, in Thai or English by Accept-Language."""

from __future__ import annotations

import logging
import traceback
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from chumphae.i18n import pick_lang, t

log = logging.getLogger(__name__)

STATUS_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                405: "bad_request", 409: "conflict", 413: "bad_request", 422: "validation",
                429: "too_many_attempts", 500: "server_error", 503: "unavailable"}
MEDIA_TYPE = "application/problem+json"


class Problem(Exception):
    """Raise anywhere in a route: becomes application/problem+json."""

    def __init__(self, status: int, code: str, detail: str | None = None, *,
                 headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(code)
        self.status, self.code, self.detail, self.extra = status, code, detail, extra
        self.headers = headers or {}


def invalid(msg: str, *loc: str | int) -> Problem:
    """A 422 `validation` problem found after the fields were read: `errors` says where and what, as for the
    ones the request model finds (docs/mobile-api.md, Errors), `detail` the same words."""
    return Problem(422, "validation", msg, errors=[{"loc": list(loc), "msg": msg}])


def problem_response(request: Request, status: int, code: str, detail: str | None = None, *,
                     headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    lang = pick_lang(request.headers.get("accept-language"))
    body: dict[str, Any] = {
        "type": f"/problems/{code}",
        "title": t(code, lang),
        "status": status,
        "instance": instance(request),
        "code": code,
    }
    if detail:
        body["detail"] = detail
    body.update(extra)
    headers = dict(headers or {})
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(request, exc.status, exc.code, exc.detail, headers=exc.headers, **exc.extra)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = STATUS_CODES.get(exc.status_code, "bad_request")
        detail = exc.detail if isinstance(exc.detail, str) and exc.detail not in ("Not Found",) else None
        return problem_response(request, exc.status_code, code, detail, headers=dict(exc.headers or {}))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        # Never echo the input back (it may be a name or a CID): where and what is wrong is enough.
        errors = [{"loc": [part if isinstance(part, int | str) else str(part) for part in e.get("loc", ())],
                   "msg": str(e.get("msg", ""))}
                  for e in exc.errors()]
        return problem_response(request, 422, "validation", errors=errors)

    @app.exception_handler(OperationalError)
    async def _database_down(request: Request, exc: OperationalError) -> JSONResponse:
        log.error("database unavailable on %s %s: %s", request.method, _route(request),
                  type(exc.orig).__name__ if exc.orig is not None else "OperationalError")
        return problem_response(request, 503, "unavailable", headers={"Retry-After": "5"})

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # The exception's type and where, not its text: a database error's text quotes the row it failed on.
        log.error("unhandled %s on %s %s\n%s", type(exc).__name__, request.method, _route(request),
                  "".join(traceback.format_tb(exc.__traceback__)))
        return problem_response(request, 500, "server_error")


def instance(request: Request) -> str:
    """The path as the client sent it, percent-encoded (RFC 9457: a URI reference). `request.url.path` had
    decoded it and dropped a tab, CR or LF typed into it, so `instance` was not the path asked for (api19)."""
    raw = request.scope.get("raw_path")
    return raw.decode("ascii", "replace") if isinstance(raw, bytes) and raw else request.url.path


def _route(request: Request) -> str:
    """The route's template (`/api/v1/patients/{patient_id}`): the path itself may carry what was typed."""
    return str(getattr(request.scope.get("route"), "path", "?"))


def problem_schema() -> dict[str, Any]:
    """The OpenAPI schema of a problem-details body."""
    return {"type": "object", "required": ["type", "title", "status", "code"], "properties": {
        "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
        "instance": {"type": "string"}, "code": {"type": "string"}, "detail": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "object"}}}, "additionalProperties": True}
