"""A bridge's ``knowledge``; RAG collections, their documents and chunks (embeddings as float32 bytes; see
``app/stores/documents/knowledge.py``).

Revision ID: 0008_knowledge
Revises: 0007_job_headers
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008_knowledge"
down_revision: str | None = "0007_job_headers"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("bridges", sa.Column("knowledge", JSON, nullable=True))
    op.create_table(
        "rag_collections",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("org_id", sa.String(40), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("embedding_model", sa.String(200), nullable=False),
        sa.Column("chunk_tokens", sa.Integer(), nullable=False),
        sa.Column("chunk_overlap", sa.Integer(), nullable=False),
        sa.Column("dimensions", sa.Integer(), nullable=True),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("documents", sa.Integer(), nullable=False),
        sa.Column("chunks", sa.Integer(), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["orgs.id"], name="fk_rag_collections_org_id_orgs", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_rag_collections"),
    )
    op.create_index("ix_rag_collections_org_id_created_at", "rag_collections", ["org_id", "created_at"])
    op.create_table(
        "rag_documents",
        sa.Column("collection_id", sa.String(40), nullable=False),
        sa.Column("id", sa.String(200), nullable=False),
        sa.Column("org_id", sa.String(40), nullable=False),
        sa.Column("metadata", JSON, nullable=False),
        sa.Column("chunks", sa.Integer(), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
        sa.ForeignKeyConstraint(["collection_id"], ["rag_collections.id"],
                                name="fk_rag_documents_collection_id_rag_collections", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("collection_id", "id", name="pk_rag_documents"),
    )
    op.create_table(
        "rag_chunks",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("collection_id", sa.String(40), nullable=False),
        sa.Column("document_id", sa.String(200), nullable=False),
        sa.Column("org_id", sa.String(40), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("metadata", JSON, nullable=False),
        sa.Column("embedding", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["collection_id"], ["rag_collections.id"],
                                name="fk_rag_chunks_collection_id_rag_collections", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_rag_chunks"),
    )
    op.create_index("ix_rag_chunks_collection_id_document_id", "rag_chunks", ["collection_id", "document_id"])


def downgrade() -> None:
    op.drop_table("rag_chunks")
    op.drop_table("rag_documents")
    op.drop_table("rag_collections")
    op.drop_column("bridges", "knowledge")
