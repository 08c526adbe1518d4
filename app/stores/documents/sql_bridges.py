"""SQL repositories for bridges (with versions) and conversation threads."""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from junction.schemas.chat import Message
from junction.stores.documents.bridges import Bridge, BridgePatch, BridgeVersion, NewBridge, ResolvedBridge
from junction.stores.documents.common import (
    Notifier,
    bridge_not_found,
    check_last,
    check_limit,
    first_wanted_seq,
    is_bridge_id,
    new_bridge_fields,
    new_thread,
    numbered_messages,
    patched_fields,
    resolution,
    slug_taken,
    snapshot,
    stored_thread,
    thread_not_found,
    utc_now,
    version_fields,
    version_not_found,
)
from junction.stores.documents.protocol import Thread
from junction.stores.documents.sql import bridge_versions, bridges, thread_messages, threads
from junction.stores.documents.sql_repos import SqlRepository, require_org, to_record

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from junction.stores.documents.sql_store import SqlDatabase


def bridge_ref(org_id: str, id_or_slug: str) -> sa.ColumnElement[bool]:
    """The org's bridge named by id (``br_…``) or by slug."""
    key = bridges.c.id if is_bridge_id(id_or_slug) else bridges.c.slug
    return sa.and_(bridges.c.org_id == org_id, key == id_or_slug)


class SqlBridges(SqlRepository):
    async def create(self, org_id: str, spec: NewBridge) -> Bridge:
        values = new_bridge_fields(org_id, spec)
        try:
            async with self._db.begin() as connection:
                await require_org(connection, org_id)
                row = (
                    await connection.execute(bridges.insert().values(**values).returning(*bridges.c))
                ).one()
        except IntegrityError:
            raise slug_taken(spec.slug) from None
        await self._notify("bridge", values["id"])
        return to_record(row, Bridge)

    async def fetch(
        self, connection: AsyncConnection, org_id: str, id_or_slug: str, *, hold: bool = False
    ) -> Bridge:
        """The org's bridge; with ``hold``, on PostgreSQL, it cannot be deleted until the caller's
        transaction ends (a write that depends on it then never meets a vanished bridge)."""
        query = bridges.select().where(bridge_ref(org_id, id_or_slug))
        if hold:
            query = query.with_for_update(read=True, key_share=True)
        row = (await connection.execute(query)).first()
        if row is None:
            raise bridge_not_found(id_or_slug)
        return to_record(row, Bridge)

    async def get(self, org_id: str, id_or_slug: str) -> Bridge:
        async with self._db.connect() as connection:
            return await self.fetch(connection, org_id, id_or_slug)

    async def list(self, org_id: str) -> list[Bridge]:
        query = (
            bridges.select().where(bridges.c.org_id == org_id).order_by(bridges.c.created_at, bridges.c.id)
        )
        return await self._all(query, Bridge)

    async def update(self, org_id: str, bridge_id: str, patch: BridgePatch) -> Bridge:
        changes = patched_fields(patch)
        statement = (
            bridges.update().where(bridge_ref(org_id, bridge_id)).values(**changes).returning(*bridges.c)
        )
        try:
            bridge = await self._change_one(statement, Bridge, bridge_not_found(bridge_id))
        except IntegrityError:
            raise slug_taken(str(changes.get("slug"))) from None
        await self._notify("bridge", bridge.id)
        return bridge

    async def delete(self, org_id: str, bridge_id: str) -> None:
        # Versions and threads (and their messages) go with it through cascading foreign keys.
        async with self._db.begin() as connection:
            row = (
                await connection.execute(
                    bridges.delete().where(bridge_ref(org_id, bridge_id)).returning(bridges.c.id)
                )
            ).first()
        if row is None:
            raise bridge_not_found(bridge_id)
        await self._notify("bridge", row.id)

    async def create_version(self, org_id: str, bridge_id: str) -> BridgeVersion:
        # The increment and the draft it snapshots come from one UPDATE ... RETURNING, so two
        # concurrent snapshots get distinct numbers and each its own consistent draft.
        statement = (
            bridges.update()
            .where(bridge_ref(org_id, bridge_id))
            .values(latest_version=bridges.c.latest_version + 1, updated_at=utc_now())
            .returning(*bridges.c)
        )
        async with self._db.begin() as connection:
            row = (await connection.execute(statement)).first()
            if row is None:
                raise bridge_not_found(bridge_id)
            version = snapshot(to_record(row, Bridge))
            await connection.execute(bridge_versions.insert().values(**version_fields(version)))
        await self._notify("bridge", version.bridge_id)
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
            raise version_not_found(bridge, version)
        return to_record(row, BridgeVersion)

    async def get_version(self, org_id: str, bridge_id: str, version: int) -> BridgeVersion:
        async with self._db.connect() as connection:
            bridge = await self.fetch(connection, org_id, bridge_id)
            return await self._version(connection, bridge, version)

    async def list_versions(self, org_id: str, bridge_id: str) -> list[BridgeVersion]:
        async with self._db.connect() as connection:
            bridge = await self.fetch(connection, org_id, bridge_id)
            rows = await connection.execute(
                bridge_versions.select()
                .where(bridge_versions.c.bridge_id == bridge.id, bridge_versions.c.org_id == org_id)
                .order_by(bridge_versions.c.version)
            )
        return [to_record(row, BridgeVersion) for row in rows]

    async def publish(self, org_id: str, bridge_id: str, version: int) -> Bridge:
        async with self._db.begin() as connection:
            bridge = await self.fetch(connection, org_id, bridge_id, hold=True)
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
        async with self._db.connect() as connection:
            bridge = await self.fetch(connection, org_id, id_or_slug)
            if bridge.published_version is None:
                return resolution(bridge, None)
            return resolution(bridge, await self._version(connection, bridge, bridge.published_version))


class SqlThreads(SqlRepository):
    def __init__(self, database: SqlDatabase, notify: Notifier, bridges_repo: SqlBridges) -> None:
        super().__init__(database, notify)
        self._bridges = bridges_repo

    async def create(self, org_id: str, bridge_id: str | None = None, owner: str | None = None) -> Thread:
        async with self._db.begin() as connection:
            await require_org(connection, org_id)
            if bridge_id is not None:
                bridge_id = (await self._bridges.fetch(connection, org_id, bridge_id, hold=True)).id
            thread = new_thread(org_id, bridge_id, owner)
            await connection.execute(threads.insert().values(**stored_thread(thread)))
        return thread

    async def get(self, org_id: str, thread_id: str, last: int | None = None) -> Thread:
        check_last(last)
        async with self._db.connect() as connection:
            row = (
                await connection.execute(
                    threads.select().where(threads.c.id == thread_id, threads.c.org_id == org_id)
                )
            ).first()
            if row is None:
                raise thread_not_found(thread_id)
            rows = await connection.execute(
                sa.select(thread_messages.c.message)
                .where(
                    thread_messages.c.thread_id == thread_id,
                    thread_messages.c.seq >= first_wanted_seq(row.message_count, last),
                )
                .order_by(thread_messages.c.seq)
            )
            messages = [message for (message,) in rows]
        thread = to_record(row, Thread)
        thread.messages = msgspec.convert(messages, list[Message])
        return thread

    async def append(self, org_id: str, thread_id: str, messages: list[Message]) -> int:
        # Reserving the positions with one atomic increment keeps concurrent appends from
        # interleaving into the same sequence numbers.
        statement = (
            threads.update()
            .where(threads.c.id == thread_id, threads.c.org_id == org_id)
            .values(message_count=threads.c.message_count + len(messages), updated_at=utc_now())
            .returning(threads.c.message_count)
        )
        async with self._db.begin() as connection:
            total = (await connection.execute(statement)).scalar()
            if total is None:
                raise thread_not_found(thread_id)
            if messages:
                await connection.execute(
                    thread_messages.insert(),
                    [
                        {"thread_id": thread_id, "seq": seq, "message": message}
                        for seq, message in numbered_messages(messages, total)
                    ],
                )
        return total

    async def list(self, org_id: str, bridge_id: str | None = None, limit: int = 100) -> list[Thread]:
        query = threads.select().where(threads.c.org_id == org_id)
        check_limit(limit)
        async with self._db.connect() as connection:
            if bridge_id is not None:
                query = query.where(
                    threads.c.bridge_id == (await self._bridges.fetch(connection, org_id, bridge_id)).id
                )
            rows = await connection.execute(
                query.order_by(threads.c.updated_at.desc(), threads.c.id.desc()).limit(limit)
            )
        return [to_record(row, Thread) for row in rows]

    async def latest_owned(self, org_id: str, bridge_id: str, owner: str) -> Thread | None:
        query = (threads.select()
                 .where(threads.c.org_id == org_id, threads.c.bridge_id == bridge_id, threads.c.owner == owner)
                 .order_by(threads.c.created_at.desc(), threads.c.id.desc()).limit(1))
        found = await self._all(query, Thread)
        return found[0] if found else None

    async def org_of(self, thread_id: str) -> str | None:
        async with self._db.connect() as connection:
            query = sa.select(threads.c.org_id).where(threads.c.id == thread_id)
            return (await connection.execute(query)).scalar()

    async def delete(self, org_id: str, thread_id: str) -> None:
        statement = threads.delete().where(threads.c.id == thread_id, threads.c.org_id == org_id)
        await self._delete(statement, thread_not_found(thread_id))
        await self._notify("thread", thread_id)
