"""The document store: one repository Protocol (:mod:`.protocol`), backends chosen by URL scheme.

* ``sqlite+aiosqlite:///path.db`` — embedded default; ``start()`` creates or upgrades the schema.
* ``postgresql+asyncpg://...`` — production SQL; ``start()`` refuses to run on a schema that is not
  at the newest migration (run ``junction migrate`` first, once, from one place). Each worker's
  connection pool is set in the URL's query: ``?pool_size=5&max_overflow=10&pool_timeout=10&
  pool_recycle=1800`` (the defaults; see :class:`.sql_store.PoolOptions`), checked when the store
  is built, so a bad value stops start-up.
* ``mongodb://...`` / ``mongodb+srv://...`` — MongoDB through beanie; indexes created at start.
"""

from __future__ import annotations

from junction.errors import ConfigError
from junction.security.crypto import Cipher
from junction.stores.documents.protocol import DocumentStore
from junction.stores.notify import ChangeBus

SQL_SCHEMES = ("sqlite+aiosqlite", "postgresql+asyncpg")
MONGO_SCHEMES = ("mongodb", "mongodb+srv")


def url_scheme(url: str) -> str:
    return url.split("://", 1)[0].lower() if "://" in url else ""


def open_document_store(url: str, *, cipher: Cipher, changes: ChangeBus | None = None) -> DocumentStore:
    """Build (not connect) the store for a ``[stores] documents`` URL; ``await store.start()`` next.

    ``cipher`` seals provider credentials (see :func:`junction.security.crypto.cipher_from_settings`);
    with ``changes``, every mutation is published for hot reload.
    """
    scheme = url_scheme(url)
    if scheme in SQL_SCHEMES:
        from junction.stores.documents.sql_store import SqlDocumentStore

        return SqlDocumentStore(url, cipher=cipher, changes=changes)
    if scheme in MONGO_SCHEMES:
        from junction.stores.documents.mongo_store import MongoDocumentStore

        return MongoDocumentStore(url, cipher=cipher, changes=changes)
    raise ConfigError(
        f"stores.documents: unsupported URL scheme {scheme!r}; use sqlite+aiosqlite://, "
        "postgresql+asyncpg:// or mongodb://"
    )


__all__ = ["DocumentStore", "open_document_store"]
