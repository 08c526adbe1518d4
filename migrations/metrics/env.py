"""Alembic environment for the metrics store (the usage ledger), beside the documents store's.

Same three ways in as ``migrations/env.py`` (a lent connection, online, offline); the URL is
``[stores] metrics`` and the version table ``junction_metrics_version``, so both stores may
share one database.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from junction.settings import Settings, load_settings
from junction.stores.metrics.schema import VERSION_TABLE, metadata
from junction.stores.sql_engine import run_migrations_online

config = context.config


def settings() -> Settings:
    found: Settings | None = config.attributes.get("settings")
    if found is None:
        found = config.attributes["settings"] = load_settings()
    return found


def configure_and_run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        # The aggregates and TimescaleDB's own tables are not ours to compare.
        include_name=lambda name, kind, parent: kind != "table" or name in metadata.tables,
    )
    with context.begin_transaction():
        context.run_migrations(settings=settings())




def main() -> None:
    lent = config.attributes.get("connection")
    if lent is not None:
        configure_and_run(lent)
        return
    url = settings().stores.metrics
    if context.is_offline_mode():
        context.configure(url=url, target_metadata=metadata, version_table=VERSION_TABLE,
                          literal_binds=True, dialect_opts={"paramstyle": "named"})
        with context.begin_transaction():
            context.run_migrations(settings=settings())
        return
    asyncio.run(run_migrations_online(url, configure_and_run))


main()
