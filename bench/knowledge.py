"""RAG numbers: ingestion throughput with the real local model, and query latency of each vector
index at 10k and 100k chunks.

    python bench/knowledge.py --ingest-docs 20            # ingestion only (HTTP, both indexes)
    python bench/knowledge.py --sizes 10000 100000        # query latency only (no model needed)

* Ingestion: a real ``junction serve`` with ``[providers.local]`` (all-MiniLM-L6-v2) takes
  ``--ingest-docs`` documents of ~10 chunks each through ``POST …/documents``: extraction,
  chunking, embedding, the documents store and the index. Reported: chunks/s (after a warm-up
  document that loads the model).
* Query latency: the documents store and the index are filled directly with clustered unit
  vectors (384 dimensions, like the model's; see ``clustered_vectors``), asked with questions near
  stored chunks, then ``KnowledgeService.search`` runs ``--queries`` times with
  ``top_k=10``: the vector search plus the read of the chunks' texts, i.e. the query route minus
  embedding the question (measured separately, once per run, through the local model). pgvector
  also reports recall@10 against exact search over the same vectors (HNSW above
  ``exact_below`` = 10,000 chunks; exact below). pgvector is bulk-loaded: rows first, the HNSW
  index built afterwards (timed apart); ingestion through the API maintains it row by row.

The in-process index runs on SQLite, pgvector on the PostgreSQL of the ``pgserver`` wheel (pip
install pgserver). Noisy on a shared host: run both sizes in one go and compare within a run.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from junction.domain.rag.service import KnowledgeService  # noqa: E402
from junction.plugins.protocols import PluginContext, Principal  # noqa: E402
from junction.plugins.vector_indexes import load_vector_index  # noqa: E402
from junction.security.crypto import Cipher, EncryptionKey  # noqa: E402
from junction.settings import KnowledgeSettings, settings_from_mapping  # noqa: E402
from junction.stores.documents import open_document_store  # noqa: E402
from junction.stores.documents.common import utc_now  # noqa: E402
from junction.stores.documents.knowledge import Chunk, KnowledgeDocument, NewCollection  # noqa: E402
from junction.stores.documents.sql_schema import upgrade_to_head  # noqa: E402
from junction.stores.sql_engine import open_engine  # noqa: E402

DIMS = 384
PRINCIPAL = Principal(id="bench", kind="master", scopes=frozenset({"admin", "chat"}))
WORDS = ("gateway router cache token stream provider budget limit vector index chunk model bridge thread "
         "org key latency queue worker batch metric trace policy fallback retry circuit").split()


class QueuedVectors:
    """Hands out pre-drawn query vectors (the question's embedding is measured on its own)."""

    def __init__(self, vectors: np.ndarray) -> None:
        self._vectors = [vector.astype("<f4").tobytes() for vector in vectors]

    async def embed(self, principal, org_id, model, texts):
        return [self._vectors.pop() for _ in texts]


def unit_vectors(rng: np.random.Generator, count: int) -> np.ndarray:
    vectors = rng.standard_normal((count, DIMS), dtype=np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def clustered_vectors(rng: np.random.Generator, count: int, topics: int = 1000) -> np.ndarray:
    """Chunks about ``topics`` subjects (a chunk is its topic's centre plus noise, cosine ~0.7 to
    it), like real embeddings; uniform random vectors in 384 dimensions are all about equally far
    apart, which no approximate index (nor a user) meets in practice."""
    centres = unit_vectors(rng, topics)
    vectors = centres[rng.integers(0, topics, count)] + 0.05 * rng.standard_normal((count, DIMS), dtype=np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def questions(rng: np.random.Generator, vectors: np.ndarray, count: int) -> np.ndarray:
    """Questions near stored chunks (a chunk plus as much noise again)."""
    asked = vectors[rng.integers(0, len(vectors), count)] + 0.05 * rng.standard_normal((count, DIMS), dtype=np.float32)
    return asked / np.linalg.norm(asked, axis=1, keepdims=True)


async def fill(store, index, org_id: str, collection_id: str, vectors: np.ndarray, per_document: int = 1000,
               first_document: int = 0, tag: int = 0):
    collection = None
    offset = first_document  # chunk numbers continue after the ones already stored
    for start in range(0, len(vectors), per_document):
        now = utc_now()
        document_id = f"doc-{offset}-{start // per_document}"
        chunks = [Chunk(id=f"ch_{tag}_{offset + start + i:08d}", collection_id=collection_id, document_id=document_id,
                        org_id=org_id, position=i, text=f"chunk {start + i}", metadata={"n": (start + i) % 10},
                        embedding=vector.tobytes()) for i, vector in enumerate(vectors[start:start + per_document])]
        document = KnowledgeDocument(id=document_id, collection_id=collection_id, org_id=org_id, metadata={},
                                     chunks=len(chunks), created_at=now, updated_at=now)
        collection = await store.knowledge.replace_document(document, chunks, DIMS)
        from junction.plugins.vectors import IndexedVector

        await index.add(collection, document_id, [IndexedVector(chunk_id=c.id, document_id=document_id,
                                                                metadata=c.metadata, vector=c.embedding)
                                                  for c in chunks])
    return collection


async def query_latency(name: str, url: str, sizes: list[int], queries: int, settings_extra: dict) -> None:
    for size in sizes:
        settings = settings_from_mapping({"stores": {"documents": url}, "knowledge": {"index": name},
                                          **settings_extra})
        cipher = Cipher([EncryptionKey(id="bench", material=bytes(32))])
        if url.startswith("postgresql"):
            engine = open_engine(url)
            await upgrade_to_head(engine)
            await engine.dispose()
        store = open_document_store(url, cipher=cipher)
        await store.start()

        class Engines:
            def engine(self, which):
                return store.database.engine

        index = load_vector_index(PluginContext(settings=settings, documents=store, sql=Engines()))
        await index.start()
        try:
            rng = np.random.default_rng(size)
            vectors = clustered_vectors(rng, size)
            org = await store.orgs.create(f"bench-{size}")
            collection = await store.knowledge.create_collection(org.id, NewCollection(name=f"bench-{size}"))
            build = ""
            started = time.perf_counter()
            if name == "pgvector":  # bulk load: rows first, the HNSW index built once afterwards
                import sqlalchemy as sa

                await fill(store, index, org.id, collection.id, vectors[:1], tag=size)
                async with store.database.engine.begin() as connection:
                    await connection.execute(sa.text(f"DROP INDEX IF EXISTS rag_vectors_{DIMS}_hnsw"))
                collection = await fill(store, index, org.id, collection.id, vectors[1:], first_document=1, tag=size)
                fill_seconds = time.perf_counter() - started
                built = time.perf_counter()
                async with store.database.engine.begin() as connection:
                    await connection.execute(sa.text("SET maintenance_work_mem = '512MB'"))
                    await connection.execute(sa.text(
                        f"CREATE INDEX rag_vectors_{DIMS}_hnsw ON rag_vectors_{DIMS} USING hnsw "
                        "(embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64)"))
                build = f" + HNSW build {time.perf_counter() - built:.0f} s"
            else:
                collection = await fill(store, index, org.id, collection.id, vectors, tag=size)
                fill_seconds = time.perf_counter() - started
            asked = questions(rng, vectors, queries + 1)
            service = KnowledgeService(store.knowledge, index, QueuedVectors(asked[::-1]), KnowledgeSettings())
            first = time.perf_counter()
            await service.search([collection], PRINCIPAL, "q", 10)  # loads (in-process) / warms caches
            first_ms = (time.perf_counter() - first) * 1000
            times, recalls = [], []
            for position in range(1, queries + 1):
                started = time.perf_counter()
                results = await service.search([collection], PRINCIPAL, "q", 10)
                times.append((time.perf_counter() - started) * 1000)
                exact = set(np.argsort(-(vectors @ asked[position]))[:10])
                recalls.append(len(exact & {int(r.chunk_id.rsplit("_", 1)[1]) for r in results}) / 10)
            times.sort()
            p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
            print(f"{name:10} {size:>7} chunks: fill {size / fill_seconds:8.0f} chunks/s{build} | first query {first_ms:8.1f} ms"
                  f" | p50 {statistics.median(times):7.2f} ms  p99 {p99:7.2f} ms | recall@10 {statistics.mean(recalls):.3f}",
                  flush=True)
        finally:
            await index.close()
            await store.close()


def ingest(name: str, extra_config: str, documents: int) -> None:
    from junction.testing.server import JunctionProcess

    rng = np.random.default_rng(7)
    texts = [". ".join(" ".join(rng.choice(WORDS, 12)) for _ in range(25)) + "." for _ in range(documents + 1)]
    config = f'[providers.local]\n\n[knowledge]\nindex = "{name}"\n' + extra_config
    env = {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    server = JunctionProcess(Path(tempfile.mkdtemp(prefix="bench-rag-")), config, env=env)
    server.start(timeout=180)
    try:
        headers = {"authorization": f"Bearer {server.key}"}
        org = httpx.post(f"{server.url}/api/v1/admin/orgs", json={"name": "bench"}, headers=headers).json()["id"]
        collection = httpx.post(f"{server.url}/api/v1/rag/collections", headers=headers, json={
            "org_id": org, "name": "bench", "chunk_tokens": 40, "chunk_overlap": 8}).json()["id"]
        path = f"{server.url}/api/v1/rag/collections/{collection}/documents"
        httpx.post(path, json={"id": "warm-up", "text": texts[0]}, headers=headers, timeout=600).raise_for_status()
        chunks, started = 0, time.perf_counter()
        for number, text in enumerate(texts[1:]):
            answer = httpx.post(path, json={"id": f"d{number}", "text": text}, headers=headers, timeout=600)
            answer.raise_for_status()
            chunks += answer.json()["chunks"]
        seconds = time.perf_counter() - started
        query = httpx.post(f"{server.url}/api/v1/rag/collections/{collection}/query", headers=headers,
                           json={"query": "router cache latency", "top_k": 10}, timeout=60)
        query.raise_for_status()
        times = []
        for _ in range(20):
            started = time.perf_counter()
            httpx.post(f"{server.url}/api/v1/rag/collections/{collection}/query", headers=headers,
                       json={"query": "router cache latency", "top_k": 10}, timeout=60).raise_for_status()
            times.append((time.perf_counter() - started) * 1000)
        print(f"{name:10} ingestion: {chunks} chunks in {seconds:.1f} s = {chunks / seconds:.1f} chunks/s "
              f"(local model, HTTP) | HTTP query incl. embedding the question: p50 {statistics.median(times):.1f} ms",
              flush=True)
    finally:
        server.stop()


def pgserver_url() -> tuple[object, str]:
    import pgserver

    directory = tempfile.mkdtemp(prefix="bench-pgvector-")
    server = pgserver.get_server(directory, cleanup_mode="delete")
    server.psql("CREATE DATABASE bench;")
    return server, f"postgresql+asyncpg://postgres@/bench?host={directory}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="*", default=[])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--ingest-docs", type=int, default=0)
    parser.add_argument("--indexes", nargs="*", default=["in-process", "pgvector"])
    args = parser.parse_args()
    server, url = pgserver_url() if "pgvector" in args.indexes else (None, "")
    try:
        encryption = {"security": {"encryption_keys": [{"id": "b", "key": base64.b64encode(bytes(32)).decode()}]}}
        for name in args.indexes:
            if args.sizes:
                documents = (url if name == "pgvector" else
                             f"sqlite+aiosqlite:///{tempfile.mkdtemp(prefix='bench-rag-')}/docs.db")
                asyncio.run(query_latency(name, documents, args.sizes, args.queries, encryption))
            if args.ingest_docs:
                extra = "" if name != "pgvector" else (
                    f'\n[stores]\ndocuments = "{url}"\n\n[security]\n'
                    f'encryption_keys = [{{ id = "b", key = "{base64.b64encode(bytes(32)).decode()}" }}]\n')
                if name == "pgvector":
                    engine_url = url
                    asyncio.run(_migrate(engine_url))
                ingest(name, extra, args.ingest_docs)
    finally:
        if server is not None:
            server.cleanup()


async def _migrate(url: str) -> None:
    engine = open_engine(url)
    await upgrade_to_head(engine)
    await engine.dispose()


if __name__ == "__main__":
    main()
