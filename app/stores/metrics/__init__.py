"""The metrics store: the usage ledger (``usage_events``), its rollups, writer and queries.

Backends by ``[stores] metrics`` URL: SQLite (the embedded default), PostgreSQL, and TimescaleDB
when the PostgreSQL server has the extension (detected when the ledger is first migrated).
"""
