"""Plain PostgreSQL: the database keeps the rollups itself. A statement-level trigger on
``usage_events`` sums each insert's rows into ``usage_rollup_minute`` / ``_hour`` /
``_hour_model`` (see app/stores/metrics/pg_rollups.py); the writer only ``COPY``s the events.
TimescaleDB (continuous aggregates) and SQLite (the writer sums) are unchanged.

Upgrading a ledger that nodes of the previous version still write to would count their batches
twice in the rollups (their writer adds its own sums): stop them before ``junction migrate``
(new nodes refuse to start on a schema that is not theirs either way).

Revision ID: m0003_rollup_trigger
Revises: m0002_model_rollup
Create Date: 2026-12-03
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from junction.stores.metrics import pg_rollups, timescale

revision: str = "m0003_rollup_trigger"
down_revision: str | None = "m0002_model_rollup"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _plain_postgresql() -> bool:
    connection = op.get_bind()
    if connection.dialect.name != "postgresql":
        return False
    # Offline SQL describes the plain branch (m0001 only builds the TimescaleDB one online).
    return op.get_context().as_sql or not timescale.is_timescale(connection)


def upgrade(settings: Any = None) -> None:
    if _plain_postgresql():
        for statement in pg_rollups.create_statements():
            op.execute(sa.text(statement))


def downgrade(settings: Any = None) -> None:
    if _plain_postgresql():
        for statement in pg_rollups.DROP_STATEMENTS:
            op.execute(sa.text(statement))
