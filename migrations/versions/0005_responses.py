"""Stored Responses (``POST /v1/responses`` with ``store``): one row per response, holding the
response object, its input items and the conversation it ended.

Revision ID: 0005_responses
Revises: 0004_jobs
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005_responses"
down_revision: str | None = "0004_jobs"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "responses",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("org_id", sa.String(40), nullable=True),
        sa.Column("owner", sa.String(200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("response", JSON, nullable=False),
        sa.Column("input_items", JSON, nullable=False),
        sa.Column("context", JSON, nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["orgs.id"], name="fk_responses_org_id_orgs", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_responses"),
    )
    op.create_index("ix_responses_org_id", "responses", ["org_id"])


def downgrade() -> None:
    op.drop_table("responses")
