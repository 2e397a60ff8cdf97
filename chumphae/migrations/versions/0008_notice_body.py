"""notice.body: the message as rendered at a notice's first try, so every retry sends the same bytes

Until now each try rendered the message again: an alert re-triggered or escalated between two tries made
a retry's webhook body (and signature) and LINE/SMS text differ from the first under the same idempotency
key, which a receiver's idempotency layer answers 422 (the notice then `failed` and the alert escalated).
Nullable: NULL before the first try, and again once the notice is done or its patient erased. Notices in
flight at the upgrade render at their next try and keep that.

Revision ID: 0008_notice_body
Revises: 0007_last_reading_at
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0008_notice_body'
down_revision = '0007_last_reading_at'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # a plain ADD COLUMN (no batch copy of the table on SQLite)
    op.add_column('notice', sa.Column('body', sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column('notice', 'body')
