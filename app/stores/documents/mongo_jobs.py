"""The MongoDB repository of queued jobs, batches, batch files and per-org webhook secrets.

beanie declares the collections and their indexes; the repository talks to PyMongo's collections
directly, because every write here is one conditional ``update_one`` / ``find_one_and_update``.
A TTL index on ``expires_at`` lets MongoDB itself drop expired jobs, batches and files.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar

import msgspec
from beanie import Document
from pydantic import ConfigDict
from pymongo import ASCENDING, DESCENDING, IndexModel, ReturnDocument
from pymongo.errors import DuplicateKeyError

from junction.domain.jobs.records import (
    FINISHED,
    Batch,
    Job,
    JobFilter,
    JobStatus,
    StoredFile,
    WebhookAttempt,
)
from junction.security.crypto import Cipher
from junction.stores.documents.common import Notifier, as_utc, open_secret, utc_now
from junction.stores.documents.jobs_common import (
    WEBHOOK_SECRET_BINDING,
    batch_not_found,
    file_not_found,
    job_not_found,
    seal_webhook_secret,
)
from junction.stores.documents.mongo import require_org

RecordT = TypeVar("RecordT", bound=msgspec.Struct)
_OPEN = ["queued", "running"]
IDEMPOTENCY_FIELD = "idempotency_scope"
NEWEST_FIRST = [("created_at", DESCENDING), ("_id", DESCENDING)]


def _ttl() -> IndexModel:
    return IndexModel([("expires_at", ASCENDING)], expireAfterSeconds=0, name="expires_ttl")


class MongoJobModels:
    """The job collections, defined per store (see :class:`~junction.stores.documents.mongo.MongoModels`)."""

    def __init__(self) -> None:
        class JobDocument(Document):
            model_config = ConfigDict(extra="allow")
            id: str  # type: ignore[assignment]

            class Settings:
                name = "jobs"
                indexes = [
                    # ``<org_id>/<key>``, present only on jobs submitted with a key: a sparse
                    # unique index then leaves keyless jobs alone.
                    IndexModel([(IDEMPOTENCY_FIELD, ASCENDING)], unique=True, sparse=True,
                               name="org_idempotency_key"),
                    IndexModel([("org_id", ASCENDING), ("created_at", DESCENDING)], name="org_created"),
                    IndexModel([("batch_id", ASCENDING), ("status", ASCENDING)], name="batch_status"),
                    # The sweep's "not published in time" probe: only jobs still in the outbox.
                    IndexModel([("publish_by", ASCENDING)], name="outbox",
                               partialFilterExpression={"publish_by": {"$type": "date"}}),
                    _ttl(),
                ]

        class BatchDocument(Document):
            model_config = ConfigDict(extra="allow")
            id: str  # type: ignore[assignment]

            class Settings:
                name = "job_batches"
                indexes = [IndexModel([("org_id", ASCENDING), ("created_at", DESCENDING)], name="org_created"),
                           _ttl()]

        class FileDocument(Document):
            model_config = ConfigDict(extra="allow")
            id: str  # type: ignore[assignment]

            class Settings:
                name = "job_files"
                indexes = [_ttl()]

        class WebhookSecretDocument(Document):
            model_config = ConfigDict(extra="allow")
            id: str  # type: ignore[assignment]

            class Settings:
                name = "webhook_secrets"

        self.jobs, self.batches, self.files, self.secrets = (
            JobDocument, BatchDocument, FileDocument, WebhookSecretDocument)

    def all(self) -> list[type[Document]]:
        return [self.jobs, self.batches, self.files, self.secrets]


def _record(document: dict[str, Any], record_type: type[RecordT]) -> RecordT:
    fields = {("id" if name == "_id" else name): as_utc(value) if isinstance(value, datetime) else value
              for name, value in document.items() if name != IDEMPOTENCY_FIELD}
    return msgspec.convert(fields, record_type)


def _document(record: msgspec.Struct) -> dict[str, Any]:
    fields = msgspec.structs.asdict(record)
    fields["_id"] = fields.pop("id")
    for name, value in fields.items():
        if isinstance(value, list | dict):
            fields[name] = msgspec.to_builtins(value)
    return fields


def _visible(org_id: str | None, now: datetime) -> dict[str, Any]:
    query: dict[str, Any] = {"$or": [{"expires_at": None}, {"expires_at": {"$gt": now}}]}
    if org_id is not None:
        query["org_id"] = org_id
    return query


class MongoJobs:
    def __init__(self, models: MongoJobModels, documents_models: Any, notify: Notifier, cipher: Cipher) -> None:
        self._m = models
        self._documents = documents_models
        self._notify = notify
        self._cipher = cipher

    @property
    def _jobs(self) -> Any:
        return self._m.jobs.get_pymongo_collection()

    @property
    def _batches(self) -> Any:
        return self._m.batches.get_pymongo_collection()

    @property
    def _files(self) -> Any:
        return self._m.files.get_pymongo_collection()

    async def create(self, job: Job) -> Job:
        try:
            document = _document(job)
            if job.idempotency_key is not None:
                document[IDEMPOTENCY_FIELD] = f"{job.org_id}/{job.idempotency_key}"
            await self._jobs.insert_one(document)
            return job
        except DuplicateKeyError:
            if job.idempotency_key is None:
                raise
        found = await self._jobs.find_one({"org_id": job.org_id, "idempotency_key": job.idempotency_key})
        if found is None:
            raise job_not_found(job.id)
        return _record(found, Job)

    async def create_many(self, records: list[Job]) -> None:
        if records:
            await self._jobs.insert_many([_document(job) for job in records], ordered=False)

    async def get(self, org_id: str | None, job_id: str) -> Job:
        found = await self._jobs.find_one({"_id": job_id, **_visible(org_id, utc_now())})
        if found is None:
            raise job_not_found(job_id)
        return _record(found, Job)

    async def list(self, org_id: str | None, where: JobFilter) -> list[Job]:
        query = _visible(org_id, utc_now())
        for name in ("status", "batch_id", "dead_letter", "webhook_status"):
            value = getattr(where, name)
            if value is not None:
                query[name] = value
        if where.before is not None:
            anchor = await self._jobs.find_one({"_id": where.before}, {"created_at": 1})
            if anchor is not None:
                query["$and"] = [{"$or": [{"created_at": {"$lt": anchor["created_at"]}},
                                          {"created_at": anchor["created_at"], "_id": {"$lt": where.before}}]}]
        order = [("batch_index", ASCENDING)] if where.batch_id is not None else NEWEST_FIRST
        cursor = self._jobs.find(query).sort(order).limit(where.limit)
        return [_record(document, Job) for document in await cursor.to_list(None)]

    async def begin(self, job_id: str) -> Job | None:
        for _ in range(3):
            now = utc_now()
            found = await self._jobs.find_one_and_update(
                {"_id": job_id, "status": {"$in": _OPEN}},
                {"$set": {"status": "running", "started_at": now, "updated_at": now, "publish_by": None},
                 "$inc": {"attempts": 1}},
                return_document=ReturnDocument.AFTER)
            if found is not None:
                break
            found = await self._jobs.find_one({"_id": job_id})
            # Inserted between the two (its insert overlaps the publish): claim it after all.
            if found is None or found["status"] not in _OPEN:
                break
        return None if found is None else _record(found, Job)

    async def published(self, job_ids: list[str]) -> None:
        await self._jobs.update_many({"_id": {"$in": job_ids}, "publish_by": {"$ne": None}},
                                     {"$set": {"publish_by": None}})

    async def claim_unpublished(self, now: datetime, lease_until: datetime, limit: int) -> list[str]:
        due = {"status": "queued", "publish_by": {"$lte": now}}
        found = await self._jobs.find(due, {"_id": 1}).limit(limit).to_list(None)
        claimed = []
        for document in found:
            # Conditional on ``publish_by`` still being due: of two sweepers only one moves it.
            moved = await self._jobs.update_one({"_id": document["_id"], **due},
                                                {"$set": {"publish_by": lease_until}})
            if moved.matched_count:
                claimed.append(document["_id"])
        return claimed

    async def finish(self, job_id: str, status: JobStatus, *, result: dict[str, Any] | None,
                     error: dict[str, Any] | None, expires_at: datetime, dead_letter: bool = False) -> Job | None:
        now = utc_now()
        found = await self._jobs.find_one_and_update(
            {"_id": job_id, "status": {"$in": _OPEN}},
            {"$set": {"status": status, "result": result, "error": error, "dead_letter": dead_letter,
                      "finished_at": now, "updated_at": now, "expires_at": expires_at}},
            return_document=ReturnDocument.AFTER)
        return None if found is None else _record(found, Job)

    async def cancel(self, org_id: str | None, job_id: str, expires_at: datetime) -> Job:
        now = utc_now()
        query = {**_visible(org_id, now), "_id": job_id, "status": {"$in": _OPEN}}
        await self._jobs.update_one(query, {"$set": {"status": "cancelled", "finished_at": now, "updated_at": now,
                                                     "expires_at": expires_at, "publish_by": None}})
        return await self.get(org_id, job_id)

    async def any_open(self, batch_id: str) -> bool:
        return await self._jobs.find_one({"batch_id": batch_id, "status": {"$in": _OPEN}}, {"_id": 1}) is not None

    async def cancel_batch(self, batch_id: str, expires_at: datetime) -> int:
        now = utc_now()
        done = await self._jobs.update_many({"batch_id": batch_id, "status": "queued"}, {"$set": {
            "status": "cancelled", "finished_at": now, "updated_at": now, "expires_at": expires_at,
            "publish_by": None}})
        return int(done.modified_count)

    async def record_webhook(self, job_id: str, attempt: WebhookAttempt, status: str) -> None:
        await self._jobs.update_one({"_id": job_id}, {
            "$push": {"webhook_attempts": msgspec.to_builtins(attempt)},
            "$set": {"webhook_status": status, "updated_at": utc_now()}})

    async def record_progress(self, job_id: str, progress: dict[str, Any]) -> None:
        await self._jobs.update_one({"_id": job_id, "status": "running"},
                                    {"$set": {"progress": progress, "updated_at": utc_now()}})

    async def counts(self, batch_id: str) -> dict[str, int]:
        counts: dict[str, int] = {}
        for status in ("queued", "running", *sorted(FINISHED)):
            number = await self._jobs.count_documents({"batch_id": batch_id, "status": status})
            if number:
                counts[status] = number
        return counts

    async def purge_expired(self, now: datetime) -> int:
        gone = await self._jobs.delete_many({"expires_at": {"$lte": now}, "status": {"$in": sorted(FINISHED)}})
        await self._batches.delete_many({"expires_at": {"$lte": now}})
        await self._files.delete_many({"expires_at": {"$lte": now}})
        return int(gone.deleted_count)

    # --- batches and files --------------------------------------------------------------------

    async def create_batch(self, batch: Batch) -> None:
        await self._batches.insert_one(_document(batch))

    async def get_batch(self, org_id: str | None, batch_id: str) -> Batch:
        found = await self._batches.find_one({"_id": batch_id, **_visible(org_id, utc_now())})
        if found is None:
            raise batch_not_found(batch_id)
        return _record(found, Batch)

    async def list_batches(self, org_id: str | None, kind: str, limit: int, after: str | None) -> list[Batch]:
        query = {**_visible(org_id, utc_now()), "kind": kind}
        if after is not None:
            anchor = await self._batches.find_one({"_id": after}, {"created_at": 1})
            if anchor is not None:
                query["$and"] = [{"$or": [{"created_at": {"$lt": anchor["created_at"]}},
                                          {"created_at": anchor["created_at"], "_id": {"$lt": after}}]}]
        cursor = self._batches.find(query).sort(NEWEST_FIRST).limit(limit)
        return [_record(document, Batch) for document in await cursor.to_list(None)]

    async def update_batch(self, batch_id: str, changes: dict[str, Any], *,
                           only_status: tuple[str, ...] = (), updated_before: datetime | None = None) -> bool:
        query: dict[str, Any] = {"_id": batch_id}
        if only_status:
            query["status"] = {"$in": list(only_status)}
        if updated_before is not None:
            query["updated_at"] = {"$lt": updated_before}
        done = await self._batches.update_one(query, {"$set": {**changes, "updated_at": utc_now()}})
        return bool(done.matched_count)

    async def stale_batches(self, status: str, updated_before: datetime, limit: int) -> list[Batch]:
        cursor = self._batches.find({"status": status, "updated_at": {"$lt": updated_before}}).sort(
            "updated_at", ASCENDING).limit(limit)
        return [_record(document, Batch) for document in await cursor.to_list(None)]

    async def files_expired(self, file_ids: list[str], now: datetime) -> dict[str, bool]:
        cursor = self._files.find({"_id": {"$in": file_ids}}, {"expires_at": 1})
        return {document["_id"]: document.get("expires_at") is not None
                and as_utc(document["expires_at"]) <= now for document in await cursor.to_list(None)}

    async def create_file(self, record: StoredFile, content: bytes) -> None:
        await self._files.insert_one({**_document(record), "content": content})

    async def get_file(self, org_id: str | None, file_id: str) -> StoredFile:
        found = await self._files.find_one({"_id": file_id, **_visible(org_id, utc_now())}, {"content": 0})
        if found is None:
            raise file_not_found(file_id)
        return _record(found, StoredFile)

    async def file_content(self, org_id: str | None, file_id: str) -> bytes:
        found = await self._files.find_one({"_id": file_id, **_visible(org_id, utc_now())}, {"content": 1})
        if found is None:
            raise file_not_found(file_id)
        return bytes(found["content"])

    # --- per-org webhook secrets ----------------------------------------------------------------

    async def set_webhook_secret(self, org_id: str, secret: str | None) -> None:
        await require_org(self._documents, org_id)
        collection = self._m.secrets.get_pymongo_collection()
        if secret is None:
            await collection.delete_one({"_id": org_id})
            return
        sealed = seal_webhook_secret(self._cipher, org_id, secret)
        await collection.update_one({"_id": org_id}, {"$set": {
            "org_id": org_id, "key_id": sealed.key_id, "ciphertext": sealed.blob, "updated_at": utc_now()}},
            upsert=True)

    async def webhook_secret(self, org_id: str) -> str | None:
        found = await self._m.secrets.get_pymongo_collection().find_one({"_id": org_id})
        if found is None:
            return None
        return open_secret(self._cipher, org_id, WEBHOOK_SECRET_BINDING, found["key_id"],
                           bytes(found["ciphertext"])).api_key
