"""Shared fixtures: databases (SQLite always, PostgreSQL when a server answers), app clients, factories."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session

from chumphae.db import make_engine, set_engine, upgrade
from chumphae.errors import ConfigError

PG_URL = os.environ.get("CHUMPHAE_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture(autouse=True)
def _isolated_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No test reads the developer's .env or data directory."""
    from chumphae.config import reset_settings

    monkeypatch.chdir(tmp_path)
    for key in list(os.environ):
        if key.startswith("CHUMPHAE_") and key != "CHUMPHAE_TEST_PG_URL":
            monkeypatch.delenv(key)
    monkeypatch.setenv("CHUMPHAE_DATA_DIR", str(tmp_path / "data"))
    reset_settings()
    yield
    reset_settings()
    set_engine(None)


def _pg_admin_engine() -> Engine:
    try:
        return make_engine(PG_URL)
    except ConfigError as exc:
        pytest.skip(f"PostgreSQL not reachable at CHUMPHAE_TEST_PG_URL ({exc}); start it or set the URL")


@pytest.fixture
def pg_schema_engine() -> Iterator[Engine]:
    """An empty PostgreSQL schema of its own (dropped afterwards), so runs never collide."""
    admin = _pg_admin_engine()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = make_engine(PG_URL, schema=schema)
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'test.db'}")
    yield engine
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_engine(request: pytest.FixtureRequest) -> Engine:
    """An empty database, once on SQLite and once on PostgreSQL."""
    name = "sqlite_engine" if request.param == "sqlite" else "pg_schema_engine"
    return request.getfixturevalue(name)


@pytest.fixture
def engine(empty_engine: Engine) -> Engine:
    """A migrated database on both backends."""
    upgrade(empty_engine)
    return empty_engine


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    with Session(engine, expire_on_commit=False) as s:
        yield s


@pytest.fixture
def app_engine(sqlite_engine: Engine) -> Engine:
    upgrade(sqlite_engine)
    set_engine(sqlite_engine)
    return sqlite_engine


@pytest.fixture
def client(app_engine: Engine) -> Iterator[TestClient]:
    from chumphae.api.app import create_app

    with TestClient(create_app(manage_engine=False)) as c:
        yield c


@dataclass
class World:
    """A small district: two patients, each with their own caregiver and volunteer."""

    engine: Engine
    tokens: dict[str, str]  # role name → token
    users: dict[str, int]
    own_patient: int  # cared for by "caregiver" and "volunteer"
    other_patient: int  # cared for by "volunteer2" only

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"} if who in self.tokens else {}


def build_world(engine: Engine) -> World:
    from chumphae.auth.service import assign, create_user
    from tests.factories import make_patient

    tokens: dict[str, str] = {}
    users: dict[str, int] = {}
    with Session(engine, expire_on_commit=False) as s:
        p1 = make_patient(s, name_th="ผู้ป่วยหนึ่ง", cid="1409900000011")
        p2 = make_patient(s, name_th="ผู้ป่วยสอง", cid="1409900000022")
        for who, role in [("caregiver", "caregiver"), ("volunteer", "volunteer"),
                          ("volunteer2", "volunteer"), ("care_manager", "care_manager"),
                          ("hospital", "hospital"), ("admin", "admin")]:
            user, token = create_user(s, name=who, role=role)
            tokens[who], users[who] = token, user.id  # type: ignore[assignment]
        assign(s, user_id=users["caregiver"], patient_id=p1.id)  # type: ignore[arg-type]
        assign(s, user_id=users["volunteer"], patient_id=p1.id, relation="volunteer")  # type: ignore[arg-type]
        assign(s, user_id=users["volunteer2"], patient_id=p2.id, relation="volunteer")  # type: ignore[arg-type]
        s.commit()
        return World(engine, tokens, users, p1.id, p2.id)  # type: ignore[arg-type]


@pytest.fixture
def world(app_engine: Engine) -> World:
    return build_world(app_engine)
