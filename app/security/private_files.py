"""Files only this user may read, written once however many workers start at the same time."""

from __future__ import annotations

import os
from pathlib import Path


def create_private_file_once(path: Path, content: str) -> None:
    """Write ``content`` to ``path`` (0600) unless the file exists; concurrent callers race safely.

    The content goes to a private temporary file first, then a hard link puts it in place: the
    link either wins atomically or fails because another worker won, so no reader ever sees a
    partial file and every worker ends up reading the winner's content.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        return
    candidate = path.with_name(f".{path.name}.{os.getpid()}")
    descriptor = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(content)
    try:
        os.link(candidate, path)
    except FileExistsError:
        pass  # another worker linked its file first; theirs is the one everybody reads
    finally:
        candidate.unlink()


def private_sqlite_file(url: str) -> None:
    """Make the SQLite database of ``url`` owner-only (0600) before SQLite opens it: created empty
    with that mode when missing (SQLite gives its ``-wal`` and ``-shm`` files the database file's
    mode), tightened when an existing one (or its ``-wal``/``-shm``) is readable by others. It
    holds prompts, threads, key hashes and sealed credentials. In-memory databases are left alone."""
    from sqlalchemy.engine import make_url

    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass  # another worker (or an earlier run) made it; its mode is checked below
    for candidate in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            mode = candidate.stat().st_mode & 0o777
        except FileNotFoundError:
            continue
        if mode & 0o077:
            os.chmod(candidate, mode & 0o700)
