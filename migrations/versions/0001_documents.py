"""Document store: orgs, API keys, provider credentials, bridges and versions, threads.

Revision ID: 0001_documents
Revises:
Create Date: 2026-11-26

Types are spelled out here rather than imported from app code, so this revision keeps creating
the same schema however the application's table definitions evolve.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001_documents"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def timestamp(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def org_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["org_id"], ["orgs.id"], name=f"fk_{table}_org_id_orgs", ondelete="CASCADE"
    )


def upgrade() -> None:
    op.create_table(
        "orgs",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        timestamp("created_at"),
        timestamp("updated_at"),
        sa.PrimaryKeyConstraint("id", name="pk_orgs"),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("org_id", sa.String(40), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("prefix", sa.String(32), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("scopes", JSON, nullable=False),
        sa.Column("models", JSON, nullable=True),
        sa.Column("rpm", sa.Integer(), nullable=True),
        sa.Column("tpm", sa.Integer(), nullable=True),
        sa.Column("budget_usd", sa.Float(), nullable=True),
        sa.Column("budget_period", sa.String(16), nullable=True),
        timestamp("expires_at", nullable=True),
        timestamp("revoked_at", nullable=True),
        timestamp("created_at"),
        org_fk("api_keys"),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
        sa.UniqueConstraint("prefix", name="uq_api_keys_prefix"),
    )
    op.create_index("ix_api_keys_org_id", "api_keys", ["org_id"])
    op.create_table(
        "provider_credentials",
        sa.Column("org_id", sa.String(40), nullable=False),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
        timestamp("created_at"),
        timestamp("updated_at"),
        org_fk("provider_credentials"),
        sa.PrimaryKeyConstraint("org_id", "provider", name="pk_provider_credentials"),
    )
    op.create_table(
        "bridges",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("org_id", sa.String(40), nullable=False),
        sa.Column("slug", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("variables", JSON, nullable=False),
        sa.Column("params", JSON, nullable=False),
        sa.Column("response_format", JSON, nullable=True),
        sa.Column("tools", JSON, nullable=False),
        sa.Column("fallback_model", sa.String(200), nullable=True),
        sa.Column("published_version", sa.Integer(), nullable=True),
        sa.Column("latest_version", sa.Integer(), nullable=False),
        timestamp("created_at"),
        timestamp("updated_at"),
        org_fk("bridges"),
        sa.PrimaryKeyConstraint("id", name="pk_bridges"),
        sa.UniqueConstraint("org_id", "slug", name="uq_bridges_org_id_slug"),
    )
    op.create_table(
        "bridge_versions",
        sa.Column("bridge_id", sa.String(40), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.String(40), nullable=False),
        sa.Column("config", JSON, nullable=False),
        timestamp("created_at"),
        sa.ForeignKeyConstraint(
            ["bridge_id"], ["bridges.id"], name="fk_bridge_versions_bridge_id_bridges", ondelete="CASCADE"
        ),
        org_fk("bridge_versions"),
        sa.PrimaryKeyConstraint("bridge_id", "version", name="pk_bridge_versions"),
    )
    op.create_table(
        "threads",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("org_id", sa.String(40), nullable=False),
        sa.Column("bridge_id", sa.String(40), nullable=True),
        sa.Column("message_count", sa.Integer(), nullable=False),
        timestamp("created_at"),
        timestamp("updated_at"),
        org_fk("threads"),
        sa.ForeignKeyConstraint(
            ["bridge_id"], ["bridges.id"], name="fk_threads_bridge_id_bridges", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_threads"),
    )
    op.create_index("ix_threads_org_id_updated_at", "threads", ["org_id", "updated_at"])
    op.create_index("ix_threads_bridge_id", "threads", ["bridge_id"])
    op.create_table(
        "thread_messages",
        sa.Column("thread_id", sa.String(40), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("message", JSON, nullable=False),
        sa.ForeignKeyConstraint(
            ["thread_id"], ["threads.id"], name="fk_thread_messages_thread_id_threads", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("thread_id", "seq", name="pk_thread_messages"),
    )


def downgrade() -> None:
    for table in (
        "thread_messages",
        "threads",
        "bridge_versions",
        "bridges",
        "provider_credentials",
        "api_keys",
        "orgs",
    ):
        op.drop_table(table)
