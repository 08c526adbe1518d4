"""SQL repositories for bridges (with versions) and conversation threads."""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from app.errors import Conflict, InvalidRequest, NotFound
from app.schemas.chat import Message
from app.stores.documents.common import (
    Notifier,
    bridge_config_builtins,
    bridge_fields,
    is_bridge_id,
    new_id,
    patched_fields,
    utc_now,
)
from app.stores.documents.protocol import (
    Bridge,
    BridgePatch,
    BridgeVersion,
    NewBridge,
    ResolvedBridge,
    Thread,
)
from app.stores.documents.sql import bridge_versions, bridges, thread_messages, threads
from app.stores.documents.sql_repos import require_org, to_record

if TYPE_CHECKING:
    from app.stores.documents.sql_store import SqlDatabase


def _slug_taken(slug: str) -> Conflict:
    return Conflict(
        f"a bridge with slug {slug!r} already exists in this org", param="slug", code="slug_taken"
    )


def bridge_ref(org_id: str, id_or_slug: str) -> sa.ColumnElement[bool]:
    """The org's bridge named by id (``br_…``) or by slug."""
    key = bridges.c.id if is_bridge_id(id_or_slug) else bridges.c.slug
    return sa.and_(bridges.c.org_id == org_id, key == id_or_slug)


class SqlBridges:
    def __init__(self, database: SqlDatabase, notify: Notifier) -> None:
        self._db = database
        self._notify = notify

    async def create(self, org_id: str, spec: NewBridge) -> Bridge:
        now = utc_now()
        values = {
            **bridge_fields(spec),
            "id": new_id("br"),
            "org_id": org_id,
            "published_version": None,
            "latest_version": 0,
            "created_at": now,
            "updated_at": now,
        }
        try:
            async with self._db.engine.begin() as connection:
                await require_org(connection, org_id)
                row = (
                    await connection.execute(bridges.insert().values(**values).returning(*bridges.c))
                ).one()
        except IntegrityError:
            raise _slug_taken(spec.slug) from None
        await self._notify("bridge", values["id"])
        return to_record(row, Bridge)

    async def fetch(self, connection: AsyncConnection, org_id: str, id_or_slug: str) -> Bridge:
        row = (await connection.execute(bridges.select().where(bridge_ref(org_id, id_or_slug)))).first()
        if row is None:
            raise NotFound(f"bridge {id_or_slug!r} not found")
        return to_record(row, Bridge)

    async def get(self, org_id: str, id_or_slug: str) -> Bridge:
        async with self._db.engine.connect() as connection:
            return await self.fetch(connection, org_id, id_or_slug)

    async def list(self, org_id: str) -> list[Bridge]:
        query = (
            bridges.select().where(bridges.c.org_id == org_id).order_by(bridges.c.created_at, bridges.c.id)
        )
        async with self._db.engine.connect() as connection:
            rows = await connection.execute(query)
        return [to_record(row, Bridge) for row in rows]

    async def update(self, org_id: str, bridge_id: str, patch: BridgePatch) -> Bridge:
        changes = {**patched_fields(patch), "updated_at": utc_now()}
        statement = (
            bridges.update().where(bridge_ref(org_id, bridge_id)).values(**changes).returning(*bridges.c)
        )
        try:
            async with self._db.engine.begin() as connection:
                row = (await connection.execute(statement)).first()
        except IntegrityError:
            raise _slug_taken(str(changes.get("slug"))) from None
        if row is None:
            raise NotFound(f"bridge {bridge_id!r} not found")
        bridge = to_record(row, Bridge)
        await self._notify("bridge", bridge.id)
        return bridge

    async def delete(self, org_id: str, bridge_id: str) -> None:
        # Versions and threads (and their messages) go with it through cascading foreign keys.
        async with self._db.engine.begin() as connection:
            row = (
                await connection.execute(
                    bridges.delete().where(bridge_ref(org_id, bridge_id)).returning(bridges.c.id)
                )
            ).first()
        if row is None:
            raise NotFound(f"bridge {bridge_id!r} not found")
        await self._notify("bridge", row.id)

    async def create_version(self, org_id: str, bridge_id: str) -> BridgeVersion:
        # The increment and the draft it snapshots come from one UPDATE ... RETURNING, so two
        # concurrent snapshots get distinct numbers and each its own consistent draft.
        now = utc_now()
        statement = (
            bridges.update()
            .where(bridge_ref(org_id, bridge_id))
            .values(latest_version=bridges.c.latest_version + 1, updated_at=now)
            .returning(*bridges.c)
        )
        async with self._db.engine.begin() as connection:
            row = (await connection.execute(statement)).first()
            if row is None:
                raise NotFound(f"bridge {bridge_id!r} not found")
            bridge = to_record(row, Bridge)
            version = BridgeVersion(
                bridge_id=bridge.id,
                org_id=org_id,
                version=bridge.latest_version,
                config=bridge.draft(),
                created_at=now,
            )
            await connection.execute(
                bridge_versions.insert().values(
                    bridge_id=bridge.id,
                    org_id=org_id,
                    version=version.version,
                    config=bridge_config_builtins(bridge),
                    created_at=now,
                )
            )
        await self._notify("bridge", bridge.id)
        return version

    async def _version(self, connection: AsyncConnection, bridge: Bridge, version: int) -> BridgeVersion:
        row = (
            await connection.execute(
                bridge_versions.select().where(
                    bridge_versions.c.bridge_id == bridge.id,
                    bridge_versions.c.org_id == bridge.org_id,
                    bridge_versions.c.version == version,
                )
            )
        ).first()
        if row is None:
            raise NotFound(f"bridge {bridge.slug!r} has no version {version}", param="version")
        return to_record(row, BridgeVersion)

    async def get_version(self, org_id: str, bridge_id: str, version: int) -> BridgeVersion:
        async with self._db.engine.connect() as connection:
            bridge = await self.fetch(connection, org_id, bridge_id)
            return await self._version(connection, bridge, version)

    async def list_versions(self, org_id: str, bridge_id: str) -> list[BridgeVersion]:
        async with self._db.engine.connect() as connection:
            bridge = await self.fetch(connection, org_id, bridge_id)
            rows = await connection.execute(
                bridge_versions.select()
                .where(bridge_versions.c.bridge_id == bridge.id, bridge_versions.c.org_id == org_id)
                .order_by(bridge_versions.c.version)
            )
        return [to_record(row, BridgeVersion) for row in rows]

    async def publish(self, org_id: str, bridge_id: str, version: int) -> Bridge:
        async with self._db.engine.begin() as connection:
            bridge = await self.fetch(connection, org_id, bridge_id)
            await self._version(connection, bridge, version)
            row = (
                await connection.execute(
                    bridges.update()
                    .where(bridges.c.id == bridge.id, bridges.c.org_id == org_id)
                    .values(published_version=version, updated_at=utc_now())
                    .returning(*bridges.c)
                )
            ).one()
        await self._notify("bridge", bridge.id)
        return to_record(row, Bridge)

    async def resolve(self, org_id: str, id_or_slug: str) -> ResolvedBridge:
        async with self._db.engine.connect() as connection:
            bridge = await self.fetch(connection, org_id, id_or_slug)
            if bridge.published_version is None:
                return ResolvedBridge(bridge=bridge, version=None, config=bridge.draft())
            published = await self._version(connection, bridge, bridge.published_version)
        return ResolvedBridge(bridge=bridge, version=published.version, config=published.config)


class SqlThreads:
    def __init__(self, database: SqlDatabase, notify: Notifier, bridges_repo: SqlBridges) -> None:
        self._db = database
        self._notify = notify
        self._bridges = bridges_repo

    async def create(self, org_id: str, bridge_id: str | None = None) -> Thread:
        now = utc_now()
        async with self._db.engine.begin() as connection:
            await require_org(connection, org_id)
            if bridge_id is not None:
                bridge_id = (await self._bridges.fetch(connection, org_id, bridge_id)).id
            thread = Thread(
                id=new_id("th"), org_id=org_id, bridge_id=bridge_id, created_at=now, updated_at=now
            )
            await connection.execute(
                threads.insert().values(
                    id=thread.id,
                    org_id=org_id,
                    bridge_id=bridge_id,
                    message_count=0,
                    created_at=now,
                    updated_at=now,
                )
            )
        return thread

    async def get(self, org_id: str, thread_id: str, last: int | None = None) -> Thread:
        if last is not None and last < 0:
            raise InvalidRequest("last must be >= 0", param="last")
        async with self._db.engine.connect() as connection:
            row = (
                await connection.execute(
                    threads.select().where(threads.c.id == thread_id, threads.c.org_id == org_id)
                )
            ).first()
            if row is None:
                raise NotFound(f"thread {thread_id!r} not found")
            first_seq = 1 if last is None else row.message_count - last + 1
            rows = await connection.execute(
                sa.select(thread_messages.c.message)
                .where(thread_messages.c.thread_id == thread_id, thread_messages.c.seq >= first_seq)
                .order_by(thread_messages.c.seq)
            )
            messages = msgspec.convert([message for (message,) in rows], list[Message])
        return Thread(
            id=row.id,
            org_id=row.org_id,
            bridge_id=row.bridge_id,
            messages=messages,
            message_count=row.message_count,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )

    async def append(self, org_id: str, thread_id: str, messages: list[Message]) -> int:
        # Reserving the positions with one atomic increment keeps concurrent appends from
        # interleaving into the same sequence numbers.
        statement = (
            threads.update()
            .where(threads.c.id == thread_id, threads.c.org_id == org_id)
            .values(message_count=threads.c.message_count + len(messages), updated_at=utc_now())
            .returning(threads.c.message_count)
        )
        async with self._db.engine.begin() as connection:
            total = (await connection.execute(statement)).scalar()
            if total is None:
                raise NotFound(f"thread {thread_id!r} not found")
            if messages:
                start = total - len(messages) + 1
                await connection.execute(
                    thread_messages.insert(),
                    [
                        {
                            "thread_id": thread_id,
                            "seq": start + offset,
                            "message": msgspec.to_builtins(message),
                        }
                        for offset, message in enumerate(messages)
                    ],
                )
        return total

    async def list(self, org_id: str, bridge_id: str | None = None, limit: int = 100) -> list[Thread]:
        query = threads.select().where(threads.c.org_id == org_id)
        async with self._db.engine.connect() as connection:
            if bridge_id is not None:
                query = query.where(
                    threads.c.bridge_id == (await self._bridges.fetch(connection, org_id, bridge_id)).id
                )
            rows = await connection.execute(
                query.order_by(threads.c.updated_at.desc(), threads.c.id.desc()).limit(limit)
            )
        return [to_record(row, Thread) for row in rows]

    async def delete(self, org_id: str, thread_id: str) -> None:
        async with self._db.engine.begin() as connection:
            result = await connection.execute(
                threads.delete().where(threads.c.id == thread_id, threads.c.org_id == org_id)
            )
        if result.rowcount == 0:
            raise NotFound(f"thread {thread_id!r} not found")
        await self._notify("thread", thread_id)
