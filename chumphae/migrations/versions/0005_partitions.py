"""partitions: positions, feed rows and audit rows partitioned by Asia/Bangkok day on PostgreSQL

Each table is rebuilt with its rows (chumphae/partitions.py `rebuild`): a
partition for every day that holds rows, yesterday to today + 3, and a
default partition. The primary key becomes (id, t). SQLite: nothing changes.

Revision ID: 0005_partitions
Revises: 0004
"""

from __future__ import annotations

from alembic import op

from chumphae.partitions import PARTITIONED, is_partitioned, rebuild

revision = '0005_partitions'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name != "postgresql":
        return
    for table in PARTITIONED:
        if not is_partitioned(conn, table):
            rebuild(conn, table, partitioned=True)


def downgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name != "postgresql":
        return
    for table in PARTITIONED:
        if is_partitioned(conn, table):
            rebuild(conn, table, partitioned=False)
