"""Threads record who started them (``owner``: ``key:<id>``, ``jwt:<subject>``, ``master``), so a
caller reads and continues only its own; threads from before this revision have none.

Revision ID: 0002_thread_owner
Revises: 0001_documents
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_thread_owner"
down_revision: str | None = "0001_documents"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable, no default: adding it rewrites no rows, on PostgreSQL and SQLite alike.
    op.add_column("threads", sa.Column("owner", sa.String(200), nullable=True))


def downgrade() -> None:
    # SQLite drops a column by rebuilding the table (batch mode); PostgreSQL alters in place.
    with op.batch_alter_table("threads") as batch:
        batch.drop_column("owner")
