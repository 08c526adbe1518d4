"""Where batch files' bytes live: in the documents store (default), or in ``[jobs] files_dir``
(one file per id, written atomically) with only their metadata in the store. A directory shared by
every node (NFS, a mounted volume) keeps large files out of the database."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from app.domain.jobs.records import JobRepository, StoredFile
from app.stores.documents.jobs_common import file_not_found


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

    def _write(self, file_id: str, content: bytes) -> None:
        assert self.directory is not None
        self.directory.mkdir(parents=True, exist_ok=True)
        partial = self.directory / f".{file_id}.partial"
        with open(partial, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        partial.replace(self.directory / file_id)
