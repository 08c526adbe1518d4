"""The fast "already at head?" check agrees with Alembic, and refuses to guess on anything unusual."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy.ext.asyncio import create_async_engine

from junction.resources import migrations_dir
from junction.stores.documents import sql_schema
from junction.stores.metrics import migrate as metrics_migrate


def test_the_heads_read_from_the_files_are_alembics() -> None:
    assert sql_schema.head_from_files(migrations_dir() / "versions") == sql_schema.head_revision()
    assert sql_schema.head_from_files(migrations_dir("metrics") / "versions") == metrics_migrate.head_revision()


def test_unclear_files_mean_ask_alembic(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text('revision = "a"\ndown_revision = None\n', encoding="utf-8")
    (tmp_path / "b.py").write_text('revision = "b"\ndown_revision = "a"\n', encoding="utf-8")
    assert sql_schema.head_from_files(tmp_path) == "b"
    (tmp_path / "c.py").write_text('revision = "c"\ndown_revision = "a"\n', encoding="utf-8")
    assert sql_schema.head_from_files(tmp_path) is None  # two heads
    (tmp_path / "c.py").write_text('revision = make_id()\ndown_revision = "b"\n', encoding="utf-8")
    assert sql_schema.head_from_files(tmp_path) is None  # not a plain string


def test_at_head_only_for_a_database_at_the_head(tmp_path: Path) -> None:
    async def check() -> list[bool]:
        engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}")
        try:
            fresh = await sql_schema.at_head(engine)
            await sql_schema.upgrade_to_head(engine)
            migrated = await sql_schema.at_head(engine)
            async with engine.begin() as connection:
                await connection.exec_driver_sql(f"UPDATE {sql_schema.VERSION_TABLE} SET version_num = 'old'")
            behind = await sql_schema.at_head(engine)
            return [fresh, migrated, behind]
        finally:
            await engine.dispose()

    assert asyncio.run(check()) == [False, True, False]
