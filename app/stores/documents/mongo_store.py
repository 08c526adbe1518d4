"""The MongoDB document store (beanie on PyMongo's async client): start/close and orgs, keys,
credentials. Bridges and threads are in ``mongo_bridges.py``."""

from __future__ import annotations

from typing import Any

import msgspec
from beanie import UpdateResponse, init_beanie
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from app.errors import NotFound
from app.security.api_keys import generate_api_key, key_prefix, verify_api_key
from app.security.crypto import Cipher
from app.stores.documents.common import Notifier, check_provider, new_id, open_secret, seal_secret, utc_now
from app.stores.documents.mongo import MongoModels, require_org, to_record
from app.stores.documents.mongo_bridges import MongoBridges, MongoThreads
from app.stores.documents.protocol import (
    ApiKey,
    IssuedApiKey,
    NewApiKey,
    Org,
    OrgPatch,
    ProviderCredential,
    ProviderSecret,
)
from app.stores.notify import ChangeBus

DEFAULT_DATABASE = "junction"


class MongoOrgs:
    def __init__(self, models: MongoModels, notify: Notifier) -> None:
        self._m = models
        self._notify = notify

    async def create(self, name: str) -> Org:
        now = utc_now()
        org = Org(id=new_id("org"), name=name, created_at=now, updated_at=now)
        await self._m.orgs(**msgspec.structs.asdict(org)).insert()
        await self._notify("org", org.id)
        return org

    async def get(self, org_id: str) -> Org:
        document = await self._m.orgs.find_one({"_id": org_id})
        if document is None:
            raise NotFound(f"org {org_id!r} not found")
        return to_record(document, Org)

    async def list(self) -> list[Org]:
        documents = await self._m.orgs.find({}).sort([("created_at", 1), ("_id", 1)]).to_list()
        return [to_record(document, Org) for document in documents]

    async def update(self, org_id: str, patch: OrgPatch) -> Org:
        changes: dict[str, Any] = {"updated_at": utc_now()}
        if patch.name is not msgspec.UNSET:
            changes["name"] = patch.name
        document = await self._m.orgs.find_one({"_id": org_id}).update(
            {"$set": changes}, response_type=UpdateResponse.NEW_DOCUMENT
        )
        if document is None:
            raise NotFound(f"org {org_id!r} not found")
        await self._notify("org", org_id)
        return to_record(document, Org)

    async def delete(self, org_id: str) -> None:
        # No multi-document transaction (standalone servers have none): the org goes first, so
        # nothing of it is reachable any more, then what it owned.
        result = await self._m.orgs.find({"_id": org_id}).delete()
        if result is None or result.deleted_count == 0:
            raise NotFound(f"org {org_id!r} not found")
        for model in (
            self._m.keys,
            self._m.credentials,
            self._m.bridges,
            self._m.versions,
            self._m.threads,
            self._m.messages,
        ):
            await model.find({"org_id": org_id}).delete()
        await self._notify("org", org_id)


class MongoApiKeys:
    def __init__(self, models: MongoModels, notify: Notifier) -> None:
        self._m = models
        self._notify = notify

    async def create(self, org_id: str, spec: NewApiKey) -> IssuedApiKey:
        await require_org(self._m, org_id)
        generated = generate_api_key()
        record = ApiKey(
            id=new_id("key"),
            org_id=org_id,
            name=spec.name,
            prefix=generated.prefix,
            secret_hash=generated.secret_hash,
            scopes=list(spec.scopes),
            models=spec.models,
            rpm=spec.rpm,
            tpm=spec.tpm,
            budget_usd=spec.budget_usd,
            budget_period=spec.budget_period,
            expires_at=spec.expires_at,
            created_at=utc_now(),
        )
        await self._m.keys(**msgspec.structs.asdict(record)).insert()
        await self._notify("key", record.id)
        return IssuedApiKey(record=record, key=generated.key)

    async def get(self, org_id: str, key_id: str) -> ApiKey:
        document = await self._m.keys.find_one({"_id": key_id, "org_id": org_id})
        if document is None:
            raise NotFound(f"API key {key_id!r} not found")
        return to_record(document, ApiKey)

    async def list(self, org_id: str) -> list[ApiKey]:
        documents = (
            await self._m.keys.find({"org_id": org_id}).sort([("created_at", 1), ("_id", 1)]).to_list()
        )
        return [to_record(document, ApiKey) for document in documents]

    async def revoke(self, org_id: str, key_id: str) -> ApiKey:
        # Only an unrevoked key gets a time, so revoking twice keeps the first one.
        await self._m.keys.find_one({"_id": key_id, "org_id": org_id, "revoked_at": None}).update(
            {"$set": {"revoked_at": utc_now()}}
        )
        record = await self.get(org_id, key_id)
        await self._notify("key", key_id)
        return record

    async def delete(self, org_id: str, key_id: str) -> None:
        result = await self._m.keys.find({"_id": key_id, "org_id": org_id}).delete()
        if result is None or result.deleted_count == 0:
            raise NotFound(f"API key {key_id!r} not found")
        await self._notify("key", key_id)

    async def find_by_prefix(self, prefix: str) -> ApiKey | None:
        document = await self._m.keys.find_one({"prefix": prefix})
        return None if document is None else to_record(document, ApiKey)

    async def authenticate(self, presented: str) -> ApiKey | None:
        prefix = key_prefix(presented)
        record = None if prefix is None else await self.find_by_prefix(prefix)
        if record is None or not verify_api_key(presented, record.secret_hash):
            return None
        return record if record.is_active(utc_now()) else None


class MongoCredentials:
    def __init__(self, models: MongoModels, notify: Notifier, cipher: Cipher) -> None:
        self._m = models
        self._notify = notify
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
        document = await self._m.credentials.find_one({"org_id": org_id, "provider": provider})
        if document is None:
            raise NotFound(f"no {provider!r} credential in this org")
        return to_record(document, ProviderCredential)

    async def list(self, org_id: str) -> list[ProviderCredential]:
        documents = await self._m.credentials.find({"org_id": org_id}).sort([("provider", 1)]).to_list()
        return [to_record(document, ProviderCredential) for document in documents]

    async def reveal(self, org_id: str, provider: str) -> ProviderSecret | None:
        document = await self._m.credentials.find_one({"org_id": org_id, "provider": provider})
        if document is None:
            return None
        return open_secret(self._cipher, org_id, provider, document.key_id, bytes(document.ciphertext))

    async def delete(self, org_id: str, provider: str) -> None:
        result = await self._m.credentials.find({"org_id": org_id, "provider": provider}).delete()
        if result is None or result.deleted_count == 0:
            raise NotFound(f"no {provider!r} credential in this org")
        await self._notify("credential", f"{org_id}/{provider}")

    async def reencrypt(self, org_id: str) -> int:
        resealed = 0
        collection = self._m.credentials.get_pymongo_collection()
        for credential in await self.list(org_id):
            if self._cipher.is_current(credential.key_id):
                continue
            secret = open_secret(
                self._cipher, org_id, credential.provider, credential.key_id, credential.ciphertext
            )
            sealed = seal_secret(self._cipher, org_id, credential.provider, secret)
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
        notify = Notifier(changes)
        self.orgs = MongoOrgs(self.models, notify)
        self.keys = MongoApiKeys(self.models, notify)
        self.credentials = MongoCredentials(self.models, notify, cipher)
        self.bridges = MongoBridges(self.models, notify)
        self.threads = MongoThreads(self.models, notify, self.bridges)

    async def start(self) -> None:
        database = self._lent_database
        if database is None:
            self._client = AsyncMongoClient(self.url, tz_aware=True)
            database = self._client.get_default_database(default=DEFAULT_DATABASE)
        await init_beanie(database=database, document_models=self.models.all())

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
