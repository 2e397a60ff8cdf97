"""The migrated schema is the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from chumphae.db import upgrade
from chumphae.partitions import is_partition_name


def _not_a_partition(name: str | None, type_: str, _parents: object) -> bool:
    return not (type_ == "table" and name is not None and is_partition_name(name))


def test_upgrade_empty_database_to_head_matches_models(empty_engine: Engine) -> None:
    assert inspect(empty_engine).get_table_names() == []
    upgrade(empty_engine)
    tables = set(inspect(empty_engine).get_table_names())
    assert set(SQLModel.metadata.tables) <= tables
    with empty_engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True, "include_name": _not_a_partition})
        diff = compare_metadata(context, SQLModel.metadata)
        assert context.get_current_revision() is not None
    assert diff == []


def test_upgrade_is_idempotent(empty_engine: Engine) -> None:
    upgrade(empty_engine)
    upgrade(empty_engine)
    with empty_engine.connect() as conn:
        heads = MigrationContext.configure(conn).get_current_heads()
    assert len(heads) == 1
