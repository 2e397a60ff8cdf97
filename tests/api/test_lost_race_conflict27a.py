"""A write that loses a race to another of the same thing answers 409 `conflict`, as docs/mobile-api.md says
(review27a).

On PostgreSQL the loser's INSERT waits for the winner's transaction and fails at the route's own flush
(`register_band` flushes), not at the commit `get_session` guards: the answer was 500 `server_error`.
Here the winner is a transaction holding the same band address uncommitted while the request runs.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session

from chumphae.api.app import create_app
from chumphae.db import set_engine, upgrade
from chumphae.models import Patient, User
from chumphae.patients.bands import register_band
from tests.conftest import World, build_world

ADDRESS = "C0:CA:FE:27:0A:01"


@pytest.fixture
def pg_world(pg_schema_engine: Engine) -> Iterator[World]:
    upgrade(pg_schema_engine)
    set_engine(pg_schema_engine)
    yield build_world(pg_schema_engine)


def _someone_waits_on_a_lock(engine: Engine, other_than: int) -> None:
    for _ in range(2000):
        with engine.connect() as conn:
            waiting = conn.execute(text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                        "AND pid <> :p AND datname = current_database()"),
                                   {"p": other_than}).scalar()
        if waiting:
            return
        time.sleep(0.005)
    raise AssertionError("the request never waited for the other transaction")


def _band_fitted_twice_at_once(pg_world: World) -> httpx.Response:
    engine = pg_world.engine
    answers: list[httpx.Response] = []
    with TestClient(create_app(manage_engine=False), raise_server_exceptions=False) as client, \
            Session(engine, expire_on_commit=False) as winner:
        admin = winner.get(User, pg_world.users["admin"])
        other = winner.get(Patient, pg_world.other_patient)
        assert admin is not None and other is not None
        register_band(winner, user=admin, patient=other, address=ADDRESS)  # flushed, not committed
        pid = winner.connection().connection.driver_connection.info.backend_pid  # type: ignore[union-attr]

        def put() -> None:
            answers.append(client.put(f"/api/v1/patients/{pg_world.own_patient}/bands", json={"address": ADDRESS},
                                      headers=pg_world.auth("admin")))

        loser = threading.Thread(target=put)
        loser.start()
        _someone_waits_on_a_lock(engine, pid)
        winner.commit()
        loser.join(timeout=30)
        assert not loser.is_alive()
    (answer,) = answers
    return answer


@pytest.mark.postgres
def test_one_band_fitted_twice_at_once_answers_409_conflict(pg_world: World) -> None:
    answer = _band_fitted_twice_at_once(pg_world)
    assert answer.status_code == 409, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.json()["code"] == "conflict"


@pytest.mark.postgres
def test_a_lost_race_logs_one_warning_naming_the_route_and_constraint_but_no_value(
        pg_world: World, caplog: pytest.LogCaptureFixture) -> None:
    """debt30: a 409 `conflict` used to leave no trace, so a NOT NULL or foreign-key bug looked like a lost race.
    Now one WARNING names the operation and what was broken (from PostgreSQL's diagnostics), never a value: the
    band address (and PostgreSQL's DETAIL `Key (address)=(…)`) stays out."""
    with caplog.at_level(logging.WARNING, logger="chumphae"):
        answer = _band_fitted_twice_at_once(pg_world)
    assert answer.status_code == 409, answer.text
    lines = [r for r in caplog.records if r.name == "chumphae.api.deps"]
    assert len(lines) == 1, [r.getMessage() for r in caplog.records]
    (line,) = lines
    message = line.getMessage()
    assert line.levelno == logging.WARNING
    assert message.startswith("PUT /api/v1/patients/{patient_id}/bands: "), message
    assert "23505 UniqueViolation" in message and "table=wristband" in message and "constraint=" in message, message
    for value in (ADDRESS, ADDRESS.lower(), ADDRESS.replace(":", ""), "Key (", f"/patients/{pg_world.own_patient}/"):
        assert value not in message, (value, message)
    assert line.exc_info is None  # no traceback either: its text repeats the statement's parameters


@pytest.mark.postgres
def test_one_assignment_made_twice_at_once_answers_409_conflict_and_openapi_says_so(pg_world: World) -> None:
    from chumphae.auth.service import assign

    engine, caregiver = pg_world.engine, pg_world.users["caregiver"]
    answers: list[httpx.Response] = []
    with TestClient(create_app(manage_engine=False), raise_server_exceptions=False) as client, \
            Session(engine, expire_on_commit=False) as winner:
        assign(winner, user_id=caregiver, patient_id=pg_world.other_patient)  # flushed, not committed
        pid = winner.connection().connection.driver_connection.info.backend_pid  # type: ignore[union-attr]

        def post() -> None:
            answers.append(client.post(f"/api/v1/users/{caregiver}/patients",
                                       json={"patient_id": pg_world.other_patient}, headers=pg_world.auth("admin")))

        loser = threading.Thread(target=post)
        loser.start()
        _someone_waits_on_a_lock(engine, pid)
        winner.commit()
        loser.join(timeout=30)
        assert not loser.is_alive()
        doc = client.get("/openapi.json").json()
    (answer,) = answers
    assert answer.status_code == 409, answer.text
    assert answer.json()["code"] == "conflict"
    for path, method in (("/api/v1/users/{user_id}/patients", "post"), ("/api/v1/patients/{patient_id}/bands", "put")):
        assert "`conflict`" in doc["paths"][path][method]["responses"]["409"]["description"], (method, path)
