"""Where batch files' bytes live: in the documents store (default), or in ``[jobs] files_dir``
(one file per id, written atomically) with only their metadata in the store. A directory shared by
every node (NFS, a mounted volume) keeps large files out of the database.

Files in the directory leave with their records: a sweep deletes those whose record expired, and
those with no record at all (MongoDB's TTL index deletes records on its own; a writer that died
left a partial file) once they are older than ``ORPHAN_GRACE_SECONDS`` — younger ones may be a
save whose record is not written yet."""

from __future__ import annotations

import asyncio
import logging
import os
from datetime import datetime
from pathlib import Path

from junction.domain.jobs.records import JobRepository, StoredFile
from junction.stores.documents.jobs_common import file_not_found

log = logging.getLogger("junction.batches")

#: Age after which a file without a record is an orphan, not a save in progress.
ORPHAN_GRACE_SECONDS = 3600.0
#: File ids looked up in the store at once.
SWEEP_CHUNK = 500
PARTIAL_SUFFIX = ".partial"


class FileStorage:
    def __init__(self, store: JobRepository, directory: str | None) -> None:
        self.store = store
        self.directory = Path(directory) if directory else None

    async def save(self, record: StoredFile, content: bytes) -> None:
        if self.directory is None:
            await self.store.create_file(record, content)
            return
        await asyncio.to_thread(self._write, record.id, content)
        await self.store.create_file(record, b"")

    async def content(self, org_id: str | None, file_id: str) -> bytes:
        if self.directory is None:
            return await self.store.file_content(org_id, file_id)
        await self.store.get_file(org_id, file_id)  # the org and expiry checks
        try:
            return await asyncio.to_thread((self.directory / file_id).read_bytes)
        except FileNotFoundError:
            raise file_not_found(file_id) from None

    async def sweep(self, now: datetime) -> int:
        """Delete the directory's expired and orphaned files (before their records go, so a sweep
        that stops half-way finds them again); returns how many."""
        if self.directory is None:
            return 0
        found = await asyncio.to_thread(self._listing)
        orphan_before = now.timestamp() - ORPHAN_GRACE_SECONDS
        doomed = [name for name, modified in found if name.startswith(".") and modified < orphan_before]
        named = [(name, modified) for name, modified in found if not name.startswith(".")]
        for start in range(0, len(named), SWEEP_CHUNK):
            chunk = named[start:start + SWEEP_CHUNK]
            expired = await self.store.files_expired([name for name, _ in chunk], now)
            doomed += [name for name, modified in chunk
                       if (expired[name] if name in expired else modified < orphan_before)]
        if doomed:
            await asyncio.to_thread(self._delete, doomed)
            log.info("deleted %d expired or orphaned batch files from files_dir", len(doomed))
        return len(doomed)

    def _listing(self) -> list[tuple[str, float]]:
        assert self.directory is not None
        if not self.directory.is_dir():
            return []
        found = []
        for entry in os.scandir(self.directory):
            if entry.is_file(follow_symlinks=False) and (not entry.name.startswith(".")
                                                         or entry.name.endswith(PARTIAL_SUFFIX)):
                found.append((entry.name, entry.stat(follow_symlinks=False).st_mtime))
        return found

    def _delete(self, names: list[str]) -> None:
        assert self.directory is not None
        for name in names:
            (self.directory / name).unlink(missing_ok=True)

    def _write(self, file_id: str, content: bytes) -> None:
        assert self.directory is not None
        self.directory.mkdir(parents=True, exist_ok=True)
        partial = self.directory / f".{file_id}{PARTIAL_SUFFIX}"
        with open(partial, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        partial.replace(self.directory / file_id)
