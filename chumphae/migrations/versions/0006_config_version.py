"""config_version: a counter the database bumps whenever a gateway's site configuration may have changed

One row (id 1). Triggers on `wristband`, `patient`, `safe_zone`, `gateway` and `map_feature` bump it on
every insert and delete, and on updates of the columns `chumphae/ingest/siteconfig.py` builds the
configuration from (`CONFIG_COLUMNS`) — never on the last-seen, battery or health columns the ingest
writes with every batch. PostgreSQL: statement triggers (one bump per statement); SQLite: row triggers.

Revision ID: 0006_config_version
Revises: 0005_partitions
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0006_config_version'
down_revision = '0005_partitions'
branch_labels = None
depends_on = None

# table → the columns whose update can change a site configuration (None: every update)
CONFIG_COLUMNS: dict[str, tuple[str, ...] | None] = {
    "wristband": ("address", "model", "key_hex", "patient_id", "site", "active"),
    "patient": ("id", "adl_score", "nhso_group", "home_lat", "home_lon", "thresholds", "active"),
    "safe_zone": None,
    "gateway": ("slug", "site", "lat", "lon", "receivers", "config_version", "active"),
    "map_feature": None,
}
_BUMP = "UPDATE config_version SET version = version + 1 WHERE id = 1"


def upgrade() -> None:
    op.create_table(
        'config_version',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('version', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.execute("INSERT INTO config_version (id, version) VALUES (1, 1)")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"CREATE FUNCTION config_version_bump() RETURNS trigger LANGUAGE plpgsql AS "
                   f"$$ BEGIN {_BUMP}; RETURN NULL; END $$")
        for table, columns in CONFIG_COLUMNS.items():
            update = "UPDATE" if columns is None else f"UPDATE OF {', '.join(columns)}"
            truncate = " OR TRUNCATE" if columns is None else ""
            op.execute(f"CREATE TRIGGER {table}_config_version AFTER INSERT OR DELETE OR {update}{truncate} "
                       f"ON {table} FOR EACH STATEMENT EXECUTE FUNCTION config_version_bump()")
        return
    for table, columns in CONFIG_COLUMNS.items():
        for event in ("INSERT", "DELETE", "UPDATE" if columns is None else f"UPDATE OF {', '.join(columns)}"):
            name = f"{table}_config_version_{event.split()[0].lower()}"
            op.execute(f"CREATE TRIGGER {name} AFTER {event} ON {table} BEGIN {_BUMP}; END")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in CONFIG_COLUMNS:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_config_version ON {table}")
        op.execute("DROP FUNCTION IF EXISTS config_version_bump()")
    else:
        for table in CONFIG_COLUMNS:
            for event in ("insert", "delete", "update"):
                op.execute(f"DROP TRIGGER IF EXISTS {table}_config_version_{event}")
    op.drop_table('config_version')
