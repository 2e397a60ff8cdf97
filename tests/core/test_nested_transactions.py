"""A nested transaction (`begin_nested`, as `raise_alert` uses) rolls back with its outer transaction on
both databases: on SQLite the driver would otherwise let the SAVEPOINT start and commit a transaction alone,
leaving an alert without its feed row and notices after a failure in between."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session


def test_nested_part_rolls_back_with_the_outer_transaction(engine: Engine) -> None:
    with engine.connect() as conn:
        conn.exec_driver_sql("CREATE TABLE nested_probe (a INTEGER)")
        conn.commit()
    with Session(engine) as s:
        s.execute(text("SELECT 1"))  # a read first: the driver has no transaction open yet
        with s.begin_nested():
            s.execute(text("INSERT INTO nested_probe VALUES (1)"))
        s.rollback()  # the outer work failed: nothing of it may stay
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM nested_probe").scalar() == 0
    with Session(engine) as s:
        with s.begin_nested():
            s.execute(text("INSERT INTO nested_probe VALUES (2)"))
        s.commit()
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM nested_probe").scalar() == 1
