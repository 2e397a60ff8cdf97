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


def test_a_position_batch_whose_connection_dies_before_its_pipeline_is_stored_on_a_new_one(
        pg_site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    """The one-statement batch goes through the driver's own pipeline, whose errors SQLAlchemy never sees:
    the batch must still be retried on a new connection, not refused as poison."""
    from chumphae.ingest import service as ingest

    engine = pg_site.world.engine
    monkeypatch.setattr(db, "PING_IDLE_S", 3600.0)
    state = IngestState(pg_site.gateway_id)
    assert store(engine, gateway_id=pg_site.gateway_id, messages=_messages(0), state=state).stored == 1
    real = ingest._position_batch_pg
    killed: list[int] = []

    def kill_then_build(session: Session, *args: object) -> None:
        if not killed:  # the batch's connection is checked out: the server drops it now
            pid = int(session.connection().exec_driver_sql("SELECT pg_backend_pid()").scalar_one())
            _kill(pid)
            killed.append(pid)
        real(session, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(ingest, "_position_batch_pg", kill_then_build)
    # One message: were the driver's error taken for the message's fault, it would be refused as `unstorable`.
    result = store(engine, gateway_id=pg_site.gateway_id, messages=_messages(1), state=state)
    assert killed and (result.stored, len(result.acked), result.rejected, result.dead_letters) == (1, 1, [], 0)
    assert _pooled_pid(engine) != killed[0]
    with Session(engine) as s:
        assert len(s.exec(select(PositionRecord)).all()) == 2
