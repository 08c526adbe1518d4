"""Queued jobs, batches, batch files and per-org webhook signing secrets.

Revision ID: 0004_jobs
Revises: 0003_limits
Create Date: 2026-12-03

Types are spelled out here rather than imported from app code (see 0001).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004_jobs"
down_revision: str | None = "0003_limits"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def timestamp(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("org_id", sa.String(40), nullable=False),
        sa.Column("principal", JSON, nullable=False),
        sa.Column("endpoint", sa.String(64), nullable=False),
        sa.Column("request", JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("result", JSON, nullable=True),
        sa.Column("error", JSON, nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("dead_letter", sa.Boolean(), nullable=False),
        sa.Column("idempotency_key", sa.String(200), nullable=True),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("webhook_url", sa.Text(), nullable=True),
        sa.Column("webhook_status", sa.String(16), nullable=True),
        sa.Column("webhook_attempts", JSON, nullable=False),
        sa.Column("batch_id", sa.String(40), nullable=True),
        sa.Column("batch_index", sa.Integer(), nullable=True),
        sa.Column("custom_id", sa.Text(), nullable=True),
        timestamp("created_at"),
        timestamp("updated_at"),
        timestamp("started_at", nullable=True),
        timestamp("finished_at", nullable=True),
        timestamp("expires_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_jobs"),
        sa.UniqueConstraint("org_id", "idempotency_key", name="uq_jobs_org_id_idempotency_key"),
    )
    op.create_index("ix_jobs_expires_at", "jobs", ["expires_at"])
    op.create_index("ix_jobs_org_id_created_at", "jobs", ["org_id", "created_at"])
    op.create_index("ix_jobs_batch_id_status", "jobs", ["batch_id", "status"])
    op.create_table(
        "job_batches",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("org_id", sa.String(40), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("endpoint", sa.String(64), nullable=False),
        sa.Column("input_file_id", sa.String(40), nullable=True),
        sa.Column("output_file_id", sa.String(40), nullable=True),
        sa.Column("error_file_id", sa.String(40), nullable=True),
        sa.Column("completion_window", sa.String(16), nullable=False),
        sa.Column("metadata", JSON, nullable=True),
        sa.Column("webhook_url", sa.Text(), nullable=True),
        timestamp("created_at"),
        timestamp("updated_at"),
        timestamp("finished_at", nullable=True),
        timestamp("cancelled_at", nullable=True),
        timestamp("expires_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_job_batches"),
    )
    op.create_index("ix_job_batches_org_id_created_at", "job_batches", ["org_id", "created_at"])
    op.create_table(
        "job_files",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("org_id", sa.String(40), nullable=False),
        sa.Column("purpose", sa.String(32), nullable=False),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("bytes", sa.Integer(), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        timestamp("created_at"),
        timestamp("expires_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_job_files"),
    )
    op.create_table(
        "webhook_secrets",
        sa.Column("org_id", sa.String(40), nullable=False),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
        timestamp("updated_at"),
        sa.ForeignKeyConstraint(["org_id"], ["orgs.id"], name="fk_webhook_secrets_org_id_orgs",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("org_id", name="pk_webhook_secrets"),
    )


def downgrade() -> None:
    op.drop_table("webhook_secrets")
    op.drop_table("job_files")
    op.drop_index("ix_job_batches_org_id_created_at", table_name="job_batches")
    op.drop_table("job_batches")
    op.drop_index("ix_jobs_batch_id_status", table_name="jobs")
    op.drop_index("ix_jobs_org_id_created_at", table_name="jobs")
    op.drop_index("ix_jobs_expires_at", table_name="jobs")
    op.drop_table("jobs")
