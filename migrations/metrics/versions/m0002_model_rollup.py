"""The hourly rollup by provider and model only (``usage_rollup_hour_model``; on TimescaleDB the
continuous aggregate ``usage_hour_model``), which questions across every org grouped or filtered
by model read instead of the per-org/key/bridge rows. On the writer-maintained branches it is
filled from ``usage_rollup_hour`` here; on TimescaleDB it refreshes like the other aggregates
(until then, real-time aggregation answers from the events).

Also drops the embedded SQLite ledger's index on ``usage_events.time``: nothing reads the events
there (the analytics API reads the rollups), and it cost every insert a fifth of its time.

Revision ID: m0002_model_rollup
Revises: m0001_usage_ledger
Create Date: 2026-12-03
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from junction.stores.metrics import timescale
from junction.stores.metrics.schema import (
    HISTOGRAM_COLUMNS,
    MEASURES,
    MODEL_DIMENSIONS,
    metadata,
    rollup_hour_model,
)

revision: str = "m0002_model_rollup"
down_revision: str | None = "m0001_usage_ledger"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _on_timescale() -> bool:
    connection = op.get_bind()
    return (connection.dialect.name == "postgresql" and not op.get_context().as_sql
            and timescale.is_timescale(connection))


_SQLITE_TIME_INDEX = "ix_usage_events_time"


def upgrade(settings: Any = None) -> None:
    connection = op.get_bind()
    if connection.dialect.name == "sqlite":
        op.execute(sa.text(f"DROP INDEX IF EXISTS {_SQLITE_TIME_INDEX}"))
    metadata.create_all(connection, tables=[rollup_hour_model])
    if _on_timescale():
        timescale.create_model_aggregate(connection)
        return
    summed = (*MEASURES, *HISTOGRAM_COLUMNS)
    columns = ", ".join(("bucket", *MODEL_DIMENSIONS, *summed))
    sums = ", ".join(f"sum({column})" for column in summed)
    op.execute(sa.text(f"INSERT INTO {rollup_hour_model.name} ({columns}) "
                       f"SELECT bucket, provider, model, {sums} FROM usage_rollup_hour GROUP BY bucket, provider, model"))


def downgrade(settings: Any = None) -> None:
    connection = op.get_bind()
    if _on_timescale():
        timescale.drop_model_aggregate(connection)
    metadata.drop_all(connection, tables=[rollup_hour_model])
    if connection.dialect.name == "sqlite":
        op.execute(sa.text(f"CREATE INDEX IF NOT EXISTS {_SQLITE_TIME_INDEX} ON usage_events (time)"))
