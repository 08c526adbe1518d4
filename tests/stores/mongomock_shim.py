"""mongomock-motor's database, adjusted to what beanie 2 calls on PyMongo's ``AsyncDatabase``.

mongomock-motor imitates Motor, while beanie 2 targets PyMongo's native async API. The gaps we
meet, each bridged below and nothing else:

* beanie calls ``database.client.append_metadata(...)`` when it is callable (PyMongo ≥ 4.14);
  Motor-style clients answer any attribute with a database, which is callable — we hide it;
* ``list_collection_names(authorizedCollections=True, nameOnly=True)``: mongomock rejects the
  PyMongo-only keyword arguments, and they change nothing for an in-memory server.

It exists only for tests: the stand-in lets the contract suite run everywhere; a real MongoDB
(``JUNCTION_TEST_MONGODB_URL``) is what proves the backend.
"""

from __future__ import annotations

from typing import Any

from mongomock_motor import AsyncMongoMockClient


class _ClientWithoutMetadata:
    """The wrapped client, minus ``append_metadata`` (mongomock has no driver handshake)."""

    append_metadata = None

    def __init__(self, client: Any) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


class BeanieMockDatabase:
    def __init__(self, database: Any) -> None:
        self._database = database
        self.client = _ClientWithoutMetadata(database.client)

    async def list_collection_names(self, **_pymongo_only_options: Any) -> list[str]:
        return await self._database.list_collection_names()

    def __getitem__(self, name: str) -> Any:
        return self._database[name]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._database, name)


def mock_database(name: str = "junction_test") -> BeanieMockDatabase:
    """A fresh, empty in-memory MongoDB database that beanie 2 accepts."""
    return BeanieMockDatabase(AsyncMongoMockClient()[name])
