"""wristband.last_reading_at: the newest reading's time, the clock of battery, worn, charging and seq

Until now those followed `last_seen_at`, which positions move too, so a reading a second older than a
stored position (a gateway that sends positions first, or flushes after an outage) was acknowledged and
set nothing, even a band's first battery value. Existing rows start with NULL: their next reading applies.

Revision ID: 0007_last_reading_at
Revises: 0006_config_version
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import chumphae.models.types

revision = '0007_last_reading_at'
down_revision = '0006_config_version'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # a plain ADD COLUMN (no batch copy of the table on SQLite: that would drop 0006's triggers)
    op.add_column('wristband', sa.Column('last_reading_at', chumphae.models.types.UTCDateTime(timezone=True),
                                         nullable=True))


def downgrade() -> None:
    op.drop_column('wristband', 'last_reading_at')
