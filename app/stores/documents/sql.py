"""The SQL schema of the document store (SQLAlchemy Core), shared by SQLite and PostgreSQL.

The Alembic migrations in ``migrations/versions`` create exactly this; a test compares the two.
Nested values (scopes, variables, tools, messages...) are JSON columns (JSONB on PostgreSQL).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeEngine

#: Alembic's bookkeeping table for this store, so another store's migrations can share a database.
VERSION_TABLE = "junction_documents_version"

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Aware UTC datetimes in and out; SQLite stores them naive, PostgreSQL as timestamptz."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the document store; use aware UTC")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class _Json(sa.TypeDecorator[Any]):
    """JSON; JSONB on PostgreSQL. What ``sa.JSON().with_variant(JSONB(), "postgresql")`` was, but
    the PostgreSQL dialect package (~2 MB of RSS, all its drivers' modules) is imported only once a
    PostgreSQL engine compiles or runs a statement, not in every SQLite-served worker."""

    impl = sa.JSON
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import JSONB

            return dialect.type_descriptor(JSONB())
        return dialect.type_descriptor(sa.JSON())


Json: Any = _Json()
Id = sa.String(40)


#: The limits orgs and bridges carry, as keys do (migration 0003_limits added them).
LIMIT_COLUMNS: tuple[tuple[str, Any], ...] = (
    ("rpm", sa.Integer), ("tpm", sa.Integer), ("budget_usd", sa.Float), ("budget_period", sa.String(16)))


def _limit_columns() -> list[sa.Column[Any]]:
    return [sa.Column(name, kind, nullable=True) for name, kind in LIMIT_COLUMNS]


def _org_fk() -> sa.ForeignKey:
    return sa.ForeignKey("orgs.id", ondelete="CASCADE")


orgs = sa.Table(
    "orgs",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    *_limit_columns(),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("org_id", Id, _org_fk(), nullable=False, index=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("prefix", sa.String(32), nullable=False, unique=True),
    sa.Column("secret_hash", sa.String(64), nullable=False),
    sa.Column("scopes", Json, nullable=False),
    sa.Column("models", Json, nullable=True),
    sa.Column("rpm", sa.Integer, nullable=True),
    sa.Column("tpm", sa.Integer, nullable=True),
    sa.Column("budget_usd", sa.Float, nullable=True),
    sa.Column("budget_period", sa.String(16), nullable=True),
    sa.Column("expires_at", UTCDateTime, nullable=True),
    sa.Column("revoked_at", UTCDateTime, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

provider_credentials = sa.Table(
    "provider_credentials",
    metadata,
    sa.Column("org_id", Id, _org_fk(), primary_key=True),
    sa.Column("provider", sa.String(64), primary_key=True),
    sa.Column("key_id", sa.String(64), nullable=False),
    sa.Column("ciphertext", sa.LargeBinary, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

bridges = sa.Table(
    "bridges",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("org_id", Id, _org_fk(), nullable=False),
    sa.Column("slug", sa.String(64), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("model", sa.String(200), nullable=False),
    sa.Column("prompt", sa.Text, nullable=False),
    sa.Column("variables", Json, nullable=False),
    sa.Column("params", Json, nullable=False),
    sa.Column("response_format", Json, nullable=True),
    sa.Column("tools", Json, nullable=False),
    #: RAG collections the bridge answers from (migration 0008_knowledge).
    sa.Column("knowledge", Json, nullable=True),
    sa.Column("fallback_model", sa.String(200), nullable=True),
    sa.Column("published_version", sa.Integer, nullable=True),
    sa.Column("latest_version", sa.Integer, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    *_limit_columns(),
    # Agents (migration 0006_agents): NULL is "none" / the default.
    sa.Column("server_tools", Json, nullable=True),
    sa.Column("max_tool_rounds", sa.Integer, nullable=True),
    sa.Column("connected_bridges", Json, nullable=True),
    sa.Column("mcp_servers", Json, nullable=True),
    sa.Column("type", sa.String(16), nullable=True),
    sa.Column("chatbot", Json, nullable=True),
    sa.UniqueConstraint("org_id", "slug"),
)

bridge_versions = sa.Table(
    "bridge_versions",
    metadata,
    sa.Column("bridge_id", Id, sa.ForeignKey("bridges.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("org_id", Id, _org_fk(), nullable=False),
    sa.Column("config", Json, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

threads = sa.Table(
    "threads",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("org_id", Id, _org_fk(), nullable=False),
    sa.Column("bridge_id", Id, sa.ForeignKey("bridges.id", ondelete="CASCADE"), nullable=True, index=True),
    sa.Column("owner", sa.String(200), nullable=True),
    sa.Column("message_count", sa.Integer, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    # Listing an org's threads newest first.
    sa.Index(None, "org_id", "updated_at"),
    # A chatbot end user's latest thread (migration 0006_agents).
    sa.Index(None, "bridge_id", "owner", "created_at"),
)

thread_messages = sa.Table(
    "thread_messages",
    metadata,
    sa.Column("thread_id", Id, sa.ForeignKey("threads.id", ondelete="CASCADE"), primary_key=True),
    # 1-based position in the thread; the primary key makes "last N" an index range scan.
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("message", Json, nullable=False),
)

# --- queued jobs, batches, batch files (app/domain/jobs) -------------------------------------------
# Jobs of org-less callers (the master key) are kept under org "", so org_id is no foreign key;
# finished jobs leave through their expires_at (``[jobs] result_ttl_seconds``).

jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("org_id", Id, nullable=False),
    sa.Column("principal", Json, nullable=False),
    sa.Column("endpoint", sa.String(64), nullable=False),
    sa.Column("request", Json, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("result", Json, nullable=True),
    sa.Column("error", Json, nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("dead_letter", sa.Boolean, nullable=False),
    sa.Column("idempotency_key", sa.String(200), nullable=True),
    sa.Column("request_hash", sa.String(64), nullable=False),
    sa.Column("webhook_url", sa.Text, nullable=True),
    sa.Column("webhook_status", sa.String(16), nullable=True),
    sa.Column("webhook_attempts", Json, nullable=False),
    sa.Column("batch_id", Id, nullable=True),
    sa.Column("batch_index", sa.Integer, nullable=True),
    sa.Column("custom_id", sa.Text, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("started_at", UTCDateTime, nullable=True),
    sa.Column("finished_at", UTCDateTime, nullable=True),
    sa.Column("expires_at", UTCDateTime, nullable=True, index=True),
    # Request headers the job runs with (migration 0007_job_headers).
    sa.Column("headers", Json, nullable=False, server_default=sa.text("'{}'")),
    # How far a long job got (migration 0009_job_progress).
    sa.Column("progress", Json, nullable=True),
    # Same key + same org = same job (NULL keys never collide).
    sa.UniqueConstraint("org_id", "idempotency_key"),
    sa.Index(None, "org_id", "created_at"),
    # A batch's progress counts and its results in order.
    sa.Index(None, "batch_id", "status"),
)

job_batches = sa.Table(
    "job_batches",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("org_id", Id, nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("total", sa.Integer, nullable=False),
    sa.Column("endpoint", sa.String(64), nullable=False),
    sa.Column("input_file_id", Id, nullable=True),
    sa.Column("output_file_id", Id, nullable=True),
    sa.Column("error_file_id", Id, nullable=True),
    sa.Column("completion_window", sa.String(16), nullable=False),
    sa.Column("metadata", Json, nullable=True),
    sa.Column("webhook_url", sa.Text, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("finished_at", UTCDateTime, nullable=True),
    sa.Column("cancelled_at", UTCDateTime, nullable=True),
    sa.Column("expires_at", UTCDateTime, nullable=True),
    sa.Index(None, "org_id", "created_at"),
)

# The outbox (migration 0010_job_outbox): a row per job stored but not yet confirmed by the queue,
# inserted with the job and deleted once published. A table of its own, so clearing it deletes a
# small row instead of writing the job's wide one again (while a worker is updating it).
job_outbox = sa.Table(
    "job_outbox",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("publish_by", UTCDateTime, nullable=False, index=True),
)

job_files = sa.Table(
    "job_files",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("org_id", Id, nullable=False),
    sa.Column("purpose", sa.String(32), nullable=False),
    sa.Column("filename", sa.String(255), nullable=False),
    sa.Column("bytes", sa.Integer, nullable=False),
    sa.Column("content", sa.LargeBinary, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=True),
)

webhook_secrets = sa.Table(
    "webhook_secrets",
    metadata,
    sa.Column("org_id", Id, _org_fk(), primary_key=True),
    sa.Column("key_id", sa.String(64), nullable=False),
    sa.Column("ciphertext", sa.LargeBinary, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

#: Stored Responses (``POST /v1/responses`` with ``store``); ``org_id`` is NULL for the master key's
#: calls that name no org. See :mod:`junction.stores.documents.responses`.
responses = sa.Table(
    "responses",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("org_id", Id, _org_fk(), nullable=True, index=True),
    sa.Column("owner", sa.String(200), nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("response", Json, nullable=False),
    sa.Column("input_items", Json, nullable=False),
    sa.Column("context", Json, nullable=False),
)

#: HTTP tools bridges call server-side (see :mod:`junction.stores.documents.tools`); literal header
#: values only sealed, in ``ciphertext``.
tools = sa.Table(
    "tools",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("org_id", Id, _org_fk(), nullable=False),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("description", sa.Text, nullable=True),
    sa.Column("parameters", Json, nullable=False),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("method", sa.String(8), nullable=False),
    sa.Column("timeout_seconds", sa.Float, nullable=False),
    sa.Column("bound", Json, nullable=False),
    sa.Column("env_headers", Json, nullable=False),
    sa.Column("secret_headers", Json, nullable=False),
    sa.Column("key_id", sa.String(64), nullable=True),
    sa.Column("ciphertext", sa.LargeBinary, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("org_id", "name"),
)

#: RAG collections, their documents and chunks (see :mod:`junction.stores.documents.knowledge`).
rag_collections = sa.Table(
    "rag_collections",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("org_id", Id, _org_fk(), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("embedding_model", sa.String(200), nullable=False),
    sa.Column("chunk_tokens", sa.Integer, nullable=False),
    sa.Column("chunk_overlap", sa.Integer, nullable=False),
    sa.Column("dimensions", sa.Integer, nullable=True),
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("documents", sa.Integer, nullable=False),
    sa.Column("chunks", sa.Integer, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Index(None, "org_id", "created_at"),
)

rag_documents = sa.Table(
    "rag_documents",
    metadata,
    sa.Column("collection_id", Id, sa.ForeignKey("rag_collections.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("id", sa.String(200), primary_key=True),
    sa.Column("org_id", Id, nullable=False),
    sa.Column("metadata", Json, nullable=False),
    sa.Column("chunks", sa.Integer, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

rag_chunks = sa.Table(
    "rag_chunks",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("collection_id", Id, sa.ForeignKey("rag_collections.id", ondelete="CASCADE"), nullable=False),
    sa.Column("document_id", sa.String(200), nullable=False),
    sa.Column("org_id", Id, nullable=False),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("metadata", Json, nullable=False),
    sa.Column("embedding", sa.LargeBinary, nullable=False),
    sa.Index(None, "collection_id", "document_id"),
)
