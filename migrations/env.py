"""Alembic environment for the document store (async-aware).

The URL comes from Junction's settings — ``config.attributes["settings"]`` as set by
``junction migrate``, else ``$JUNCTION_CONFIG`` / the built-in defaults — so Alembic has no URL
of its own. Three ways in:

* ``config.attributes["connection"]``: a sync connection lent by the running store
  (``AsyncConnection.run_sync``) — the store upgrading SQLite at start, and tests;
* online: an async engine (aiosqlite / asyncpg) driven by ``asyncio.run``;
* offline (``--sql``): SQL printed for a DBA to review.

A MongoDB documents store has no SQL schema: the run is a no-op that says so.
"""

from __future__ import annotations

import asyncio
import sys

from alembic import context
from sqlalchemy.engine import Connection

from junction.settings import Settings, load_settings
from junction.stores.documents.sql import VERSION_TABLE, metadata
from junction.stores.sql_engine import run_migrations_online

config = context.config


def documents_url() -> str:
    settings: Settings = config.attributes.get("settings") or load_settings()
    return settings.stores.documents


def configure_and_run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        # SQLite cannot ALTER most things in place; batch mode rebuilds the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()




def main() -> None:
    lent = config.attributes.get("connection")
    if lent is not None:
        configure_and_run(lent)
        return
    url = documents_url()
    if url.startswith("mongodb"):
        print(
            "junction migrate: the documents store is MongoDB; it has no SQL schema to migrate",
            file=sys.stderr,
        )
        return
    if context.is_offline_mode():
        context.configure(
            url=url,
            target_metadata=metadata,
            version_table=VERSION_TABLE,
            literal_binds=True,
            dialect_opts={"paramstyle": "named"},
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    asyncio.run(run_migrations_online(url, configure_and_run))


main()
