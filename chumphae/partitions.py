"""Daily partitions on PostgreSQL: positions, feed rows and audit rows, one partition per Asia/Bangkok day.

`position`, `feed_event` and `audit_log` are declaratively partitioned by
RANGE on `t` (PostgreSQL only; SQLite keeps plain tables). A partition holds
one Bangkok calendar day, 00:00+07 to the next 00:00+07, and is named
`<table>_pYYYYMMDD` after that day; the day a report or a retention cutoff
speaks of is then exactly one partition. The primary key is `(id, t)` (a
partitioned table's keys must hold the partition column); ids still come
from the table's one sequence, so `id` alone stays unique and the feed
cursor is still the id.

An insert never fails for lack of a partition: each table has a DEFAULT
partition (`<table>_default`) that takes any row outside the daily ones (a
gateway replaying an old outbox, a clock a day off, a test's row from 500
days ago), and `ensure` creates the days ahead (today + `AHEAD_DAYS`) and
yesterday. When a day is created while the default partition holds rows of
it, they are moved into the new partition in the same transaction.

Old data goes whole days at a time: the partitions that end at or before the
retention cutoff are dropped (`old_days`, `drop_day`) (a row is kept at most one day longer
than configured), and rows in the default partition older than the cutoff
are deleted by the caller (chumphae/retention.py). Every DDL statement here
runs with a short `lock_timeout`, so the job gives up (and tries again
later) rather than queue the ingest path behind it for long.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import Connection, text

from chumphae.timeutil import bangkok_day_bounds, to_bangkok, utcnow

log = logging.getLogger(__name__)

# Partitioned table → its partition column.
PARTITIONED: dict[str, str] = {"position": "t", "feed_event": "t", "audit_log": "t"}
AHEAD_DAYS = 3
LOCK_TIMEOUT = "2s"  # making a day: blocks only inserts routed to the default partition
DROP_LOCK_TIMEOUT = "200ms"  # dropping a day: inserts into the table wait behind it
_NAME = re.compile(r"^(?P<table>[a-z_]+)_(?:p(?P<day>\d{8})|default)$")


def day_name(table: str, day: date) -> str:
    return f"{table}_p{day:%Y%m%d}"


def default_name(table: str) -> str:
    return f"{table}_default"


def is_partition_name(name: str) -> bool:
    """Whether `name` is one of our partitions (the schema comparison leaves them out)."""
    m = _NAME.match(name)
    return bool(m and m["table"] in PARTITIONED)


def bangkok_day(t: datetime) -> date:
    return to_bangkok(t).date()


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _bound(t: datetime) -> str:
    return f"'{t.isoformat()}'"


def is_partitioned(conn: Connection, table: str) -> bool:
    if conn.dialect.name != "postgresql":
        return False
    kind = conn.execute(text("SELECT relkind FROM pg_class WHERE oid = to_regclass(:t)"), {"t": _q(table)}).scalar()
    return kind == "p"


@dataclass(frozen=True, slots=True)
class Day:
    name: str
    day: date


def days(conn: Connection, table: str) -> list[Day]:
    """The daily partitions of `table`, oldest first (the default partition is not one)."""
    names = conn.execute(text(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = to_regclass(:t)"), {"t": _q(table)}).scalars().all()
    out = []
    for name in names:
        m = _NAME.match(name)
        if m and m["day"]:
            out.append(Day(name, datetime.strptime(m["day"], "%Y%m%d").date()))
    return sorted(out, key=lambda d: d.day)


def create_day(conn: Connection, table: str, day: date) -> int:
    """Add the partition for `day` (rows of that day in the default partition move into it); rows moved."""
    column = PARTITIONED[table]
    lo, hi = bangkok_day_bounds(day)
    name, default = _q(day_name(table, day)), _q(default_name(table))
    conn.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
    # Rows for this day may sit in the default partition; nobody may add one while they move.
    conn.execute(text(f"LOCK TABLE {default} IN ACCESS EXCLUSIVE MODE"))
    conn.execute(text(f"CREATE TABLE {name} (LIKE {_q(table)} INCLUDING DEFAULTS)"))
    moved = conn.execute(text(
        f"WITH moved AS (DELETE FROM {default} WHERE {column} >= :lo AND {column} < :hi RETURNING *) "
        f"INSERT INTO {name} SELECT * FROM moved"), {"lo": lo, "hi": hi}).rowcount or 0
    conn.execute(text(f"ALTER TABLE {_q(table)} ATTACH PARTITION {name} "
                      f"FOR VALUES FROM ({_bound(lo)}) TO ({_bound(hi)})"))
    return moved


def ensure(conn: Connection, table: str, *, today: date | None = None, ahead: int = AHEAD_DAYS) -> list[date]:
    """Create the missing partitions from yesterday to today + `ahead` (Bangkok days); the days created."""
    today = today or bangkok_day(utcnow())
    have = {d.day for d in days(conn, table)}
    made = []
    for n in range(-1, ahead + 1):
        day = today + timedelta(days=n)
        if day not in have:
            moved = create_day(conn, table, day)
            made.append(day)
            if moved:
                log.info("partitions: %s rows of %s moved from %s's default partition", moved, day, table)
    return made


def old_days(conn: Connection, table: str, cutoff: datetime) -> list[Day]:
    """The daily partitions that end at or before `cutoff`, oldest first."""
    return [d for d in days(conn, table) if bangkok_day_bounds(d.day)[1] <= cutoff]


def drop_day(conn: Connection, day: Day) -> int:
    """Drop one daily partition; the rows it held.

    DROP takes an ACCESS EXCLUSIVE lock on the parent table: while it waits for that lock, inserts queue
    behind it, so it waits at most `DROP_LOCK_TIMEOUT` and the caller tries again later.
    """
    conn.execute(text(f"SET LOCAL lock_timeout = '{DROP_LOCK_TIMEOUT}'"))
    rows = int(conn.execute(text(f"SELECT count(*) FROM {_q(day.name)}")).scalar_one())
    conn.execute(text(f"DROP TABLE {_q(day.name)}"))
    return rows


def delete_default_before(conn: Connection, table: str, cutoff: datetime, *, batch: int) -> int:
    """Delete up to `batch` rows older than `cutoff` from the default partition; rows deleted."""
    column, default = PARTITIONED[table], _q(default_name(table))
    return conn.execute(text(
        f"DELETE FROM {default} WHERE ctid IN (SELECT ctid FROM {default} WHERE {column} < :c LIMIT :n)"),
        {"c": cutoff, "n": batch}).rowcount or 0


# -- conversion (the migration) ----------------------------------------------------------------------

def rebuild(conn: Connection, table: str, *, partitioned: bool, today: date | None = None) -> None:
    """Turn the plain `table` into a partitioned one (or back), keeping its rows, sequence, indexes and keys.

    The table is renamed aside, a new one made with the same columns and defaults (so `id` keeps drawing
    from the same sequence), the rows copied, then the primary key, indexes and foreign keys re-created under
    their old names, and the old table dropped. Runs in the caller's transaction.
    """
    column = PARTITIONED[table]
    q = _q(table)
    aside = f"{table}_rebuild"
    params = {"t": q}
    seq = conn.execute(text("SELECT pg_get_serial_sequence(:t, 'id')"), params).scalar()
    pk = conn.execute(text("SELECT conname FROM pg_constraint WHERE conrelid = to_regclass(:t) AND contype = 'p'"),
                      params).scalar()
    indexes = conn.execute(text(
        "SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
        "WHERE x.indrelid = to_regclass(:t) AND NOT x.indisprimary ORDER BY i.relname"), params).all()
    fks = conn.execute(text(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = to_regclass(:t) AND contype = 'f' ORDER BY conname"), params).all()

    conn.execute(text(f"ALTER TABLE {q} RENAME TO {_q(aside)}"))
    for name, _ in indexes:
        conn.execute(text(f"DROP INDEX {_q(name)}"))
    for name, _ in fks:
        conn.execute(text(f"ALTER TABLE {_q(aside)} DROP CONSTRAINT {_q(name)}"))
    if pk:
        conn.execute(text(f"ALTER TABLE {_q(aside)} RENAME CONSTRAINT {_q(pk)} TO {_q(aside + '_pkey')}"))
    if seq:
        conn.execute(text(f"ALTER SEQUENCE {seq} OWNED BY NONE"))

    tail = f" PARTITION BY RANGE ({column})" if partitioned else ""
    conn.execute(text(f"CREATE TABLE {q} (LIKE {_q(aside)} INCLUDING DEFAULTS){tail}"))
    if partitioned:
        conn.execute(text(f"CREATE TABLE {_q(default_name(table))} PARTITION OF {q} DEFAULT"))
        today = today or bangkok_day(utcnow())
        wanted = set(conn.execute(text(
            f"SELECT DISTINCT ({column} AT TIME ZONE 'Asia/Bangkok')::date FROM {_q(aside)}")).scalars())
        wanted |= {today + timedelta(days=n) for n in range(-1, AHEAD_DAYS + 1)}
        for day in sorted(wanted):
            lo, hi = bangkok_day_bounds(day)
            conn.execute(text(f"CREATE TABLE {_q(day_name(table, day))} PARTITION OF {q} "
                              f"FOR VALUES FROM ({_bound(lo)}) TO ({_bound(hi)})"))
    conn.execute(text(f"INSERT INTO {q} SELECT * FROM {_q(aside)}"))
    key = f"id, {column}" if partitioned else "id"
    conn.execute(text(f"ALTER TABLE {q} ADD CONSTRAINT {_q(pk or table + '_pkey')} PRIMARY KEY ({key})"))
    for _, definition in indexes:
        conn.execute(text(definition.replace(" ON ONLY ", " ON ", 1)))
    for name, definition in fks:
        conn.execute(text(f"ALTER TABLE {q} ADD CONSTRAINT {_q(name)} {definition}"))
    if seq:
        conn.execute(text(f"ALTER SEQUENCE {seq} OWNED BY {q}.id"))
    conn.execute(text(f"DROP TABLE {_q(aside)} CASCADE"))
