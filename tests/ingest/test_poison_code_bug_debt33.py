"""A message that breaks our own code is one message, not an outage (debt33), through a real gateway socket on
SQLite and PostgreSQL.

Before: a value the driver could not bind, a trigger's PL/pgSQL `RAISE` or a closed result object was taken for
"database unavailable" (1013, nothing acked), and a frame that broke the validator ended the session with 1011:
either way the gateway sent the same batch again, forever. Now that message alone is answered `unstorable`, kept
as a dead letter, counted and said once (without its content), and the rest of its batch is stored and acked;
a database that cannot be used still closes with 1013 and nothing acked."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from chumphae.ingest import envelope, service
from chumphae.ingest.service import is_unavailable
from chumphae.models import DeadLetter, IngestedMessage, PositionRecord
from tests.feed.liveserver import LiveServer, recv_json
from tests.ingest.conftest import BAND, Site
from tests.ingest.test_gateway_socket import frame, position, url
from tests.ingest.test_poison import NOW, _acks_until

SECRET = "3100500123456"  # a CID-like string the broken code quotes in its exception: it must reach no log line
BAD_LAT = 16.5447


def _batch() -> list[tuple[str, str]]:
    """Six positions of one band; the fourth (lat 16.5447) is the one that breaks something."""
    return [frame("position", position(NOW - timedelta(seconds=60 - i), lat=round(16.5444 + i * 0.0001, 4)))
            for i in range(6)]


def _bind_error(engine: Engine) -> Exception:
    """The error the driver itself raises for a value it cannot bind (sqlite3's `Error binding parameter`,
    psycopg's `cannot adapt type`), as SQLAlchemy hands it over."""
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT :v"), {"v": {"cid": SECRET}})
    except sa_exc.DBAPIError as exc:
        return exc
    raise AssertionError("the driver bound a dict")


def _closed_result_error(engine: Engine) -> Exception:
    with engine.connect() as conn:
        result = conn.execute(text("SELECT 1"))
        result.close()
        try:
            result.fetchall()
        except sa_exc.ResourceClosedError as exc:
            return exc
    raise AssertionError("a closed result was read")


def _in_store(monkeypatch: pytest.MonkeyPatch, bad: str, exc: Exception) -> None:
    """The storing code raises `exc` on message `bad` only (`_address` is asked once per message of a batch)."""
    real = service._address

    def address(m: envelope.Message) -> str | None:
        if m.id == bad:
            raise exc
        return real(m)

    monkeypatch.setattr(service, "_address", address)


def _in_validation(monkeypatch: pytest.MonkeyPatch, bad: str) -> None:
    """The validator has a bug that only frame `bad` reaches."""
    real = envelope.parse

    def parse(text_: str | bytes, **kw: Any) -> envelope.Message | envelope.Rejection:
        if bad in str(text_):
            raise TypeError(f"'NoneType' object is not subscriptable near {SECRET}")
        return real(text_, **kw)

    monkeypatch.setattr(envelope, "parse", parse)


BREAKS: dict[str, Callable[[pytest.MonkeyPatch, str, Engine], None]] = {
    "a value the driver cannot bind": lambda mp, bad, engine: _in_store(mp, bad, _bind_error(engine)),
    "a closed result read": lambda mp, bad, engine: _in_store(mp, bad, _closed_result_error(engine)),
    "a bug in the validator": lambda mp, bad, engine: _in_validation(mp, bad),
}


async def _isolated(server: LiveServer, site: Site, msgs: list[tuple[str, str]], bad: str,
                    caplog: pytest.LogCaptureFixture) -> None:
    """The batch sent back to back: `bad` alone refused, the rest acked and stored, the socket still useful."""
    with caplog.at_level(logging.WARNING, logger="chumphae"):
        async with connect(url(server), additional_headers=site.auth()) as ws:
            assert (await recv_json(ws))["type"] == "welcome"
            await asyncio.gather(*(ws.send(t) for _, t in msgs))
            acked, errors = await _acks_until(ws, {m for m, _ in msgs})
            after, pos = frame("position", position(NOW, lat=16.5460))
            await ws.send(pos)  # not closed: the next message is stored and acked
            assert await recv_json(ws) == {"type": "ack", "ids": [after]}
    assert [(e["id"], e["code"]) for e in errors] == [(bad, "unstorable")]
    assert acked == {m for m, _ in msgs} - {bad}
    with Session(site.world.engine) as s:
        stored = sorted(r.lat for r in s.exec(select(PositionRecord)).all())
        assert stored == sorted([float(f"{16.5444 + i * 0.0001:.4f}") for i in range(6) if i != 3] + [16.5460])
        letters = s.exec(select(DeadLetter)).all()
        assert [(d.msg_id, d.code, d.gateway_id) for d in letters] == [(bad, "unstorable", site.gateway_id)]
    counters = server.app.state.gateway_sockets.counters
    assert (counters.rejected["unstorable"], counters.dead_letters, counters.unavailable) == (1, 1, 0)
    said = [r.getMessage() for r in caplog.records if bad in r.getMessage()]
    assert len(said) == 1 and "unstorable" in said[0], said  # said once, by id
    for r in caplog.records:  # never the frame, the exception's text or the position
        line = r.getMessage() + (r.exc_text or "")
        assert SECRET not in line and BAND not in line and str(BAD_LAT) not in line, line


@pytest.mark.parametrize("breaks", list(BREAKS))
async def test_a_message_that_breaks_our_code_is_refused_alone_and_the_rest_stored(
        both_server: LiveServer, both_site: Site, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture, breaks: str) -> None:
    msgs = _batch()
    bad = msgs[3][0]
    BREAKS[breaks](monkeypatch, bad, both_site.world.engine)
    await _isolated(both_server, both_site, msgs, bad, caplog)


async def test_a_trigger_refusing_one_row_with_a_plain_raise_is_that_row_only(
        both_server: LiveServer, both_site: Site, caplog: pytest.LogCaptureFixture) -> None:
    """PL/pgSQL's `RAISE EXCEPTION` without an ERRCODE is SQLSTATE P0001, a ProgrammingError to psycopg (as a
    missing table is): it was taken for an unavailable database. Its text quotes the row: never logged."""
    engine = both_site.world.engine
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.execute(text(f"CREATE TRIGGER poison BEFORE INSERT ON position WHEN NEW.lat = {BAD_LAT} "
                              f"BEGIN SELECT RAISE(ABORT, 'poison row at {BAD_LAT}'); END"))
        else:
            conn.execute(text("CREATE FUNCTION poison() RETURNS trigger AS $$ BEGIN "
                              f"IF NEW.lat = {BAD_LAT} THEN RAISE EXCEPTION 'poison row at %', NEW.lat; "
                              "END IF; RETURN NEW; END $$ LANGUAGE plpgsql"))
            conn.execute(text("CREATE TRIGGER poison BEFORE INSERT ON position FOR EACH ROW EXECUTE FUNCTION poison()"))
    msgs = _batch()
    await _isolated(both_server, both_site, msgs, msgs[3][0], caplog)
    with Session(engine) as s:
        assert f"poison row at {BAD_LAT}" in s.exec(select(DeadLetter)).one().reason  # for a person to look at


def _away(engine: Engine) -> Exception:
    """What connecting to a database that is not there raises (SQLite: a folder that does not exist; PostgreSQL:
    nothing listening on the port)."""
    url_ = ("sqlite:////nonexistent-debt33/chumphae.db" if engine.dialect.name == "sqlite"
            else engine.url.set(host="127.0.0.1", port=1))
    away = create_engine(url_)
    try:
        with away.connect():
            pass
    except sa_exc.OperationalError as exc:
        return exc
    finally:
        away.dispose()
    raise AssertionError("connected to a database that is not there")


async def test_a_database_that_cannot_be_used_still_closes_1013_and_acks_nothing(
        both_server: LiveServer, both_site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    gone = _away(both_site.world.engine)

    def address(m: envelope.Message) -> str | None:
        raise gone

    monkeypatch.setattr(service, "_address", address)
    msgs = _batch()
    frames: list[dict[str, Any]] = []
    async with connect(url(both_server), additional_headers=both_site.auth()) as ws:
        await recv_json(ws)
        await asyncio.gather(*(ws.send(t) for _, t in msgs))
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                frames.append(await recv_json(ws, 15))
    assert frames == []  # no ack, no error: the gateway keeps every message
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
    with Session(both_site.world.engine) as s:
        assert s.exec(select(PositionRecord)).all() == [] and s.exec(select(DeadLetter)).all() == []
        assert s.exec(select(IngestedMessage)).all() == []
    counters = both_server.app.state.gateway_sockets.counters
    assert (counters.unavailable, counters.rejected["unstorable"]) == (1, 0)


def test_what_is_the_database_and_what_is_the_message(sqlite_engine: Engine) -> None:
    """The classification behind the two tests above, on real driver errors where they can be had."""
    bind = _bind_error(sqlite_engine)
    assert isinstance(bind, sa_exc.ProgrammingError) and not is_unavailable(bind)
    assert not is_unavailable(psycopg.ProgrammingError("cannot adapt type 'dict' using placeholder '%s'"))
    assert not is_unavailable(psycopg.errors.RaiseException("poison row"))
    assert not is_unavailable(sa_exc.ProgrammingError("INSERT", {}, psycopg.errors.RaiseException("poison row")))
    assert not is_unavailable(_closed_result_error(sqlite_engine))
    assert not is_unavailable(psycopg.errors.UniqueViolation("duplicate key"))
    # the database's: connection refused or lost, the pool's timeout, a missing table or schema, a read-only server
    assert is_unavailable(_away(sqlite_engine))
    assert is_unavailable(sa_exc.TimeoutError("QueuePool limit of size 5 overflow 10 reached"))
    assert is_unavailable(sa_exc.DBAPIError("INSERT", {}, psycopg.errors.UniqueViolation("x"),
                                            connection_invalidated=True))
    assert is_unavailable(sa_exc.ProgrammingError("INSERT", {}, psycopg.errors.UndefinedTable("no relation")))
    assert is_unavailable(psycopg.errors.UndefinedTable("relation does not exist"))
    assert is_unavailable(psycopg.errors.ReadOnlySqlTransaction("read-only transaction"))
    assert is_unavailable(psycopg.InterfaceError("the connection is closed"))
    assert is_unavailable(psycopg.OperationalError("connection refused"))
