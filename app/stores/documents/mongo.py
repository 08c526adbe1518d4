"""The MongoDB shape of the document store: beanie Documents and their indexes.

Each collection mirrors a SQL table (see ``sql.py``) so both backends answer the same queries
the same way: plain finds on indexed fields, atomic single-document updates (``$inc`` for version
and message numbers), no aggregation pipelines. Ids are our own strings (``org_…``), not
ObjectIds, so a record keeps its id whichever backend holds it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar

import msgspec
from beanie import Document, UpdateResponse
from pymongo import ASCENDING, DESCENDING, IndexModel

from junction.errors import NotFound
from junction.stores.documents.common import Notifier, as_utc, org_not_found

RecordT = TypeVar("RecordT", bound=msgspec.Struct)


class MongoModels:
    """This store's Document classes, defined afresh for every store.

    beanie binds Document *classes* to a database in ``init_beanie`` (and rewrites their
    attributes, parents included), so classes shared by two stores in one process — tests, or two
    databases — would rebind each other. Defining them per store keeps that state with the store
    instead of the module.
    """

    def __init__(self) -> None:
        class OrgDocument(Document):
            id: str  # type: ignore[assignment]
            name: str
            created_at: datetime
            updated_at: datetime
            # Limits (issue 8). Documents stored before them lack the fields: absent reads as
            # None, so no data migration is needed on MongoDB.
            rpm: int | None = None
            tpm: int | None = None
            budget_usd: float | None = None
            budget_period: str | None = None

            class Settings:
                name = "orgs"
                indexes = [IndexModel([("created_at", ASCENDING)])]

        class ApiKeyDocument(Document):
            id: str  # type: ignore[assignment]
            org_id: str
            name: str
            prefix: str
            secret_hash: str
            scopes: list[str]
            models: list[str] | None = None
            rpm: int | None = None
            tpm: int | None = None
            budget_usd: float | None = None
            budget_period: str | None = None
            expires_at: datetime | None = None
            revoked_at: datetime | None = None
            created_at: datetime

            class Settings:
                name = "api_keys"
                indexes = [
                    # Authentication looks keys up by prefix alone; it must be unique across orgs.
                    IndexModel([("prefix", ASCENDING)], unique=True, name="prefix_unique"),
                    IndexModel([("org_id", ASCENDING), ("created_at", ASCENDING)], name="org_created"),
                ]

        class CredentialDocument(Document):
            #: ``<org_id>/<provider>``: one credential per org and provider, enforced by the primary key.
            id: str  # type: ignore[assignment]
            org_id: str
            provider: str
            key_id: str
            ciphertext: bytes
            created_at: datetime
            updated_at: datetime

            class Settings:
                name = "provider_credentials"
                indexes = [
                    IndexModel(
                        [("org_id", ASCENDING), ("provider", ASCENDING)], unique=True, name="org_provider"
                    )
                ]

        class BridgeDocument(Document):
            id: str  # type: ignore[assignment]
            org_id: str
            slug: str
            name: str
            status: str
            model: str
            prompt: str
            variables: list[dict[str, Any]]
            params: dict[str, Any]
            response_format: dict[str, Any] | None = None
            tools: list[dict[str, Any]]
            fallback_model: str | None = None
            published_version: int | None = None
            latest_version: int = 0
            created_at: datetime
            updated_at: datetime
            # Limits (issue 8). Documents stored before them lack the fields: absent reads as
            # None, so no data migration is needed on MongoDB.
            rpm: int | None = None
            tpm: int | None = None
            budget_usd: float | None = None
            budget_period: str | None = None
            # Agents (issue 11); absent reads as None.
            server_tools: list[str] | None = None
            max_tool_rounds: int | None = None
            connected_bridges: list[str] | None = None
            mcp_servers: list[dict[str, Any]] | None = None
            type: str | None = None
            chatbot: dict[str, Any] | None = None

            class Settings:
                name = "bridges"
                indexes = [
                    IndexModel(
                        [("org_id", ASCENDING), ("slug", ASCENDING)], unique=True, name="org_slug_unique"
                    ),
                    IndexModel([("org_id", ASCENDING), ("created_at", ASCENDING)], name="org_created"),
                ]

        class BridgeVersionDocument(Document):
            #: ``<bridge_id>/<version>``: a version number exists once per bridge.
            id: str  # type: ignore[assignment]
            bridge_id: str
            org_id: str
            version: int
            config: dict[str, Any]
            created_at: datetime

            class Settings:
                name = "bridge_versions"
                indexes = [
                    IndexModel(
                        [("bridge_id", ASCENDING), ("version", ASCENDING)], unique=True, name="bridge_version"
                    )
                ]

        class ThreadDocument(Document):
            id: str  # type: ignore[assignment]
            org_id: str
            bridge_id: str | None = None
            owner: str | None = None
            message_count: int = 0
            created_at: datetime
            updated_at: datetime

            class Settings:
                name = "threads"
                indexes = [
                    IndexModel([("org_id", ASCENDING), ("updated_at", DESCENDING)], name="org_updated"),
                    IndexModel([("bridge_id", ASCENDING)], name="bridge"),
                    IndexModel([("bridge_id", ASCENDING), ("owner", ASCENDING), ("created_at", DESCENDING)],
                               name="bridge_owner"),
                ]

        class ThreadMessageDocument(Document):
            """One message per document: threads grow without nearing MongoDB's 16 MB document limit."""

            #: ``<thread_id>/<seq>``.
            id: str  # type: ignore[assignment]
            thread_id: str
            org_id: str
            seq: int
            message: dict[str, Any]

            class Settings:
                name = "thread_messages"
                indexes = [
                    IndexModel([("thread_id", ASCENDING), ("seq", ASCENDING)], unique=True, name="thread_seq")
                ]

        class ResponseDocument(Document):
            """A stored Response (see ``junction.stores.documents.responses``)."""

            id: str  # type: ignore[assignment]
            org_id: str | None = None
            owner: str | None = None
            created_at: datetime
            response: dict[str, Any]
            input_items: list[dict[str, Any]]
            context: list[dict[str, Any]]

            class Settings:
                name = "responses"
                indexes = [IndexModel([("org_id", ASCENDING)], name="org")]

        class ToolDocument(Document):
            """An HTTP tool (see ``junction.stores.documents.tools``); literal headers only sealed."""

            id: str  # type: ignore[assignment]
            org_id: str
            name: str
            description: str | None = None
            parameters: dict[str, Any]
            url: str
            method: str
            timeout_seconds: float
            bound: list[str] = []
            env_headers: dict[str, str] = {}
            secret_headers: list[str] = []
            key_id: str | None = None
            ciphertext: bytes | None = None
            created_at: datetime
            updated_at: datetime

            class Settings:
                name = "tools"
                indexes = [
                    IndexModel([("org_id", ASCENDING), ("name", ASCENDING)], unique=True, name="org_name_unique"),
                    IndexModel([("org_id", ASCENDING), ("created_at", ASCENDING)], name="org_created"),
                ]

        class CollectionDocument(Document):
            """A RAG collection (see ``junction.stores.documents.knowledge``)."""

            id: str  # type: ignore[assignment]
            org_id: str
            name: str
            embedding_model: str
            chunk_tokens: int
            chunk_overlap: int
            dimensions: int | None = None
            revision: int = 0
            documents: int = 0
            chunks: int = 0
            created_at: datetime
            updated_at: datetime

            class Settings:
                name = "rag_collections"
                indexes = [IndexModel([("org_id", ASCENDING), ("created_at", ASCENDING)], name="org_created")]

        class KnowledgeDocumentDocument(Document):
            #: ``<collection_id>/<document id>``.
            id: str  # type: ignore[assignment]
            document_id: str
            collection_id: str
            org_id: str
            metadata: dict[str, Any]
            chunks: int
            created_at: datetime
            updated_at: datetime

            class Settings:
                name = "rag_documents"
                indexes = [IndexModel([("collection_id", ASCENDING)], name="collection")]

        class ChunkDocument(Document):
            id: str  # type: ignore[assignment]
            collection_id: str
            document_id: str
            org_id: str
            position: int
            text: str
            metadata: dict[str, Any]
            embedding: bytes

            class Settings:
                name = "rag_chunks"
                indexes = [IndexModel([("collection_id", ASCENDING), ("document_id", ASCENDING)],
                                      name="collection_document")]

        self.rag_collections, self.rag_documents, self.rag_chunks = (
            CollectionDocument, KnowledgeDocumentDocument, ChunkDocument)
        self.responses = ResponseDocument
        self.tools = ToolDocument
        self.orgs, self.keys, self.credentials = OrgDocument, ApiKeyDocument, CredentialDocument
        self.bridges, self.versions = BridgeDocument, BridgeVersionDocument
        self.threads, self.messages = ThreadDocument, ThreadMessageDocument

    def all(self) -> list[type[Document]]:
        return [
            self.orgs,
            self.keys,
            self.credentials,
            self.bridges,
            self.versions,
            self.threads,
            self.messages,
            self.responses,
            self.tools,
            self.rag_collections,
            self.rag_documents,
            self.rag_chunks,
        ]


def to_record(document: Document, record_type: type[RecordT]) -> RecordT:
    """A Document as a record; BSON dates come back naive (or in the client's zone): make them UTC."""
    fields = {
        name: as_utc(value) if isinstance(value, datetime) else value
        for name, value in document.model_dump().items()
    }
    return msgspec.convert(fields, record_type)


async def require_org(models: MongoModels, org_id: str) -> None:
    if await models.orgs.find_one({"_id": org_id}) is None:
        raise org_not_found(org_id, param="org_id")


Filter = dict[str, Any]
Sort = list[tuple[str, int]]


class MongoRepository:
    """The store's Document classes and change notifier, and the steps every Mongo repository takes."""

    def __init__(self, models: MongoModels, notify: Notifier) -> None:
        self._m = models
        self._notify = notify

    async def _one(
        self, model: type[Document], query: Filter, record_type: type[RecordT], missing: NotFound
    ) -> RecordT:
        document = await model.find_one(query)
        if document is None:
            raise missing
        return to_record(document, record_type)

    async def _all(
        self, model: type[Document], query: Filter, sort: Sort, record_type: type[RecordT], limit: int = 0
    ) -> list[RecordT]:
        documents = await model.find(query).sort(sort).limit(limit).to_list()
        return [to_record(document, record_type) for document in documents]

    async def _change_one(
        self,
        model: type[Document],
        query: Filter,
        update: Filter,
        record_type: type[RecordT],
        missing: NotFound,
    ) -> RecordT:
        """One atomic update returning the changed document; ``missing`` when nothing matched."""
        document = await model.find_one(query).update(update, response_type=UpdateResponse.NEW_DOCUMENT)
        if document is None:
            raise missing
        return to_record(document, record_type)

    async def _delete(self, model: type[Document], query: Filter, missing: NotFound) -> None:
        result = await model.find(query).delete()
        if result is None or result.deleted_count == 0:
            raise missing
