"""Daily partitions on the real PostgreSQL: the migration keeps rows (and goes back), every insert lands,
old days are dropped whole by the retention job, which one process runs at a time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from sqlalchemy import Connection, insert, text
from sqlalchemy.engine import Engine
from sqlmodel import Session

from chumphae import partitions
from chumphae.config import Settings
from chumphae.db import alembic_config, one_process, upgrade
from chumphae.models import AuditLog, FeedEvent, PositionRecord
from chumphae.retention import lock_key, prune
from chumphae.timeutil import bangkok_day_bounds, utcnow
from tests.factories import make_patient

pytestmark = pytest.mark.postgres

NOW = utcnow()


def _patient(engine: Engine) -> int:
    with Session(engine) as s:
        pid = make_patient(s).id
        s.commit()
    assert pid is not None
    return pid


def _add(conn: Connection, pid: int, t: datetime) -> None:
    """One row of each partitioned kind at `t`."""
    conn.execute(insert(PositionRecord.__table__), [  # type: ignore[attr-defined]
        {"patient_id": pid, "t": t, "lat": 16.5, "lon": 102.1, "uncertainty_m": 10.0, "source": "ble",
         "in_coverage": True, "received_at": t}])
    conn.execute(insert(FeedEvent.__table__), [{"t": t, "patient_id": pid, "kind": "position", "payload": {}}])  # type: ignore[attr-defined]
    conn.execute(insert(AuditLog.__table__), [  # type: ignore[attr-defined]
        {"t": t, "action": "read", "entity": "patient", "patient_id": pid, "detail": {}}])


def _rows(engine: Engine, table: str) -> list[tuple[int, datetime, str]]:
    """(id, t, the partition holding it) for every row, by id."""
    with engine.connect() as conn:
        return [(r[0], r[1], r[2]) for r in conn.execute(text(
            f'SELECT id, t, tableoid::regclass::text FROM "{table}" ORDER BY id')).all()]


def _kind(engine: Engine, table: str) -> str:
    with engine.connect() as conn:
        return str(conn.execute(text("SELECT relkind FROM pg_class WHERE oid = to_regclass(:t)"),
                                {"t": f'"{table}"'}).scalar())


def _key(engine: Engine, table: str) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(text(
            "SELECT a.attname FROM pg_constraint c JOIN pg_attribute a ON a.attrelid = c.conrelid "
            "AND a.attnum = ANY (c.conkey) WHERE c.conrelid = to_regclass(:t) AND c.contype = 'p' "
            "ORDER BY array_position(c.conkey, a.attnum)"), {"t": f'"{table}"'}).scalars())


def test_migration_from_0004_keeps_every_row_and_goes_back(pg_schema_engine: Engine) -> None:
    engine = pg_schema_engine
    upgrade(engine, "0004")
    pid = _patient(engine)
    times = [NOW - timedelta(days=20), NOW - timedelta(days=1), NOW, NOW - timedelta(days=20, hours=1)]
    with engine.begin() as conn:
        for t in times:
            _add(conn, pid, t)
    before = {table: [(i, t) for i, t, _ in _rows(engine, table)] for table in partitions.PARTITIONED}
    assert all(len(rows) == 4 for rows in before.values())

    upgrade(engine)
    for table in partitions.PARTITIONED:
        assert _kind(engine, table) == "p"
        assert _key(engine, table) == ["id", "t"]
        rows = _rows(engine, table)
        assert [(i, t) for i, t, _ in rows] == before[table]
        for _, t, where in rows:  # each row in the partition named after its Bangkok day
            assert where == partitions.day_name(table, partitions.bangkok_day(t))
    with engine.begin() as conn:  # the sequence goes on where it was
        _add(conn, pid, NOW)
    assert _rows(engine, "feed_event")[-1][0] == max(i for i, _ in before["feed_event"]) + 1

    command.downgrade(alembic_config(engine), "0004")
    for table in partitions.PARTITIONED:
        assert _kind(engine, table) == "r"
        assert _key(engine, table) == ["id"]
        assert [(i, t) for i, t, _ in _rows(engine, table)][:4] == before[table]
    upgrade(engine)
    assert len(_rows(engine, "position")) == 5


def test_inserts_land_for_any_day_and_a_new_day_takes_its_rows_from_the_default(pg_schema_engine: Engine) -> None:
    engine = pg_schema_engine
    upgrade(engine)
    pid = _patient(engine)
    today = partitions.bangkok_day(NOW)
    near = {NOW - timedelta(days=1): today - timedelta(days=1), NOW: today, NOW + timedelta(days=1): today + timedelta(days=1)}
    far = [NOW - timedelta(days=500), NOW + timedelta(days=40)]  # an old outbox, a clock far ahead
    with engine.begin() as conn:
        for t in [*near, *far]:
            _add(conn, pid, t)
    for table in partitions.PARTITIONED:
        where = {t: p for _, t, p in _rows(engine, table)}
        for t, day in near.items():
            assert where[t] == partitions.day_name(table, day)
        for t in far:
            assert where[t] == partitions.default_name(table)

    old_day = partitions.bangkok_day(far[0])
    with engine.begin() as conn:  # the job run as if on that day: its partition is made, its rows moved in
        made = partitions.ensure(conn, "position", today=old_day, ahead=0)
    assert made == [old_day - timedelta(days=1), old_day]
    where = {t: p for _, t, p in _rows(engine, "position")}
    assert where[far[0]] == partitions.day_name("position", old_day)
    assert where[far[1]] == partitions.default_name("position")
    assert len(where) == 5


def test_retention_drops_whole_old_days_and_one_process_runs_it(pg_schema_engine: Engine) -> None:
    engine = pg_schema_engine
    upgrade(engine)
    pid = _patient(engine)
    settings = Settings(retention_positions_days=30, retention_feed_days=30, retention_audit_days=30,
                        retention_messages_days=14)
    cutoff = NOW - timedelta(days=30)
    old_day = partitions.bangkok_day(NOW - timedelta(days=40))
    edge_day = partitions.bangkok_day(cutoff)  # the day the cutoff falls in: kept whole
    edge_start = bangkok_day_bounds(edge_day)[0]
    with engine.begin() as conn:
        for table in partitions.PARTITIONED:
            partitions.create_day(conn, table, old_day)
            partitions.create_day(conn, table, edge_day)
        for t in [NOW - timedelta(days=40), NOW - timedelta(days=40, hours=2), NOW - timedelta(days=500),
                  edge_start, NOW]:
            _add(conn, pid, t)

    with one_process(engine, lock_key(engine)) as first:  # another process holds the job: nothing happens
        assert first
        assert prune(engine, settings, now=NOW) == {}
        with engine.connect() as conn:
            assert old_day in {d.day for d in partitions.days(conn, "position")}

    assert prune(engine, settings, now=NOW) == {"positions": 3, "messages": 0, "feed": 3, "audit": 3}
    for table in partitions.PARTITIONED:
        with engine.connect() as conn:
            have = {d.day for d in partitions.days(conn, table)}
        assert old_day not in have and edge_day in have
        assert {t for _, t, _ in _rows(engine, table)} == {edge_start, NOW}
    assert prune(engine, settings, now=NOW) == {"positions": 0, "messages": 0, "feed": 0, "audit": 0}


def test_the_job_makes_the_days_ahead(pg_schema_engine: Engine) -> None:
    engine = pg_schema_engine
    upgrade(engine)
    later = NOW + timedelta(days=10)  # ten days without the job (a stopped backend)
    prune(engine, Settings(), now=later)
    day = partitions.bangkok_day(later)
    with engine.connect() as conn:
        for table in partitions.PARTITIONED:
            have = {d.day for d in partitions.days(conn, table)}
            assert {day + timedelta(days=n) for n in range(-1, partitions.AHEAD_DAYS + 1)} <= have


def test_partition_bounds_are_bangkok_midnights(pg_schema_engine: Engine) -> None:
    engine = pg_schema_engine
    upgrade(engine)
    day = partitions.bangkok_day(NOW)
    with engine.connect() as conn:
        conn.execute(text("SET TimeZone = 'UTC'"))  # how the bound is shown, not what it is
        bound = conn.execute(text("SELECT pg_get_expr(relpartbound, oid) FROM pg_class WHERE oid = to_regclass(:n)"),
                             {"n": partitions.day_name("position", day)}).scalar_one()
    lo, hi = bangkok_day_bounds(day)
    assert lo.astimezone(UTC).hour == 17  # 00:00+07
    assert f"'{lo.astimezone(UTC):%Y-%m-%d %H:%M:%S}+00'" in bound
    assert f"'{hi.astimezone(UTC):%Y-%m-%d %H:%M:%S}+00'" in bound


def test_a_drop_that_cannot_have_its_lock_waits_for_the_next_run(pg_schema_engine: Engine,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from chumphae import retention

    engine = pg_schema_engine
    upgrade(engine)
    pid = _patient(engine)
    old = NOW - timedelta(days=40)
    with engine.begin() as conn:
        partitions.create_day(conn, "position", partitions.bangkok_day(old))
        _add(conn, pid, old)
    monkeypatch.setattr(retention, "DROP_TRIES", 2)
    monkeypatch.setattr(retention, "DROP_PAUSE_S", 0.0)
    settings = Settings(retention_positions_days=30, retention_feed_days=0, retention_messages_days=0)
    with engine.connect() as reader:  # a long read of positions: the drop must not queue inserts behind it
        reader.execute(text("SELECT count(*) FROM position"))
        assert prune(engine, settings, now=NOW)["positions"] == 0
        with engine.connect() as conn:
            assert partitions.bangkok_day(old) in {d.day for d in partitions.days(conn, "position")}
        reader.rollback()
    assert prune(engine, settings, now=NOW)["positions"] == 1
