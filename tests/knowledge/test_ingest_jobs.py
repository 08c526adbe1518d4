"""A large document is ingested as a queued job on the embedded default (in-memory queue inside
``junction serve``, SQLite, in-process index), with the real local model: 202 and the job's id,
its progress (chunks embedded of all) on ``GET /api/v1/jobs/{id}``, and the document queryable
once the job succeeded. Small documents are still ingested in the request."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from junction.testing.server import JunctionProcess
from tests.conftest import openai_provider_table
from tests.fakes.openai_upstream import FakeOpenAI
from tests.knowledge.conftest import LOCAL_ENV, MASTER, Admin, requires_local_model

pytestmark = [pytest.mark.slow, requires_local_model]

MODEL = "local/all-MiniLM-L6-v2"
THRESHOLD = 2000
TARGET = "The emergency generator in building K is tested every second Tuesday at dawn."
ROWS = [f"Shelf {i} in aisle {i % 7} holds {i * 3} boxes of part number {1000 + i}." for i in range(120)]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JunctionProcess]:
    upstream = FakeOpenAI().start()
    config = (openai_provider_table(upstream) + "\n[providers.local]\n\n[knowledge]\nindex = \"in-process\"\n"
              f"async_ingest_chars = {THRESHOLD}\nembed_batch = 2\n")
    process = JunctionProcess(tmp_path_factory.mktemp("rag-jobs"), config, master_key=MASTER, env=LOCAL_ENV)
    try:
        yield process.start(timeout=120)
    finally:
        process.stop()
        upstream.stop()


def test_a_large_document_is_ingested_by_a_job_with_progress(server: JunctionProcess) -> None:
    admin = Admin(server.url)
    _, key = admin.org_with_key("rag-jobs")
    collection = admin.ok("POST", "/api/v1/rag/collections",
                          {"name": "plant", "embedding_model": MODEL, "chunk_tokens": 20, "chunk_overlap": 0},
                          key=key)
    documents = f"/api/v1/rag/collections/{collection['id']}/documents"
    text = " ".join([*ROWS[:60], TARGET, *ROWS[60:]])
    assert len(text) > THRESHOLD

    submitted = admin.call("POST", documents, {"id": "plant-manual", "text": text}, key=key)
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["id"]
    assert job_id.startswith("job_") and submitted.json()["status"] == "queued"

    seen: list[dict] = []
    deadline = time.monotonic() + 180
    while True:
        job = admin.ok("GET", f"/api/v1/jobs/{job_id}", key=key)
        if job["progress"] is not None and (not seen or seen[-1] != job["progress"]):
            seen.append(job["progress"])
        if job["status"] not in ("queued", "running"):
            break
        assert time.monotonic() < deadline, f"the ingestion job did not finish: {job}"
        time.sleep(0.02)
    assert job["status"] == "succeeded", job
    total = job["result"]["chunks"]
    assert total > 20 and job["result"]["id"] == "plant-manual"
    assert job["progress"] == {"done": total, "total": total, "unit": "chunks"}
    done = [progress["done"] for progress in seen]
    assert done == sorted(done) and all(progress["total"] == total for progress in seen)
    assert any(0 < value < total for value in done), f"no progress seen before the end: {seen}"

    hit = admin.ok("POST", f"/api/v1/rag/collections/{collection['id']}/query",
                   {"query": "When is the emergency generator tested?", "top_k": 3}, key=key)["results"][0]
    assert hit["document_id"] == "plant-manual" and "second Tuesday" in hit["text"]
    listed = admin.ok("GET", f"/api/v1/rag/collections/{collection['id']}", key=key)
    assert listed["documents"] == 1 and listed["chunks"] == total

    # another org does not see the job
    _, other_key = admin.org_with_key("rag-jobs-other")
    assert admin.call("GET", f"/api/v1/jobs/{job_id}", key=other_key).status_code == 404


def test_small_documents_answer_at_once_unless_asked_to_queue(server: JunctionProcess) -> None:
    admin = Admin(server.url)
    _, key = admin.org_with_key("rag-jobs-small")
    collection = admin.ok("POST", "/api/v1/rag/collections", {"name": "notes", "embedding_model": MODEL},
                          key=key)
    documents = f"/api/v1/rag/collections/{collection['id']}/documents"
    direct = admin.call("POST", documents, {"id": "a", "text": ROWS[0]}, key=key)
    assert direct.status_code == 201 and direct.json()["chunks"] == 1
    queued = admin.call("POST", documents, {"id": "b", "text": ROWS[1]}, key=key,
                        **{"x-junction-async": "true"})
    assert queued.status_code == 202, queued.text
    deadline = time.monotonic() + 60
    job_path = f"/api/v1/jobs/{queued.json()['id']}"
    while (job := admin.ok("GET", job_path, key=key))["status"] in ("queued", "running"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert job["status"] == "succeeded" and job["result"]["chunks"] == 1
    # a large document that is bad is refused at once, not as a failed job
    bad = admin.call("POST", documents, {"id": "c", "content_base64": "!" * (THRESHOLD * 2),
                                         "content_type": "application/pdf"}, key=key)
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "content_base64", bad.text
    empty_id = admin.call("POST", documents, {"id": "", "text": "x" * (THRESHOLD + 1)}, key=key)
    assert empty_id.status_code == 400 and empty_id.json()["error"]["param"] == "id"
    assert admin.ok("GET", f"/api/v1/rag/collections/{collection['id']}", key=key)["documents"] == 2
