"""Jobs are published to the queue after their insert committed (a transactional outbox): a
``job_outbox`` row per job stored but not yet confirmed by the queue, inserted with the job and
deleted once published; past its ``publish_by`` a sweep publishes the job (its server died first).

Revision ID: 0010_job_outbox
Revises: 0009_job_progress
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_job_outbox"
down_revision: str | None = "0009_job_progress"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "job_outbox",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("publish_by", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_job_outbox_publish_by", "job_outbox", ["publish_by"])


def downgrade() -> None:
    op.drop_index("ix_job_outbox_publish_by", table_name="job_outbox")
    op.drop_table("job_outbox")
