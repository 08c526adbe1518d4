"""The MongoDB document store (beanie on PyMongo's async client): start/close and orgs, keys,
credentials. Bridges and threads are in ``mongo_bridges.py``."""

from __future__ import annotations

from typing import Any

import msgspec
from beanie import init_beanie
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from junction.security.crypto import Cipher
from junction.stores.documents.common import (
    Notifier,
    authenticate_api_key,
    check_provider,
    credential_not_found,
    issue_api_key,
    key_not_found,
    new_id,
    open_secret,
    org_changes,
    org_not_found,
    reseal,
    seal_secret,
    utc_now,
)
from junction.stores.documents.mongo import MongoModels, MongoRepository, require_org, to_record
from junction.stores.documents.mongo_bridges import MongoBridges, MongoThreads
from junction.stores.documents.mongo_jobs import MongoJobModels, MongoJobs
from junction.stores.documents.mongo_knowledge import MongoKnowledge
from junction.stores.documents.mongo_responses import MongoResponses
from junction.stores.documents.mongo_tools import MongoTools
from junction.stores.documents.protocol import (
    ApiKey,
    IssuedApiKey,
    NewApiKey,
    Org,
    OrgPatch,
    ProviderCredential,
    ProviderSecret,
)
from junction.stores.notify import ChangeBus

DEFAULT_DATABASE = "junction"
OLDEST_FIRST = [("created_at", 1), ("_id", 1)]


class MongoOrgs(MongoRepository):
    async def create(self, name: str) -> Org:
        now = utc_now()
        org = Org(id=new_id("org"), name=name, created_at=now, updated_at=now)
        await self._m.orgs(**msgspec.structs.asdict(org)).insert()
        await self._notify("org", org.id)
        return org

    async def get(self, org_id: str) -> Org:
        return await self._one(self._m.orgs, {"_id": org_id}, Org, org_not_found(org_id))

    async def list(self) -> list[Org]:
        return await self._all(self._m.orgs, {}, OLDEST_FIRST, Org)

    async def update(self, org_id: str, patch: OrgPatch) -> Org:
        changes: dict[str, Any] = {"updated_at": utc_now()}
        changes.update(org_changes(patch))
        org = await self._change_one(
            self._m.orgs, {"_id": org_id}, {"$set": changes}, Org, org_not_found(org_id)
        )
        await self._notify("org", org_id)
        return org

    async def delete(self, org_id: str) -> None:
        # No multi-document transaction (standalone servers have none): the org goes first, so
        # nothing of it is reachable any more, then what it owned.
        await self._delete(self._m.orgs, {"_id": org_id}, org_not_found(org_id))
        for model in (
            self._m.keys,
            self._m.credentials,
            self._m.bridges,
            self._m.versions,
            self._m.threads,
            self._m.messages,
            self._m.responses,
            self._m.tools,
            self._m.rag_collections,
            self._m.rag_documents,
            self._m.rag_chunks,
        ):
            await model.find({"org_id": org_id}).delete()
        await self._notify("org", org_id)


class MongoApiKeys(MongoRepository):
    async def create(self, org_id: str, spec: NewApiKey) -> IssuedApiKey:
        issued = issue_api_key(org_id, spec)  # validates the spec first, as the SQL store does
        await require_org(self._m, org_id)
        await self._m.keys(**msgspec.structs.asdict(issued.record)).insert()
        await self._notify("key", issued.record.id)
        return issued

    async def get(self, org_id: str, key_id: str) -> ApiKey:
        return await self._one(self._m.keys, {"_id": key_id, "org_id": org_id}, ApiKey, key_not_found(key_id))

    async def list(self, org_id: str) -> list[ApiKey]:
        return await self._all(self._m.keys, {"org_id": org_id}, OLDEST_FIRST, ApiKey)

    async def revoke(self, org_id: str, key_id: str) -> ApiKey:
        # Only an unrevoked key gets a time, so revoking twice keeps the first one.
        await self._m.keys.find_one({"_id": key_id, "org_id": org_id, "revoked_at": None}).update(
            {"$set": {"revoked_at": utc_now()}}
        )
        record = await self.get(org_id, key_id)
        await self._notify("key", key_id)
        return record

    async def delete(self, org_id: str, key_id: str) -> None:
        await self._delete(self._m.keys, {"_id": key_id, "org_id": org_id}, key_not_found(key_id))
        await self._notify("key", key_id)

    async def find_by_prefix(self, prefix: str) -> ApiKey | None:
        document = await self._m.keys.find_one({"prefix": prefix})
        return None if document is None else to_record(document, ApiKey)

    async def authenticate(self, presented: str) -> ApiKey | None:
        return await authenticate_api_key(presented, self.find_by_prefix)


class MongoCredentials(MongoRepository):
    def __init__(self, models: MongoModels, notify: Notifier, cipher: Cipher) -> None:
        super().__init__(models, notify)
        self._cipher = cipher

    async def put(self, org_id: str, provider: str, secret: ProviderSecret) -> ProviderCredential:
        check_provider(provider)
        await require_org(self._m, org_id)
        sealed = seal_secret(self._cipher, org_id, provider, secret)
        now = utc_now()
        collection = self._m.credentials.get_pymongo_collection()
        await collection.update_one(
            {"_id": f"{org_id}/{provider}"},
            {
                "$set": {"key_id": sealed.key_id, "ciphertext": sealed.blob, "updated_at": now},
                "$setOnInsert": {"org_id": org_id, "provider": provider, "created_at": now},
            },
            upsert=True,
        )
        await self._notify("credential", f"{org_id}/{provider}")
        return await self.get(org_id, provider)

    async def get(self, org_id: str, provider: str) -> ProviderCredential:
        query = {"org_id": org_id, "provider": provider}
        return await self._one(self._m.credentials, query, ProviderCredential, credential_not_found(provider))

    async def list(self, org_id: str) -> list[ProviderCredential]:
        return await self._all(self._m.credentials, {"org_id": org_id}, [("provider", 1)], ProviderCredential)

    async def reveal(self, org_id: str, provider: str) -> ProviderSecret | None:
        document = await self._m.credentials.find_one({"org_id": org_id, "provider": provider})
        if document is None:
            return None
        return open_secret(self._cipher, org_id, provider, document.key_id, bytes(document.ciphertext))

    async def delete(self, org_id: str, provider: str) -> None:
        query = {"org_id": org_id, "provider": provider}
        await self._delete(self._m.credentials, query, credential_not_found(provider))
        await self._notify("credential", f"{org_id}/{provider}")

    async def reencrypt(self, org_id: str) -> int:
        resealed = 0
        collection = self._m.credentials.get_pymongo_collection()
        for credential in await self.list(org_id):
            sealed = reseal(self._cipher, credential)
            if sealed is None:
                continue
            # Only replace what we read: a concurrent put() already sealed with the newest key.
            result = await collection.update_one(
                {"org_id": org_id, "provider": credential.provider, "key_id": credential.key_id},
                {"$set": {"key_id": sealed.key_id, "ciphertext": sealed.blob}},
            )
            resealed += result.modified_count
        return resealed


class MongoDocumentStore:
    def __init__(
        self,
        url: str,
        *,
        cipher: Cipher,
        changes: ChangeBus | None = None,
        database: AsyncDatabase[Any] | None = None,
    ) -> None:
        """``database`` lends an already-connected database (tests use a stand-in); otherwise
        ``start()`` connects to ``url`` and uses the database it names (default ``junction``)."""
        self.url = url
        self.models = MongoModels()
        self._lent_database = database
        self._client: AsyncMongoClient[Any] | None = None
        self._database: Any = None
        notify = Notifier(changes)
        self.orgs = MongoOrgs(self.models, notify)
        self.keys = MongoApiKeys(self.models, notify)
        self.credentials = MongoCredentials(self.models, notify, cipher)
        self.bridges = MongoBridges(self.models, notify)
        self.threads = MongoThreads(self.models, notify, self.bridges)
        self.job_models = MongoJobModels()
        self.jobs = MongoJobs(self.job_models, self.models, notify, cipher)
        self.responses = MongoResponses(self.models, notify)
        self.tools = MongoTools(self.models, notify, cipher)
        self.knowledge = MongoKnowledge(self.models, notify)

    async def start(self) -> None:
        database = self._lent_database
        if database is None:
            self._client = AsyncMongoClient(self.url, tz_aware=True)
            database = self._client.get_default_database(default=DEFAULT_DATABASE)
        self._database = database
        try:
            await init_beanie(database=database, document_models=[*self.models.all(), *self.job_models.all()])
        except BaseException:
            await self.close()  # an unreachable server must not leave the client's monitors running
            raise

    async def ping(self) -> None:
        if self._database is None:
            raise RuntimeError("the document store is not started")
        await self._database.command("ping")

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
