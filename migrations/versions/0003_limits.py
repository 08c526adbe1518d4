"""Orgs and bridges carry limits as keys do: ``rpm``, ``tpm``, ``budget_usd``, ``budget_period``
(issue 8: the ``rate-limit`` and ``budget`` plugins apply them).

Revision ID: 0003_limits
Revises: 0002_thread_owner
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_limits"
down_revision: str | None = "0002_thread_owner"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = (("rpm", sa.Integer), ("tpm", sa.Integer), ("budget_usd", sa.Float), ("budget_period", sa.String(16)))


def upgrade() -> None:
    # Nullable, no default: adding them rewrites no rows, on PostgreSQL and SQLite alike.
    for table in ("orgs", "bridges"):
        for name, kind in _COLUMNS:
            op.add_column(table, sa.Column(name, kind, nullable=True))


def downgrade() -> None:
    for table in ("orgs", "bridges"):
        with op.batch_alter_table(table) as batch:
            for name, _ in reversed(_COLUMNS):
                batch.drop_column(name)
