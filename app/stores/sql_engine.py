"""The one way Junction opens a SQL engine: a SQLite database file is made owner-only before
SQLite creates it (it holds prompts, threads, key hashes, sealed credentials and usage rows), for
the serving stores, ``junction migrate`` and the Alembic environments alike."""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import sys
from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Connection
from sqlalchemy.pool import NullPool

from junction.security.private_files import private_sqlite_file

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

#: SQLAlchemy's asyncio package; its ``__init__`` imports the ORM session as well as the engine.
ASYNCIO_PACKAGE = "sqlalchemy.ext.asyncio"


def open_engine(url: str, **options: Any) -> AsyncEngine:
    """``create_async_engine(url, **options)``, the SQLite file made private first."""
    if url.startswith("sqlite"):
        private_sqlite_file(url)
    return async_engine_module().create_async_engine(url, **options)  # type: ignore[no-any-return]


def async_engine_module() -> ModuleType:
    """``sqlalchemy.ext.asyncio.engine`` (``AsyncEngine``, ``AsyncConnection``), without its
    package's ``__init__`` until something asks the package itself for a name.

    That ``__init__`` also imports ``AsyncSession`` and with it ``sqlalchemy.orm``: ~6 MB of every
    serving worker (measured), and Junction's stores use Core only. So the package is registered
    first as its own module object with a module ``__getattr__`` (PEP 562): the first name asked of
    it (``from sqlalchemy.ext.asyncio import AsyncSession`` in a plugin, Alembic, a test) runs the
    real ``__init__`` into that same module, so nothing else sees a difference, and there is one
    ``AsyncEngine`` class either way. Its greenlet set-up, the one other thing the ``__init__`` does
    eagerly, SQLAlchemy also does itself on first use."""
    if ASYNCIO_PACKAGE not in sys.modules:
        import sqlalchemy.ext

        spec = importlib.util.find_spec(ASYNCIO_PACKAGE)
        assert spec is not None and spec.loader is not None
        package = importlib.util.module_from_spec(spec)
        loader = spec.loader

        def complete(name: str) -> Any:
            if importlib.machinery.PathFinder.find_spec(f"{ASYNCIO_PACKAGE}.{name}", package.__path__):
                # ``from . import exc`` in its modules: a submodule, which the import system loads
                # when the package does not have it yet.
                raise AttributeError(name)
            del package.__getattr__  # type: ignore[attr-defined]
            loader.exec_module(package)
            return getattr(package, name)

        package.__getattr__ = complete  # type: ignore[method-assign]
        sys.modules[ASYNCIO_PACKAGE] = package
        sqlalchemy.ext.asyncio = package  # type: ignore[attr-defined]
    return importlib.import_module(ASYNCIO_PACKAGE + ".engine")


async def run_migrations_online(url: str, configure_and_run: Callable[[Connection], None]) -> None:
    """An Alembic environment's online run: one connection, migrated and committed."""
    engine = open_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(configure_and_run)
            await connection.commit()
    finally:
        await engine.dispose()
