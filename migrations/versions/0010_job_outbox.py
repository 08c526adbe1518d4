"""Jobs are published to the queue after their insert committed (a transactional outbox):
``jobs.publish_by`` is set until the queue confirmed the job's message, and past it a sweep
publishes the job (its server died before it could).

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
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("publish_by", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_jobs_publish_by", "jobs", ["publish_by"], postgresql_where=sa.text("publish_by IS NOT NULL"),
                    sqlite_where=sa.text("publish_by IS NOT NULL"))


def downgrade() -> None:
    op.drop_index("ix_jobs_publish_by", table_name="jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("publish_by")
