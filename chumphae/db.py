"""The database at the edge: engine, sessions, and schema upgrades (Alembic).

The same code runs on SQLite (embedded default) and PostgreSQL (production).
Bad configuration fails here, at start, as a `ConfigError` with one clear line.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import orjson
from alembic import command
from alembic.config import Config
from sqlalchemy import event, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, DisconnectionError, OperationalError
from sqlmodel import Session, create_engine

import chumphae.models  # noqa: F401  (registers every table)
from chumphae.errors import ConfigError

MIGRATIONS = Path(__file__).parent / "migrations"
# A pooled PostgreSQL connection idle longer than this is pinged (`SELECT 1`) when checked out; one used more
# recently is taken as it is (a ping on every checkout was one round trip per batch and per alert).
PING_IDLE_S = 5.0
_RETURNED_AT = "chumphae_returned_at"

_engine: Engine | None = None
T = TypeVar("T")


def safe_url(url: str) -> str:
    """The URL with any password hidden, fit for a log line or an error."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable URL>"


def make_engine(url: str, *, check: bool = True, schema: str | None = None) -> Engine:
    """An engine for `url`; with `check`, connect once so a bad URL fails now.

    `schema` (PostgreSQL only) puts every table in that schema via search_path,
    so several installations or test runs can share one database.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(f"CHUMPHAE_DATABASE_URL is not a valid database URL: {exc}") from None
    # PDPA: SQL parameters are names, CIDs, positions: never in a log line or an exception's text.
    kwargs: dict[str, Any] = {"hide_parameters": True, "json_deserializer": json_loads}
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
    elif parsed.get_backend_name() == "postgresql":
        if parsed.get_driver_name() in ("", "psycopg2"):
            parsed = parsed.set(drivername="postgresql+psycopg")
        kwargs["connect_args"] = {"connect_timeout": 5}
        if schema:
            kwargs["connect_args"]["options"] = f"-csearch_path={schema}"
    else:
        raise ConfigError(
            f"unsupported database {parsed.get_backend_name()!r} in {safe_url(url)}: "
            "use sqlite:///PATH or postgresql://USER@HOST:PORT/DB"
        )
    try:
        engine = create_engine(parsed, **kwargs)
    except (ArgumentError, ImportError) as exc:
        raise ConfigError(f"cannot use database {safe_url(url)}: {exc}") from None
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "savepoint", _sqlite_savepoint)
    else:
        event.listen(engine.pool, "checkin", _returned)
        event.listen(engine.pool, "checkout", _ping_if_idle)
    if check:
        try:
            with engine.connect() as conn:
                found = conn.execute(text("SELECT 1" if engine.dialect.name == "sqlite" else "SELECT current_schema()"))
                schema_found = found.scalar() is not None
        except OperationalError as exc:
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
            raise ConfigError(f"cannot reach database {safe_url(url)}: {reason}") from None
        if not schema_found:  # a search_path naming no existing schema: every CREATE would fail with a traceback
            engine.dispose()
            raise ConfigError(f"database {safe_url(url)}: its search_path names no schema that exists; create it "
                              "first (CREATE SCHEMA name;), docs/postgresql.md §2")
    return engine


def json_loads(data: str | bytes | memoryview) -> Any:
    """JSON columns as read (a care manager's feed reads every position's payload): orjson, in C; what it
    does not take (an integer beyond 64 bits) the standard library reads as before."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(bytes(data) if isinstance(data, memoryview) else data)


def _returned(_dbapi_conn: Any, record: Any) -> None:
    if record is not None:
        record.info[_RETURNED_AT] = time.monotonic()


def _ping_if_idle(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
    """Ping a connection that sat in the pool longer than `PING_IDLE_S` (the server may have closed it
    meanwhile); a failed ping makes the pool discard it and connect anew. A connection lost within that
    time fails its first statement instead: the pool is then invalidated as a whole and the callers retry
    (ingest's `_attempt`, the feed's next read)."""
    returned = record.info.get(_RETURNED_AT)
    if returned is None or time.monotonic() - returned <= PING_IDLE_S:
        return
    try:
        if dbapi_conn.closed or not _ping(dbapi_conn):
            raise DisconnectionError("connection lost while idle in the pool")
    except DisconnectionError:
        raise
    except Exception as exc:  # the driver's own error for a dead connection
        raise DisconnectionError(f"connection lost while idle in the pool: {type(exc).__name__}") from exc


def _ping(dbapi_conn: Any) -> bool:
    """One `SELECT 1` outside any transaction (the connection is back in the pool, so none is open)."""
    autocommit = dbapi_conn.autocommit
    dbapi_conn.autocommit = True
    try:
        with dbapi_conn.cursor() as cur:
            cur.execute("SELECT 1")
            return bool(cur.fetchone())
    finally:
        if not dbapi_conn.closed:
            dbapi_conn.autocommit = autocommit


def retry_if_disconnected(engine: Engine, fn: Callable[[], T]) -> T:
    """`fn()`, once more if it failed on a connection the server had closed (a read: it may run twice).

    Pooled connections are pinged only after `PING_IDLE_S` idle, so one lost more recently fails its
    first statement; SQLAlchemy then invalidates the pool, and the second try gets a new connection."""
    try:
        return fn()
    except DBAPIError as exc:
        if not exc.connection_invalidated or engine.dialect.name == "sqlite":
            raise
    return fn()


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def _sqlite_savepoint(conn: Any, _name: str) -> None:
    """A SAVEPOINT outside a transaction would start one of its own that commits on RELEASE (pysqlite opens
    transactions only before DML), so `begin_nested()` would commit its part alone. Open the outer
    transaction first, with the write lock, since the nested part is about to write."""
    driver = conn.connection.driver_connection
    if driver is not None and not driver.in_transaction:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to `revision` (an empty database is created from nothing)."""
    command.upgrade(alembic_config(engine), revision)


def init_engine(url: str, *, migrate: bool = True) -> Engine:
    """Create the process-wide engine (the backend's start-up path)."""
    global _engine
    engine = make_engine(url)
    if migrate:
        upgrade(engine)
    _engine = engine
    return engine


def get_engine() -> Engine:
    if _engine is None:
        from chumphae.config import get_settings

        return init_engine(get_settings().effective_database_url)
    return _engine


def set_engine(engine: Engine | None) -> None:
    global _engine
    _engine = engine


@contextmanager
def session_scope(engine: Engine | None = None) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    with Session(engine or get_engine(), expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


@contextmanager
def one_process(engine: Engine, key: int) -> Iterator[bool]:
    """Whether this process holds the job named by `key` now: on PostgreSQL a session advisory lock
    (`pg_try_advisory_lock`), so of several backend processes one runs the job and the others skip it;
    SQLite is one process's database, so there it is always this one."""
    if engine.dialect.name != "postgresql":
        yield True
        return
    with engine.connect() as conn:
        got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar())
        conn.commit()
        try:
            yield got
        finally:
            if got:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                conn.commit()
