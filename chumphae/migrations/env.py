"""Alembic environment: runs on the engine the app hands over (SQLite or PostgreSQL)."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

import chumphae.models  # noqa: F401
from chumphae.partitions import is_partition_name

config = context.config
target_metadata = SQLModel.metadata


def run_migrations_online() -> None:
    engine = config.attributes.get("engine")
    if engine is None:
        from chumphae.config import get_settings
        from chumphae.db import make_engine

        engine = make_engine(get_settings().effective_database_url)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
            include_name=include_name,
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


def include_name(name: str | None, type_: str, _parents: object) -> bool:
    """The daily partitions (chumphae/partitions.py) are not in the models: leave them out of comparisons."""
    return not (type_ == "table" and name is not None and is_partition_name(name))


run_migrations_online()
