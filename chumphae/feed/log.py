"""The feed log: every change a caregiver should see, as a `feed_event` row whose id is the cursor.

Rows are written in the same transaction as the change they describe, so a
frame exists exactly when its change was committed. Cursors must never be
skipped by a reader: on PostgreSQL an id is taken from a sequence before its
transaction commits, so two writers could commit ids 11 then 10, and a
reader that already moved past 11 would never see 10. Writers therefore take
one transaction-scoped advisory lock before appending (`PG_LOCK_KEY`, held
through the commit's WAL flush); commit order is then id order. (SQLite has a
single writer, which gives the same guarantee.)

PostgreSQL grants that lock in arrival order, so an alert's writer would queue
behind every position batch of every process already waiting for it. Writers
of positions alone therefore first queue on a gate of their own
(`PG_GATE_KEY`), and ask for the writers' lock only once they hold it: at most
one position writer waits for (or holds) the writers' lock at any time, and an
alert's writer waits for that one at most, never for the queue behind it.
Order is unchanged (every writer still holds the writers' lock through its
commit). No writer waits for the gate while it holds the writers' lock (a
transaction that already appended takes no gate), so the two cannot deadlock.

On PostgreSQL the append also issues `pg_notify`, delivered only if and when
the transaction commits: that is how other backend processes wake up. Its
payload says what was written: `'alert'` when the rows include an alert, `''`
otherwise (positions). The sockets' alert lane wakes only for the first kind
(`chumphae.feed.fanout`); every wake-up, of either kind, makes the sockets
read everything after their cursor.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

import orjson
from sqlalchemy import event, func, insert, or_
from sqlalchemy import select as sa_select
from sqlalchemy.orm import Session as OrmSession
from sqlmodel import Session, select

from chumphae.aftercommit import FlaggedAfterCommit
from chumphae.models import FeedEvent
from chumphae.timeutil import utcnow

Statement = tuple[str, tuple[object, ...]]  # SQL with psycopg placeholders, its parameters
PG_CHANNEL = "chumphae_feed"
ALERT_PAYLOAD = "alert"  # the NOTIFY payload (and Redis message) of a commit that wrote alert rows; '' otherwise
PG_LOCK_KEY = 4005_0001  # advisory lock that orders feed writers (4005 = Chumphae's geocode)
PG_GATE_KEY = 4005_0005  # advisory lock position writers take first, one at a time (alerts skip it)
_LOCKED = "chumphae_feed_locked"  # session.info: this transaction has sent a statement that takes PG_LOCK_KEY
# After a commit that wrote feed rows, wake the sockets of this process (and, through fanout, of the
# others): `on_commit(hook)` registers, `off_commit(hook)` unregisters (fanout registers here). The hook is
# told whether the commit wrote alert rows (`hook(True)`) or only others (`hook(False)`).
_written = FlaggedAfterCommit("chumphae_feed_dirty")
on_commit, off_commit = _written.add, _written.remove


# ---- writes sent with the commit ------------------------------------------------------------------------------
# An alert change on PostgreSQL (`chumphae.alert.service`) is one statement that also appends its feed row under
# the writers' lock: it is kept on the session (`defer`) and sent in the commit's pipeline by
# `append_many_and_commit` / `commit_pipeline` (the ingest path), so the lock is held for the server's time only.
# Anything else that would have to see it first sends it on its own (`send_deferred`): an ORM statement of the
# same session, any append here, and a plain `session.commit()` (then it costs its own round trip).
_DEFERRED = "chumphae_feed_deferred"
RowsHook = Callable[[list[tuple[Any, ...]]], None]  # told the rows the statement returned, once it ran


def defer(session: Session, statement: Statement, on_rows: RowsHook | None = None, *, alert: bool = True) -> None:
    """PostgreSQL: send `statement` (one that appends feed rows under the writers' lock) with the commit;
    `alert`: whether those rows include an alert (its NOTIFY payload must then be `ALERT_PAYLOAD`)."""
    session.info.setdefault(_DEFERRED, []).append((statement, on_rows))
    _written.mark(session, alert)


def has_deferred(session: Session) -> bool:
    return bool(session.info.get(_DEFERRED))


def send_deferred(session: Session) -> None:
    """The deferred statements now, in one pipeline (one round trip), before whatever must see them."""
    pending: list[tuple[Statement, RowsHook | None]] = session.info.pop(_DEFERRED, None) or []
    if not pending:
        return
    session.info[_LOCKED] = True
    with _deferred_cursors(session, pending) as (driver, cursors), driver.pipeline():
        for cur, ((sql, params), _) in zip(cursors, pending, strict=True):
            cur.execute(sql, params)


def _gated(session: Session, alert: bool) -> bool:
    """Whether this transaction's next append queues on the positions' gate first: only for rows without an
    alert, and only if it has not yet taken the writers' lock (waiting for the gate while holding the lock
    could deadlock with the gate's holder, who waits for the lock)."""
    return not alert and not session.info.get(_LOCKED) and not session.info.get(_DEFERRED)


def _locks_sent(session: Session) -> None:
    session.info[_LOCKED] = True


def _rows_told(cursors: Sequence[Any], pending: Sequence[tuple[Statement, RowsHook | None]]) -> None:
    for cur, (_, on_rows) in zip(cursors, pending, strict=True):
        if on_rows is not None:
            on_rows(cur.fetchall() if cur.description is not None else [])


@event.listens_for(OrmSession, "do_orm_execute")
def _before_orm_read(state: Any) -> None:  # an ORM statement must see the deferred alert change
    if state.session.info.get(_DEFERRED):
        send_deferred(state.session)


@event.listens_for(OrmSession, "before_commit")
def _before_commit(session: OrmSession) -> None:  # a plain commit: flush, then the deferred statements
    if session.info.get(_DEFERRED):
        session.flush()
        send_deferred(session)  # type: ignore[arg-type]


@event.listens_for(OrmSession, "after_rollback")
def _after_rollback(session: OrmSession) -> None:
    if not session.in_transaction():
        session.info.pop(_DEFERRED, None)
        session.info.pop(_LOCKED, None)


@event.listens_for(OrmSession, "after_commit")
def _after_commit(session: OrmSession) -> None:  # the transaction's locks are released
    session.info.pop(_LOCKED, None)


def append(session: Session, *, kind: str, patient_id: int | None,
           payload: dict[str, object], with_insert: Statement | None = None) -> FeedEvent:
    """Add one feed row to the session's transaction; its id (the cursor) is known after flush.

    `with_insert` (PostgreSQL only): an `INSERT` (psycopg placeholders) sent in the same statement, ahead
    of the row (an alert's history row): one round trip for both."""
    if session.get_bind().dialect.name == "postgresql":
        # The lock is taken on every append (re-taking a held lock is cheap): a savepoint rolled back
        # may have released an earlier one. Lock, wake-up and row in one round trip; the row returned
        # is not added to the session (it is never changed).
        session.flush()  # the session's pending rows first (an alert's push notices)
        send_deferred(session)  # an earlier change's feed row first (cursor order is the transaction's order)
        now = utcnow()
        sql = _APPEND_PG_SQL
        params: tuple[object, ...] = (PG_LOCK_KEY, PG_CHANNEL, notify_payload(kind == "alert"), now, kind,
                                      patient_id, orjson.dumps(payload).decode())
        if _gated(session, kind == "alert"):
            sql, params = _GATED_APPEND_PG_SQL, (PG_GATE_KEY, *params)
        if with_insert is not None:
            sql, params = f"WITH also AS ({with_insert[0]}), {sql[len('WITH '):]}", (*with_insert[1], *params)
        _locks_sent(session)
        new_id = session.connection().exec_driver_sql(sql, params).scalar_one()
        _written.mark(session, kind == "alert")
        return FeedEvent(id=new_id, t=now, kind=kind, patient_id=patient_id, payload=payload)
    assert with_insert is None, "statements in psycopg's dialect need PostgreSQL"
    row = FeedEvent(kind=kind, patient_id=patient_id, payload=payload)
    session.add(row)
    session.flush()
    _written.mark(session, kind == "alert")
    return row


def append_many(session: Session, rows: Sequence[tuple[str, int | None, dict[str, object]]]) -> None:
    """Add many feed rows (kind, patient id, payload) in one statement, in this order.

    For the ingest hot path: the ids are not read back. Call it last in the
    transaction: on PostgreSQL it takes the writers' lock, held until commit.
    """
    if not rows:
        return
    if session.get_bind().dialect.name == "postgresql":
        send_deferred(session)
        # The lock, the wake-up and the rows in one round trip; the rows as array parameters (JSON as text).
        sql, params = _append_many(session, rows)
        _locks_sent(session)
        session.connection().exec_driver_sql(sql, params)
        _written.mark(session, _has_alert(rows))
        return
    now = utcnow()
    table = FeedEvent.__table__  # type: ignore[attr-defined]
    session.execute(insert(table), [{"t": now, "kind": kind, "patient_id": patient_id, "payload": payload}
                                    for kind, patient_id, payload in rows])
    _written.mark(session, _has_alert(rows))


def append_many_and_commit(session: Session, rows: Sequence[tuple[str, int | None, dict[str, object]]],
                           before: Sequence[Statement] = ()) -> None:
    """`append_many` as the transaction's last statement, then commit.

    On PostgreSQL the `before` statements (writes whose results nobody reads),
    the append (lock, notify, rows) and the `COMMIT` go to the server in one
    pipeline, one round trip: the writers' lock is held for the server's own
    time only (insert, WAL flush), never while this thread waits for the
    interpreter between two statements. `before` is PostgreSQL-only.
    """
    if session.get_bind().dialect.name != "postgresql":
        assert not before, "statements in psycopg's dialect need PostgreSQL"
        append_many(session, rows)
        session.commit()
        return
    if not rows and not before and not has_deferred(session):
        session.commit()
        return
    session.flush()
    append = _append_many(session, rows) if rows else None  # gated: positions alone, nothing appended before
    pending: list[tuple[Statement, RowsHook | None]] = session.info.pop(_DEFERRED, None) or []
    _locks_sent(session)
    with _deferred_cursors(session, pending) as (driver, cursors), driver.pipeline():
        for sql, params in before:
            driver.execute(sql, params)
        for cur, ((sql, params), _) in zip(cursors, pending, strict=True):  # after `before` (row locks),
            cur.execute(sql, params)  # then the feed lock: every writer takes them in this order
        if append is not None:
            driver.execute(*append)
        # COMMIT as a statement of the pipeline: the block's end sends one Sync for all (`driver.commit()`
        # here would sync once more at the block's end, a second round trip).
        driver.execute("COMMIT")
    if rows:
        _written.mark(session, _has_alert(rows))
    session.commit()  # the driver's transaction is over: this ends the session's (and wakes the feed)


def commit_pipeline(session: Session, *, before: Sequence[Statement], last: Statement) -> list[tuple[object, ...]]:
    """PostgreSQL: `before`, then `last` (a statement of positions that takes the gate `PG_GATE_KEY`, then the
    writers' lock, and appends feed rows, as `_GATED_APPEND_MANY_PG_SQL` does; no alert rows: its NOTIFY payload
    is `''`), then `COMMIT`, in one pipeline (one round trip); `last`'s rows returned. The feed sockets are
    woken after the commit. The transaction must not have taken the writers' lock yet (it would wait for the
    gate holding it); deferred alert statements go after `last`, under the lock it took."""
    assert not session.info.get(_LOCKED), "the positions' gate is taken before the writers' lock, never after"
    session.flush()
    pending: list[tuple[Statement, RowsHook | None]] = session.info.pop(_DEFERRED, None) or []
    _locks_sent(session)
    with _deferred_cursors(session, pending) as (driver, cursors), driver.cursor() as cur:
        with driver.pipeline():
            for sql, params in before:
                driver.execute(sql, params)
            cur.execute(*last)
            for dcur, ((sql, params), _) in zip(cursors, pending, strict=True):
                dcur.execute(sql, params)
            driver.execute("COMMIT")  # a statement of the pipeline: one Sync for all (append_many_and_commit)
        rows: list[tuple[object, ...]] = cur.fetchall()  # the block's end synced: the rows are here
    _written.mark(session, False)
    session.commit()  # the driver's transaction is over: this ends the session's (and wakes the feed)
    return rows


@contextmanager
def _deferred_cursors(session: Session, pending: Sequence[tuple[Statement, RowsHook | None]]
                      ) -> Iterator[tuple[Any, list[Any]]]:
    """The session's driver connection and one cursor per deferred statement, for a pipeline run in the
    block: their rows told to their hooks once the block ends well; a connection the block broke
    forgotten; the cursors closed either way."""
    driver = session.connection().connection.driver_connection
    assert driver is not None
    cursors = [driver.cursor() for _ in pending]
    try:
        yield driver, cursors
        _rows_told(cursors, pending)
    except Exception:
        _forget_if_broken(session, driver)
        raise
    finally:
        for cur in cursors:
            cur.close()


def _forget_if_broken(session: Session, driver: Any) -> None:
    """A connection the driver found closed or broken while sending a pipeline (its error is the driver's own,
    not SQLAlchemy's, so the pool would not know): invalidated, so the pool replaces it for the next try."""
    if driver.closed or driver.broken:
        session.connection().invalidate()


def notify_payload(alert: bool) -> str:
    """The NOTIFY payload of a commit whose feed rows include an alert (or not)."""
    return ALERT_PAYLOAD if alert else ""


def _has_alert(rows: Sequence[tuple[str, int | None, dict[str, object]]]) -> bool:
    return any(kind == "alert" for kind, _, _ in rows)


def _append_many(session: Session, rows: Sequence[tuple[str, int | None, dict[str, object]]]) -> Statement:
    """The statement appending `rows` (lock, wake-up, rows), through the positions' gate if `_gated`."""
    alert = _has_alert(rows)
    params = (PG_LOCK_KEY, PG_CHANNEL, notify_payload(alert), utcnow(), [kind for kind, _, _ in rows],
              [pid for _, pid, _ in rows], [orjson.dumps(payload).decode() for _, _, payload in rows])
    if _gated(session, alert):
        return _GATED_APPEND_MANY_PG_SQL, (PG_GATE_KEY, *params)
    return _APPEND_MANY_PG_SQL, params


# The writers' lock after the gate: `locked` reads `gate` (a CTE with a volatile function is evaluated once, when
# first read), so the gate is held before the lock is asked for.
_GATE_PG_SQL = "gate AS (SELECT pg_advisory_xact_lock(%s)), "
_APPEND_PG_SQL = (
    "WITH locked AS (SELECT pg_advisory_xact_lock(%s), pg_notify(%s, %s)) "
    "INSERT INTO feed_event (t, kind, patient_id, payload) SELECT %s, %s, %s, %s::json FROM locked RETURNING id")
_APPEND_MANY_PG_SQL = (
    "WITH locked AS (SELECT pg_advisory_xact_lock(%s), pg_notify(%s, %s)) "
    "INSERT INTO feed_event (t, kind, patient_id, payload) "
    "SELECT %s, u.k, u.p, u.j::json FROM locked, unnest(%b::text[], %b::int[], %b::text[]) "
    "WITH ORDINALITY AS u(k, p, j, n) ORDER BY u.n")
_GATED_APPEND_PG_SQL = _APPEND_PG_SQL.replace("WITH locked AS (SELECT ", "WITH " + _GATE_PG_SQL + "locked AS (SELECT ", 1
                                              ).replace("pg_notify(%s, %s)) ", "pg_notify(%s, %s) FROM gate) ", 1)
_GATED_APPEND_MANY_PG_SQL = _APPEND_MANY_PG_SQL.replace(
    "WITH locked AS (SELECT ", "WITH " + _GATE_PG_SQL + "locked AS (SELECT ", 1
).replace("pg_notify(%s, %s)) ", "pg_notify(%s, %s) FROM gate) ", 1)


def latest_cursor(session: Session) -> int:
    return int(session.exec(select(func.coalesce(func.max(FeedEvent.id), 0))).one() or 0)


def oldest_cursor(session: Session) -> int:
    return int(session.exec(select(func.coalesce(func.min(FeedEvent.id), 0))).one() or 0)


class FeedRow(Protocol):
    """A feed row as read for the sockets: its columns, without an ORM object."""

    id: int
    kind: str
    patient_id: int | None
    payload: dict[str, object]


def read_since(session: Session, *, cursor: int, patient_ids: Sequence[int] | None,
               unassigned: bool, limit: int = 200, kind: str | None = None) -> list[FeedRow]:
    """Rows after `cursor`, in cursor order, for these patients (None: all); only `kind` if given.

    `unassigned` adds rows with no patient (gateway alerts), which only
    district roles see. Plain rows, not ORM objects: a care manager's feed reads every position.
    """
    t = FeedEvent.__table__  # type: ignore[attr-defined]
    query = sa_select(t.c.id, t.c.kind, t.c.patient_id, t.c.payload).where(t.c.id > cursor)
    if kind is not None:
        query = query.where(t.c.kind == kind)
    if patient_ids is not None:
        wanted = t.c.patient_id.in_(list(patient_ids))
        query = query.where(or_(wanted, t.c.patient_id.is_(None)) if unassigned else wanted)
    elif not unassigned:
        query = query.where(t.c.patient_id.is_not(None))
    return list(session.connection().execute(query.order_by(t.c.id).limit(limit)).all())


