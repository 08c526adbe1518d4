"""The usage ledger: ``usage_events`` and its rollups; on TimescaleDB a hypertable with
continuous aggregates instead of writer-maintained rollups (see app/stores/metrics/timescale.py).

Revision ID: m0001_usage_ledger
Revises:
Create Date: 2026-12-03
"""

from collections.abc import Sequence
from typing import Any

from alembic import op

from junction.stores.metrics import timescale
from junction.stores.metrics.schema import metadata, rollup_hour, rollup_minute, usage_events

revision: str = "m0001_usage_ledger"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = (usage_events, rollup_minute, rollup_hour)


def upgrade(settings: Any = None) -> None:
    connection = op.get_bind()
    metadata.create_all(connection, tables=list(TABLES))
    wanted = settings is None or settings.metrics.timescaledb == "auto"
    if connection.dialect.name == "postgresql" and wanted and not op.get_context().as_sql:
        if timescale.extension_loadable(connection):
            timescale.create(connection)


def downgrade(settings: Any = None) -> None:
    connection = op.get_bind()
    if timescale.is_timescale(connection):
        timescale.drop(connection)
    metadata.drop_all(connection, tables=list(reversed(TABLES)))
