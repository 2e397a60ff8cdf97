"""A pooled PostgreSQL connection the server closed: replaced at checkout when it sat idle, retried when not.

The pool pings only connections idle longer than `chumphae.db.PING_IDLE_S` (a ping on every checkout was
one round trip per batch and per alert). These tests kill the pool's connection on the real server.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from chumphae import db
from chumphae.db import make_engine, upgrade
from chumphae.feed import log as feed_log
from chumphae.ingest import envelope
from chumphae.ingest.envelope import Message
from chumphae.ingest.service import IngestState, store
from chumphae.models import PositionRecord
from tests.conftest import PG_URL, build_world
from tests.ingest.conftest import Site, make_site
from tests.ingest.test_gateway_socket import frame, position

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_site(pg_schema_engine: Engine) -> Iterator[Site]:
    upgrade(pg_schema_engine)
    db.set_engine(pg_schema_engine)
    yield make_site(build_world(pg_schema_engine))


def _pooled_pid(engine: Engine) -> int:
    """The server pid of the connection the pool hands out next (the pool keeps the last one returned)."""
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


def _kill(pid: int) -> None:
    admin = make_engine(PG_URL)
    try:
        with admin.begin() as conn:
            assert conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar_one()
    finally:
        admin.dispose()


def _messages(k: int) -> list[Message]:
    t = datetime.now(UTC) - timedelta(seconds=60 - k)
    parsed = envelope.parse(frame("position", position(t))[1])
    assert isinstance(parsed, Message)
    return [parsed]


@pytest.mark.parametrize("idle", [True, False], ids=["idle-pinged", "fresh-retried"])
def test_a_batch_after_the_server_closed_the_pooled_connection_is_stored(
        pg_site: Site, monkeypatch: pytest.MonkeyPatch, idle: bool) -> None:
    engine = pg_site.world.engine
    state = IngestState(pg_site.gateway_id)
    assert store(engine, gateway_id=pg_site.gateway_id, messages=_messages(0), state=state).stored == 1
    dead = _pooled_pid(engine)
    _kill(dead)
    # idle: every connection counts as idle, so the checkout pings, finds it dead and connects anew;
    # fresh: no ping, the first statement fails, the pool is invalidated and the batch retried.
    monkeypatch.setattr(db, "PING_IDLE_S", -1.0 if idle else 3600.0)
    result = store(engine, gateway_id=pg_site.gateway_id, messages=_messages(1), state=state)
    assert result.stored == 1 and len(result.acked) == 1
    assert _pooled_pid(engine) != dead
    with Session(engine) as s:
        assert len(s.exec(select(PositionRecord)).all()) == 2
        assert feed_log.latest_cursor(s) > 0


def test_a_feed_read_after_the_server_closed_the_pooled_connection_is_retried(
        pg_site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = pg_site.world.engine
    monkeypatch.setattr(db, "PING_IDLE_S", 3600.0)
    _kill(_pooled_pid(engine))
    assert db.retry_if_disconnected(engine, lambda: _pooled_pid(engine)) > 0
