"""Agents: HTTP tools bridges call server-side (``tools``), and the bridges' ``server_tools``,
``max_tool_rounds``, ``connected_bridges``, ``mcp_servers``, ``type`` and ``chatbot``, and
an index for a chatbot end user's latest thread (issue 11).

Revision ID: 0006_agents
Revises: 0005_responses
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006_agents"
down_revision: str | None = "0005_responses"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "tools",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("org_id", sa.String(40), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("description", sa.Text, nullable=True),
        sa.Column("parameters", JSON, nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("method", sa.String(8), nullable=False),
        sa.Column("timeout_seconds", sa.Float, nullable=False),
        sa.Column("bound", JSON, nullable=False),
        sa.Column("env_headers", JSON, nullable=False),
        sa.Column("secret_headers", JSON, nullable=False),
        sa.Column("key_id", sa.String(64), nullable=True),
        sa.Column("ciphertext", sa.LargeBinary, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["orgs.id"], name="fk_tools_org_id_orgs", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_tools"),
        sa.UniqueConstraint("org_id", "name", name="uq_tools_org_id_name"),
    )
    # Nullable, no default: adding them rewrites no rows; NULL reads as "none" / the default.
    op.add_column("bridges", sa.Column("server_tools", JSON, nullable=True))
    op.add_column("bridges", sa.Column("max_tool_rounds", sa.Integer, nullable=True))
    op.add_column("bridges", sa.Column("connected_bridges", JSON, nullable=True))
    op.add_column("bridges", sa.Column("mcp_servers", JSON, nullable=True))
    op.add_column("bridges", sa.Column("type", sa.String(16), nullable=True))
    op.add_column("bridges", sa.Column("chatbot", JSON, nullable=True))
    op.create_index("ix_threads_bridge_id_owner_created_at", "threads", ["bridge_id", "owner", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_threads_bridge_id_owner_created_at", table_name="threads")
    with op.batch_alter_table("bridges") as batch:
        batch.drop_column("chatbot")
        batch.drop_column("type")
        batch.drop_column("mcp_servers")
        batch.drop_column("connected_bridges")
        batch.drop_column("max_tool_rounds")
        batch.drop_column("server_tools")
    op.drop_table("tools")
