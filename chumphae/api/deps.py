"""FastAPI dependencies: the session, the calling user, role and patient checks.

The request's session commits (or fails) before the response is sent: its
dependency has `scope="function"`, so FastAPI closes it as soon as the route
function has returned and its result is serialised, and a commit that fails
becomes the error response instead of a success the database never saw.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse
from starlette.websockets import WebSocket

from chumphae import audit
from chumphae.api.http import problems
from chumphae.api.problems import Problem
from chumphae.auth.access import can_see_patient
from chumphae.auth.limits import FailedAuthLimiter
from chumphae.auth.service import user_by_token
from chumphae.db import get_engine
from chumphae.models import Patient, Role, User

F = TypeVar("F", bound=Callable[..., Any])


def answers(*statuses: int, bearer: bool = False) -> Callable[[F], F]:
    """Mark a dependency with the problem statuses it can answer (and, with `bearer`, that it reads the bearer
    token): the OpenAPI document lists them on exactly the operations that depend on it (`http.install_openapi`
    walks each route's dependencies)."""

    def mark(call: F) -> F:
        call.problem_statuses = frozenset(statuses)  # type: ignore[attr-defined]
        call.bearer = bearer  # type: ignore[attr-defined]
        return call

    return mark


def integrity_conflict(conn: HTTPConnection, exc: IntegrityError, *, at: str) -> Problem:
    """The 409 `conflict` for a constraint the request broke, after ONE warning line that names the operation
    (method and route template) and what was broken (SQLSTATE, constraint, table, from PostgreSQL's
    diagnostics; SQLite's message is only its kind and `table.column`). A NOT NULL or foreign-key bug answers
    409 as a lost race does: the line tells them apart. Never the values: the statement's parameters and
    PostgreSQL's DETAIL (`Key (cid)=(…)`) can carry CIDs, names and positions (PDPA)."""
    route = conn.scope.get("route")
    method = conn.scope.get("method", "WS")
    log.warning("%s %s: integrity error at %s (%s): answering 409 conflict", method,
                getattr(route, "path", "?"), at, broken_constraint(exc))
    return Problem(409, "conflict")


def broken_constraint(exc: IntegrityError) -> str:
    """What an IntegrityError broke, without any value: `23505 UniqueViolation constraint=… table=…`."""
    orig = exc.orig
    diag = getattr(orig, "diag", None)
    if diag is not None:  # psycopg: the server's fields, one by one (never message_detail: it holds values)
        parts = [getattr(orig, "sqlstate", None) or "?", type(orig).__name__]
        parts += [f"{name}={value}" for name, value in (("constraint", diag.constraint_name),
                                                        ("table", diag.table_name), ("column", diag.column_name))
                  if value]
        return " ".join(parts)
    text = str(orig).splitlines()[0] if orig is not None else ""
    # sqlite3: "UNIQUE constraint failed: bands.address", "NOT NULL constraint failed: t.c",
    # "FOREIGN KEY constraint failed": names only; anything else is not echoed
    known = re.fullmatch(r"(?:UNIQUE|NOT NULL|CHECK|FOREIGN KEY|PRIMARY KEY) constraint failed(?:: [\w., ]+)?", text)
    return known.group(0) if known else type(orig).__name__


@answers(503)
def get_session(conn: HTTPConnection) -> Iterator[Session]:
    """The request's session; committed when the route has returned, before the response goes out."""
    with Session(get_engine(), expire_on_commit=False) as session:
        try:
            yield session
        except IntegrityError as exc:  # the route's own flush lost a race (PostgreSQL waits, then fails there)
            session.rollback()
            raise integrity_conflict(conn, exc, at="flush") from None
        except BaseException:
            session.rollback()
            raise
        try:
            session.commit()
        except IntegrityError as exc:
            session.rollback()
            raise integrity_conflict(conn, exc, at="commit") from None
        except Exception as exc:  # noqa: BLE001  (the answer must not claim what was not stored)
            session.rollback()
            log.error("commit failed (%s): answering 503", type(exc).__name__)
            raise Problem(503, "unavailable", headers={"Retry-After": "5"}) from None


log = logging.getLogger(__name__)

SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def bearer_token(conn: HTTPConnection) -> str | None:
    header = conn.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def client_address(conn: HTTPConnection) -> str:
    return conn.client.host if conn.client else "unknown"


def limiter(conn: HTTPConnection) -> FailedAuthLimiter:
    found = getattr(conn.app.state, "auth_limiter", None)
    if found is None:  # an app built without create_app (tests of single routers)
        found = conn.app.state.auth_limiter = FailedAuthLimiter()
    return found


async def refuse_socket_if_locked_out(ws: WebSocket) -> bool:
    """For a WebSocket upgrade: refuse it with 429 and Retry-After when this address has failed to
    authenticate too often (True: refused, the caller returns)."""
    wait = limiter(ws).retry_after(client_address(ws))
    if wait is None:
        return False
    await ws.send_denial_response(JSONResponse({"code": "too_many_attempts", "status": 429}, status_code=429,
                                               headers={"Retry-After": str(wait)}))
    return True


def check_not_locked_out(conn: HTTPConnection) -> None:
    """429 with Retry-After when this address has failed to authenticate too often."""
    wait = limiter(conn).retry_after(client_address(conn))
    if wait is not None:
        raise Problem(429, "too_many_attempts", headers={"Retry-After": str(wait)})


def authentication_failed(conn: HTTPConnection) -> Problem:
    limiter(conn).failed(client_address(conn))
    return Problem(401, "unauthorized")


@answers(401, 429, bearer=True)
def current_user(request: Request, session: SessionDep) -> User:
    check_not_locked_out(request)
    token = bearer_token(request)
    user = user_by_token(session, token) if token else None
    if user is None:
        raise authentication_failed(request)
    request.state.user = user
    return user


CurrentUser = Annotated[User, Depends(current_user)]


def require_roles(*roles: Role) -> Callable[..., User]:
    """A dependency that lets only `roles` through (denials are audited)."""
    allowed = frozenset(roles)

    @answers(403)
    def check(request: Request, session: SessionDep, user: CurrentUser) -> User:
        if Role(user.role) not in allowed:
            deny(session, user, request, entity="route")
            raise Problem(403, "forbidden")
        return user

    return check


def deny(session: Session, user: User, request: Request, *, entity: str, entity_id: object = None,
         patient_id: int | None = None) -> None:
    """Write the denial to the audit log now, even though the request fails."""
    audit.record(session, user=user, action="denied", entity=entity, entity_id=entity_id,
                 patient_id=patient_id, route=f"{request.method} {request.url.path}")
    session.commit()


# What `patient_for` answers: a route that calls it says so with `responses=PATIENT_PROBLEMS` (a `patient_id`
# path or query parameter declares both even without it: `http.problem_statuses`).
PATIENT_PROBLEMS = problems(403, 404)


def patient_for(session: Session, user: User, request: Request, patient_id: int,
                *, action: str = "read") -> Patient:
    """The patient if `user` may see them, audited either way; else 403 (or 404 if absent)."""
    if not can_see_patient(session, user, patient_id):
        deny(session, user, request, entity="patient", entity_id=patient_id, patient_id=patient_id)
        raise Problem(403, "patient_forbidden")
    patient = session.get(Patient, patient_id)
    if patient is None:
        raise Problem(404, "not_found")
    audit.record(session, user=user, action=action, entity="patient", entity_id=patient_id,
                 patient_id=patient_id, route=f"{request.method} {request.url.path}")
    return patient
