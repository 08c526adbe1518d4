"""SQL repositories for orgs, API keys and provider credentials, and their shared base."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

import msgspec
import sqlalchemy as sa

from junction.errors import NotFound
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
from junction.stores.documents.protocol import (
    ApiKey,
    IssuedApiKey,
    NewApiKey,
    Org,
    OrgPatch,
    ProviderCredential,
    ProviderSecret,
)
from junction.stores.documents.sql import api_keys, orgs, provider_credentials

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from junction.stores.documents.sql_store import SqlDatabase

RecordT = TypeVar("RecordT", bound=msgspec.Struct)


def to_record(row: sa.Row[Any], record_type: type[RecordT]) -> RecordT:
    return msgspec.convert({str(name): value for name, value in row._mapping.items()}, record_type)


def row_values(record: msgspec.Struct, json_fields: tuple[str, ...] = ()) -> dict[str, Any]:
    """Column values of a record: datetimes and bytes as they are, nested values as JSON builtins."""
    values = msgspec.structs.asdict(record)
    for name in json_fields:
        values[name] = msgspec.to_builtins(values[name])
    return values


async def require_org(connection: AsyncConnection, org_id: str) -> None:
    """Check the org exists and, on PostgreSQL, keep it so until the caller's transaction ends.

    ``FOR KEY SHARE`` makes a concurrent delete of the org wait for the insert that follows (and
    then cascade to it), or makes this check wait for a delete in flight and see the org gone:
    either way the caller never inserts into a vanished org. SQLite serialises writers anyway
    and omits the clause.
    """
    check = sa.select(orgs.c.id).where(orgs.c.id == org_id).with_for_update(read=True, key_share=True)
    found = await connection.scalar(check)
    if found is None:
        raise org_not_found(org_id, param="org_id")


class SqlRepository:
    """The database handle and change notifier, and the read/write steps every SQL repository takes."""

    def __init__(self, database: SqlDatabase, notify: Notifier) -> None:
        self._db = database
        self._notify = notify

    async def _one(self, query: sa.Executable, record_type: type[RecordT], missing: NotFound) -> RecordT:
        async with self._db.connect() as connection:
            row = (await connection.execute(query)).first()
        if row is None:
            raise missing
        return to_record(row, record_type)

    async def _all(self, query: sa.Executable, record_type: type[RecordT]) -> list[RecordT]:
        async with self._db.connect() as connection:
            rows = await connection.execute(query)
        return [to_record(row, record_type) for row in rows]

    async def _change_one(
        self, statement: sa.Executable, record_type: type[RecordT], missing: NotFound
    ) -> RecordT:
        """Run an ``UPDATE ... RETURNING`` in its own transaction; ``missing`` when nothing matched."""
        async with self._db.begin() as connection:
            row = (await connection.execute(statement)).first()
        if row is None:
            raise missing
        return to_record(row, record_type)

    async def _delete(self, statement: sa.Executable, missing: NotFound) -> None:
        async with self._db.begin() as connection:
            result = await connection.execute(statement)
        if result.rowcount == 0:
            raise missing


class SqlOrgs(SqlRepository):
    async def create(self, name: str) -> Org:
        now = utc_now()
        org = Org(id=new_id("org"), name=name, created_at=now, updated_at=now)
        async with self._db.begin() as connection:
            await connection.execute(orgs.insert().values(**row_values(org)))
        await self._notify("org", org.id)
        return org

    async def get(self, org_id: str) -> Org:
        return await self._one(orgs.select().where(orgs.c.id == org_id), Org, org_not_found(org_id))

    async def list(self) -> list[Org]:
        return await self._all(orgs.select().order_by(orgs.c.created_at, orgs.c.id), Org)

    async def update(self, org_id: str, patch: OrgPatch) -> Org:
        changes: dict[str, Any] = {"updated_at": utc_now()}
        changes.update(org_changes(patch))
        statement = orgs.update().where(orgs.c.id == org_id).values(**changes).returning(*orgs.c)
        org = await self._change_one(statement, Org, org_not_found(org_id))
        await self._notify("org", org_id)
        return org

    async def delete(self, org_id: str) -> None:
        # Foreign keys cascade to keys, credentials, bridges, versions, threads and messages.
        await self._delete(orgs.delete().where(orgs.c.id == org_id), org_not_found(org_id))
        await self._notify("org", org_id)


_KEY_JSON = ("scopes", "models")


def _key_in_org(org_id: str, key_id: str) -> sa.ColumnElement[bool]:
    return sa.and_(api_keys.c.id == key_id, api_keys.c.org_id == org_id)


class SqlApiKeys(SqlRepository):
    async def create(self, org_id: str, spec: NewApiKey) -> IssuedApiKey:
        issued = issue_api_key(org_id, spec)
        async with self._db.begin() as connection:
            await require_org(connection, org_id)
            await connection.execute(api_keys.insert().values(**row_values(issued.record, _KEY_JSON)))
        await self._notify("key", issued.record.id)
        return issued

    async def get(self, org_id: str, key_id: str) -> ApiKey:
        return await self._one(
            api_keys.select().where(_key_in_org(org_id, key_id)), ApiKey, key_not_found(key_id)
        )

    async def list(self, org_id: str) -> list[ApiKey]:
        query = (
            api_keys.select()
            .where(api_keys.c.org_id == org_id)
            .order_by(api_keys.c.created_at, api_keys.c.id)
        )
        return await self._all(query, ApiKey)

    async def revoke(self, org_id: str, key_id: str) -> ApiKey:
        # COALESCE keeps the first revocation time, so revoking twice is harmless.
        now = sa.bindparam("now", utc_now(), type_=api_keys.c.revoked_at.type)
        statement = (
            api_keys.update()
            .where(_key_in_org(org_id, key_id))
            .values(revoked_at=sa.func.coalesce(api_keys.c.revoked_at, now))
            .returning(*api_keys.c)
        )
        record = await self._change_one(statement, ApiKey, key_not_found(key_id))
        await self._notify("key", key_id)
        return record

    async def delete(self, org_id: str, key_id: str) -> None:
        await self._delete(api_keys.delete().where(_key_in_org(org_id, key_id)), key_not_found(key_id))
        await self._notify("key", key_id)

    async def find_by_prefix(self, prefix: str) -> ApiKey | None:
        async with self._db.connect() as connection:
            row = (await connection.execute(api_keys.select().where(api_keys.c.prefix == prefix))).first()
        return None if row is None else to_record(row, ApiKey)

    async def authenticate(self, presented: str) -> ApiKey | None:
        return await authenticate_api_key(presented, self.find_by_prefix)


def _credential_in_org(org_id: str, provider: str) -> sa.ColumnElement[bool]:
    return sa.and_(provider_credentials.c.org_id == org_id, provider_credentials.c.provider == provider)


class SqlCredentials(SqlRepository):
    def __init__(self, database: SqlDatabase, notify: Notifier, cipher: Cipher) -> None:
        super().__init__(database, notify)
        self._cipher = cipher

    async def put(self, org_id: str, provider: str, secret: ProviderSecret) -> ProviderCredential:
        check_provider(provider)
        sealed = seal_secret(self._cipher, org_id, provider, secret)
        now = utc_now()
        values = {
            "org_id": org_id,
            "provider": provider,
            "key_id": sealed.key_id,
            "ciphertext": sealed.blob,
            "created_at": now,
            "updated_at": now,
        }
        if self._db.engine.dialect.name == "postgresql":  # that dialect's modules only where it is used
            from sqlalchemy.dialects import postgresql as dialect
        else:
            from sqlalchemy.dialects import sqlite as dialect
        statement = dialect.insert(provider_credentials).values(**values)
        statement = statement.on_conflict_do_update(
            index_elements=[provider_credentials.c.org_id, provider_credentials.c.provider],
            set_={"key_id": sealed.key_id, "ciphertext": sealed.blob, "updated_at": now},
        ).returning(*provider_credentials.c)
        async with self._db.begin() as connection:
            await require_org(connection, org_id)
            row = (await connection.execute(statement)).one()
        await self._notify("credential", f"{org_id}/{provider}")
        return to_record(row, ProviderCredential)

    async def get(self, org_id: str, provider: str) -> ProviderCredential:
        query = provider_credentials.select().where(_credential_in_org(org_id, provider))
        return await self._one(query, ProviderCredential, credential_not_found(provider))

    async def list(self, org_id: str) -> list[ProviderCredential]:
        query = (
            provider_credentials.select()
            .where(provider_credentials.c.org_id == org_id)
            .order_by(provider_credentials.c.provider)
        )
        return await self._all(query, ProviderCredential)

    async def reveal(self, org_id: str, provider: str) -> ProviderSecret | None:
        query = sa.select(provider_credentials.c.key_id, provider_credentials.c.ciphertext).where(
            _credential_in_org(org_id, provider)
        )
        async with self._db.connect() as connection:
            row = (await connection.execute(query)).first()
        if row is None:
            return None
        return open_secret(self._cipher, org_id, provider, row.key_id, bytes(row.ciphertext))

    async def delete(self, org_id: str, provider: str) -> None:
        statement = provider_credentials.delete().where(_credential_in_org(org_id, provider))
        await self._delete(statement, credential_not_found(provider))
        await self._notify("credential", f"{org_id}/{provider}")

    async def reencrypt(self, org_id: str) -> int:
        resealed = 0
        for credential in await self.list(org_id):
            sealed = reseal(self._cipher, credential)
            if sealed is None:
                continue
            # Only replace what we read: a concurrent put() already sealed with the newest key.
            statement = (
                provider_credentials.update()
                .where(
                    _credential_in_org(org_id, credential.provider),
                    provider_credentials.c.key_id == credential.key_id,
                )
                .values(key_id=sealed.key_id, ciphertext=sealed.blob)
            )
            async with self._db.begin() as connection:
                resealed += (await connection.execute(statement)).rowcount
        return resealed
