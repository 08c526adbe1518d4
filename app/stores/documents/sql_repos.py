"""SQL repositories for orgs, API keys and provider credentials."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

import msgspec
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from app.errors import NotFound
from app.security.api_keys import generate_api_key, key_prefix, verify_api_key
from app.security.crypto import Cipher
from app.stores.documents.common import Notifier, check_provider, new_id, open_secret, seal_secret, utc_now
from app.stores.documents.protocol import (
    ApiKey,
    IssuedApiKey,
    NewApiKey,
    Org,
    OrgPatch,
    ProviderCredential,
    ProviderSecret,
)
from app.stores.documents.sql import api_keys, orgs, provider_credentials

if TYPE_CHECKING:
    from app.stores.documents.sql_store import SqlDatabase

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
    found = await connection.scalar(sa.select(orgs.c.id).where(orgs.c.id == org_id))
    if found is None:
        raise NotFound(f"org {org_id!r} not found", param="org_id")


class SqlOrgs:
    def __init__(self, database: SqlDatabase, notify: Notifier) -> None:
        self._db = database
        self._notify = notify

    async def create(self, name: str) -> Org:
        now = utc_now()
        org = Org(id=new_id("org"), name=name, created_at=now, updated_at=now)
        async with self._db.engine.begin() as connection:
            await connection.execute(orgs.insert().values(**row_values(org)))
        await self._notify("org", org.id)
        return org

    async def get(self, org_id: str) -> Org:
        async with self._db.engine.connect() as connection:
            row = (await connection.execute(orgs.select().where(orgs.c.id == org_id))).first()
        if row is None:
            raise NotFound(f"org {org_id!r} not found")
        return to_record(row, Org)

    async def list(self) -> list[Org]:
        async with self._db.engine.connect() as connection:
            rows = await connection.execute(orgs.select().order_by(orgs.c.created_at, orgs.c.id))
        return [to_record(row, Org) for row in rows]

    async def update(self, org_id: str, patch: OrgPatch) -> Org:
        changes: dict[str, Any] = {"updated_at": utc_now()}
        if patch.name is not msgspec.UNSET:
            changes["name"] = patch.name
        async with self._db.engine.begin() as connection:
            row = (
                await connection.execute(
                    orgs.update().where(orgs.c.id == org_id).values(**changes).returning(*orgs.c)
                )
            ).first()
        if row is None:
            raise NotFound(f"org {org_id!r} not found")
        await self._notify("org", org_id)
        return to_record(row, Org)

    async def delete(self, org_id: str) -> None:
        # Foreign keys cascade to keys, credentials, bridges, versions, threads and messages.
        async with self._db.engine.begin() as connection:
            result = await connection.execute(orgs.delete().where(orgs.c.id == org_id))
        if result.rowcount == 0:
            raise NotFound(f"org {org_id!r} not found")
        await self._notify("org", org_id)


_KEY_JSON = ("scopes", "models")


class SqlApiKeys:
    def __init__(self, database: SqlDatabase, notify: Notifier) -> None:
        self._db = database
        self._notify = notify

    async def create(self, org_id: str, spec: NewApiKey) -> IssuedApiKey:
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
        async with self._db.engine.begin() as connection:
            await require_org(connection, org_id)
            await connection.execute(api_keys.insert().values(**row_values(record, _KEY_JSON)))
        await self._notify("key", record.id)
        return IssuedApiKey(record=record, key=generated.key)

    def _in_org(self, org_id: str, key_id: str) -> sa.ColumnElement[bool]:
        return sa.and_(api_keys.c.id == key_id, api_keys.c.org_id == org_id)

    async def get(self, org_id: str, key_id: str) -> ApiKey:
        async with self._db.engine.connect() as connection:
            row = (await connection.execute(api_keys.select().where(self._in_org(org_id, key_id)))).first()
        if row is None:
            raise NotFound(f"API key {key_id!r} not found")
        return to_record(row, ApiKey)

    async def list(self, org_id: str) -> list[ApiKey]:
        query = (
            api_keys.select()
            .where(api_keys.c.org_id == org_id)
            .order_by(api_keys.c.created_at, api_keys.c.id)
        )
        async with self._db.engine.connect() as connection:
            rows = await connection.execute(query)
        return [to_record(row, ApiKey) for row in rows]

    async def revoke(self, org_id: str, key_id: str) -> ApiKey:
        statement = (
            api_keys.update()
            .where(self._in_org(org_id, key_id))
            .values(
                revoked_at=sa.func.coalesce(
                    api_keys.c.revoked_at, sa.bindparam("now", utc_now(), type_=api_keys.c.revoked_at.type)
                )
            )
            .returning(*api_keys.c)
        )
        async with self._db.engine.begin() as connection:
            row = (await connection.execute(statement)).first()
        if row is None:
            raise NotFound(f"API key {key_id!r} not found")
        await self._notify("key", key_id)
        return to_record(row, ApiKey)

    async def delete(self, org_id: str, key_id: str) -> None:
        async with self._db.engine.begin() as connection:
            result = await connection.execute(api_keys.delete().where(self._in_org(org_id, key_id)))
        if result.rowcount == 0:
            raise NotFound(f"API key {key_id!r} not found")
        await self._notify("key", key_id)

    async def find_by_prefix(self, prefix: str) -> ApiKey | None:
        async with self._db.engine.connect() as connection:
            row = (await connection.execute(api_keys.select().where(api_keys.c.prefix == prefix))).first()
        return None if row is None else to_record(row, ApiKey)

    async def authenticate(self, presented: str) -> ApiKey | None:
        prefix = key_prefix(presented)
        record = None if prefix is None else await self.find_by_prefix(prefix)
        if record is None or not verify_api_key(presented, record.secret_hash):
            return None
        return record if record.is_active(utc_now()) else None


class SqlCredentials:
    def __init__(self, database: SqlDatabase, notify: Notifier, cipher: Cipher) -> None:
        self._db = database
        self._notify = notify
        self._cipher = cipher

    def _in_org(self, org_id: str, provider: str) -> sa.ColumnElement[bool]:
        return sa.and_(provider_credentials.c.org_id == org_id, provider_credentials.c.provider == provider)

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
        dialect = postgresql if self._db.engine.dialect.name == "postgresql" else sqlite
        statement = dialect.insert(provider_credentials).values(**values)
        statement = statement.on_conflict_do_update(
            index_elements=[provider_credentials.c.org_id, provider_credentials.c.provider],
            set_={"key_id": sealed.key_id, "ciphertext": sealed.blob, "updated_at": now},
        ).returning(*provider_credentials.c)
        async with self._db.engine.begin() as connection:
            await require_org(connection, org_id)
            row = (await connection.execute(statement)).one()
        await self._notify("credential", f"{org_id}/{provider}")
        return to_record(row, ProviderCredential)

    async def get(self, org_id: str, provider: str) -> ProviderCredential:
        async with self._db.engine.connect() as connection:
            row = (
                await connection.execute(provider_credentials.select().where(self._in_org(org_id, provider)))
            ).first()
        if row is None:
            raise NotFound(f"no {provider!r} credential in this org")
        return to_record(row, ProviderCredential)

    async def list(self, org_id: str) -> list[ProviderCredential]:
        query = (
            provider_credentials.select()
            .where(provider_credentials.c.org_id == org_id)
            .order_by(provider_credentials.c.provider)
        )
        async with self._db.engine.connect() as connection:
            rows = await connection.execute(query)
        return [to_record(row, ProviderCredential) for row in rows]

    async def reveal(self, org_id: str, provider: str) -> ProviderSecret | None:
        async with self._db.engine.connect() as connection:
            row = (
                await connection.execute(
                    sa.select(provider_credentials.c.key_id, provider_credentials.c.ciphertext).where(
                        self._in_org(org_id, provider)
                    )
                )
            ).first()
        if row is None:
            return None
        return open_secret(self._cipher, org_id, provider, row.key_id, bytes(row.ciphertext))

    async def delete(self, org_id: str, provider: str) -> None:
        async with self._db.engine.begin() as connection:
            result = await connection.execute(
                provider_credentials.delete().where(self._in_org(org_id, provider))
            )
        if result.rowcount == 0:
            raise NotFound(f"no {provider!r} credential in this org")
        await self._notify("credential", f"{org_id}/{provider}")

    async def reencrypt(self, org_id: str) -> int:
        resealed = 0
        for credential in await self.list(org_id):
            if self._cipher.is_current(credential.key_id):
                continue
            secret = open_secret(
                self._cipher, org_id, credential.provider, credential.key_id, credential.ciphertext
            )
            sealed = seal_secret(self._cipher, org_id, credential.provider, secret)
            # Only replace what we read: a concurrent put() already sealed with the newest key.
            statement = (
                provider_credentials.update()
                .where(
                    self._in_org(org_id, credential.provider),
                    provider_credentials.c.key_id == credential.key_id,
                )
                .values(key_id=sealed.key_id, ciphertext=sealed.blob)
            )
            async with self._db.engine.begin() as connection:
                resealed += (await connection.execute(statement)).rowcount
        return resealed
