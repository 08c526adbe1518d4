"""RAG end to end with the real local model (all-MiniLM-L6-v2), through a real ``junction serve``,
for both vector indexes: the in-process index (SQLite documents) and pgvector (PostgreSQL from the
pgserver wheel). Among distractor documents a question retrieves the right chunk first; a bridge
in prompt mode sends it upstream; PDF ingestion; re-ingest and delete; org isolation."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator

import pytest

from junction.testing.server import JunctionProcess
from tests.conftest import openai_provider_table
from tests.fakes.openai_upstream import FakeOpenAI
from tests.knowledge.conftest import LOCAL_ENV, MASTER, Admin, requires_local_model
from tests.knowledge.pdf import pdf_with_text
from tests.tenancy.conftest import ENCRYPTION_KEY

pytestmark = [pytest.mark.slow, requires_local_model]

MODEL = "local/all-MiniLM-L6-v2"
TARGET = ("The Zephyr-9 espresso machine descales itself automatically every thirty days. "
          "When the blue ring light blinks twice, the descaling cycle has started and takes twelve minutes.")
DISTRACTORS = {
    "volcanoes": "Volcanoes form where tectonic plates diverge or converge. Magma rises through the crust and "
                 "erupts as lava, ash and gas. Shield volcanoes have gentle slopes built by fluid basalt.",
    "tax": "Quarterly tax estimates are due in April, June, September and January. Self-employed people pay "
           "both halves of social security contributions on their net earnings.",
    "football": "The midfielder scored twice in the second half, and the home team won the cup final after "
                "extra time in front of a sold-out stadium.",
    "gardening": "Tomatoes need six hours of direct sun a day. Water them deeply twice a week and mulch the soil "
                 "so the roots stay cool during the summer heat.",
    "kettle": "The kitchen kettle boils a litre of water in about three minutes. Its filter should be rinsed "
              "under the tap once a month to remove loose limescale flakes.",
}
QUESTION = "How often does the Zephyr-9 descale itself?"


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module", params=["in-process", "pgvector"])
def server(request: pytest.FixtureRequest, upstream: FakeOpenAI,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[JunctionProcess]:
    index = request.param
    config = openai_provider_table(upstream) + f'\n[providers.local]\n\n[knowledge]\nindex = "{index}"\n'
    if index == "pgvector":
        url = request.getfixturevalue("pgvector_url")
        config += (f'\n[stores]\ndocuments = "{url}"\n\n[security]\n'
                   f'encryption_keys = [{{ id = "test-1", key = "{ENCRYPTION_KEY}" }}]\n')
    process = JunctionProcess(tmp_path_factory.mktemp(f"rag-{index}"), config, master_key=MASTER, env=LOCAL_ENV)
    try:
        yield process.start(timeout=120)  # the model loads on the first embedding, not here
    finally:
        process.stop()


@pytest.fixture(scope="module")
def admin(server: JunctionProcess) -> Admin:
    return Admin(server.url)


@pytest.fixture(scope="module")
def handbook(admin: Admin) -> dict:
    """Org A with a collection holding the target and the distractors."""
    org, key = admin.org_with_key("rag-a")
    collection = admin.ok("POST", "/api/v1/rag/collections", {"name": "handbook", "embedding_model": MODEL,
                                                              "chunk_tokens": 40, "chunk_overlap": 8}, key=key)
    for name, text in DISTRACTORS.items():
        admin.ok("POST", f"/api/v1/rag/collections/{collection['id']}/documents",
                 {"id": name, "text": text, "metadata": {"kind": "distractor"}}, key=key)
    added = admin.ok("POST", f"/api/v1/rag/collections/{collection['id']}/documents",
                     {"id": "zephyr", "text": f"# Zephyr-9 manual\n\n{TARGET}", "content_type": "text/markdown",
                      "metadata": {"kind": "manual"}}, key=key)
    assert added["chunks"] >= 1
    return {"org": org, "key": key, "collection": collection["id"]}


def query(admin: Admin, handbook: dict, text: str, **fields) -> list[dict]:
    body = admin.ok("POST", f"/api/v1/rag/collections/{handbook['collection']}/query", {"query": text, **fields},
                    key=handbook["key"])
    return body["results"]


def test_the_question_retrieves_the_right_chunk_first(admin, handbook):
    results = query(admin, handbook, QUESTION, top_k=5)
    assert len(results) == 5
    assert results[0]["document_id"] == "zephyr" and "every thirty days" in results[0]["text"]
    assert results[0]["metadata"] == {"kind": "manual"} and results[0]["chunk_id"].startswith("ch_")
    assert results[0]["score"] > results[1]["score"] + 0.1  # well ahead of any distractor
    # the kettle's limescale is the nearest distractor, never above the machine's own manual
    assert [r["document_id"] for r in results].index("zephyr") == 0
    only = query(admin, handbook, QUESTION, top_k=3, filter={"kind": "distractor"})
    assert only and {r["document_id"] for r in only} <= set(DISTRACTORS)
    assert query(admin, handbook, QUESTION, top_k=3, min_score=0.99) == []
    collection = admin.ok("GET", f"/api/v1/rag/collections/{handbook['collection']}", key=handbook["key"])
    assert collection["dimensions"] == 384 and collection["documents"] == 6


def test_a_bridge_in_prompt_mode_sends_the_chunk_upstream(admin, handbook, upstream):
    bridge = admin.ok("POST", "/api/v1/bridges", {
        "slug": "support", "name": "Support", "model": "openai/gpt-4o-mini",
        "prompt": "Answer from these passages and cite their ids:\n{{context}}",
        "knowledge": {"collections": [handbook["collection"]], "mode": "prompt", "top_k": 2}}, key=handbook["key"])
    upstream.reset()
    answer = admin.call("POST", f"/api/v1/bridges/{bridge['id']}/chat", {"user": QUESTION}, key=handbook["key"])
    assert answer.status_code == 200, answer.text
    system = upstream.last.json()["messages"][0]
    assert system["role"] == "system" and TARGET.split(".")[0] in system["content"]
    cited = answer.headers["x-junction-context-chunks"].split(",")
    assert len(cited) == 2 and f"[{cited[0]}]" in system["content"]
    top = query(admin, handbook, QUESTION, top_k=1)[0]
    assert cited[0] == top["chunk_id"]
    # a prompt without {{context}} and a collection of no one are 400s (in tool mode too)
    for knowledge, prompt, param in [
        ({"collections": [handbook["collection"]]}, "no placeholder", "prompt"),
        ({"collections": ["col_missing"]}, "{{context}}", "knowledge.collections[0]"),
        ({"collections": ["col_missing"], "mode": "tool"}, "Search.", "knowledge.collections[0]"),
    ]:
        refused = admin.call("POST", "/api/v1/bridges", {"slug": "bad", "name": "b", "model": "openai/gpt-4o-mini",
                                                         "prompt": prompt, "knowledge": knowledge}, key=handbook["key"])
        assert refused.status_code == 400 and refused.json()["error"]["param"] == param, refused.text


def test_a_bridge_in_tool_mode_searches_when_its_model_asks(admin, handbook, upstream):
    bridge = admin.ok("POST", "/api/v1/bridges", {
        "slug": "librarian", "name": "Librarian", "model": "openai/gpt-4o-mini",
        "prompt": "Look things up with search_knowledge and cite the ids.",  # no {{context}}: tool mode
        "knowledge": {"collections": [handbook["collection"]], "mode": "tool", "top_k": 2},
    }, key=handbook["key"])
    top = query(admin, handbook, QUESTION, top_k=1)[0]
    for stream in (False, True):
        upstream.reset()
        upstream.script(tool_calls=[{"id": "call_kb", "name": "search_knowledge",
                                     "arguments": json.dumps({"query": "Zephyr-9 descaling schedule"})}])
        upstream.script(text=f"Every thirty days [{top['chunk_id']}].")
        answer = admin.call("POST", f"/api/v1/bridges/{bridge['id']}/chat",
                            {"user": QUESTION, "stream": stream}, key=handbook["key"])
        assert answer.status_code == 200, answer.text
        first, second = [request.json() for request in upstream.requests if request.method == "POST"]
        assert [tool["function"]["name"] for tool in first["tools"]] == ["search_knowledge"]
        assert "{{context}}" not in first["messages"][0]["content"] and TARGET not in json.dumps(first)
        results = [message["content"] for message in second["messages"] if message["role"] == "tool"]
        assert len(results) == 1
        assert f"[{top['chunk_id']}]" in results[0] and "every thirty days" in results[0]
        assert len(re.findall(r"\[ch_\w+\]", results[0])) == 2  # top_k passages, each with its id
        if stream:
            chunks = [json.loads(line[6:]) for line in answer.text.split("\n") if line.startswith("data: {")]
            text = "".join(chunk["choices"][0]["delta"].get("content") or ""
                           for chunk in chunks if chunk["choices"])
            assert text == f"Every thirty days [{top['chunk_id']}]."
        else:
            body = answer.json()
            assert body["message"]["content"] == f"Every thirty days [{top['chunk_id']}]."
            thread = admin.ok("GET", f"/api/v1/threads/{body['thread_id']}", key=handbook["key"])
            roles = [message["role"] for message in thread["messages"]]
            assert roles == ["user", "assistant", "tool", "assistant"]
            assert f"[{top['chunk_id']}]" in thread["messages"][2]["content"]


def test_pdf_ingestion_reingest_and_delete(admin, handbook):
    collection = handbook["collection"]
    pdf = pdf_with_text(["Llamas hum softly when they are curious about a visitor.",
                         "Alpacas are smaller than llamas and are bred for their fleece."])
    added = admin.ok("POST", f"/api/v1/rag/collections/{collection}/documents",
                     {"id": "camelids", "content_base64": base64.b64encode(pdf).decode(),
                      "content_type": "application/pdf"}, key=handbook["key"])
    assert added["chunks"] >= 1
    hit = query(admin, handbook, "What sound do llamas make?", top_k=1)[0]
    assert hit["document_id"] == "camelids" and "hum softly" in hit["text"]

    admin.ok("POST", f"/api/v1/rag/collections/{collection}/documents",
             {"id": "camelids", "text": "Vicuñas live high in the Andes and are wild relatives of alpacas."},
             key=handbook["key"])
    texts = [r["text"] for r in query(admin, handbook, "What sound do llamas make?", top_k=10)]
    assert not any("hum softly" in text for text in texts)  # the old chunks are gone
    assert query(admin, handbook, "Where do vicuñas live?", top_k=1)[0]["document_id"] == "camelids"

    assert admin.call("DELETE", f"/api/v1/rag/collections/{collection}/documents/camelids",
                      key=handbook["key"]).status_code == 204
    assert "camelids" not in {r["document_id"] for r in query(admin, handbook, "Where do vicuñas live?", top_k=10)}
    again = admin.call("DELETE", f"/api/v1/rag/collections/{collection}/documents/camelids", key=handbook["key"])
    assert again.status_code == 404
    bad = admin.call("POST", f"/api/v1/rag/collections/{collection}/documents",
                     {"id": "x", "content_base64": base64.b64encode(b"%PDF-broken").decode(),
                      "content_type": "application/pdf"}, key=handbook["key"])
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "content_base64"


def test_collections_are_confined_to_their_org(admin, handbook):
    other_org, other_key = admin.org_with_key("rag-b")
    collection = handbook["collection"]
    for method, path, body in [
        ("GET", f"/api/v1/rag/collections/{collection}", None),
        ("POST", f"/api/v1/rag/collections/{collection}/query", {"query": QUESTION}),
        ("POST", f"/api/v1/rag/collections/{collection}/documents", {"id": "x", "text": "intruder"}),
        ("DELETE", f"/api/v1/rag/collections/{collection}/documents/zephyr", None),
        ("DELETE", f"/api/v1/rag/collections/{collection}", None),
    ]:
        response = admin.call(method, path, body, key=other_key)
        assert response.status_code == 404, (method, path, response.text)
    assert admin.ok("GET", "/api/v1/rag/collections", key=other_key) == []
    # the master key naming the other org does not see it either
    assert admin.call("GET", f"/api/v1/rag/collections/{collection}", **{"x-junction-org-id": other_org}
                      ).status_code == 404
    # a bridge of the other org cannot name this org's collection
    refused = admin.call("POST", "/api/v1/bridges", {"slug": "thief", "name": "t", "model": "openai/gpt-4o-mini",
                                                     "prompt": "{{context}}", "knowledge": {"collections": [collection]}},
                         key=other_key)
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "collection_not_found"
    assert query(admin, handbook, QUESTION, top_k=1)[0]["document_id"] == "zephyr"  # still intact


def test_bad_collection_and_query_bodies_are_400s(admin, handbook):
    for body, param in [({"name": "x", "chunk_tokens": 0}, "chunk_tokens"),
                        ({"name": "x", "chunk_tokens": 10, "chunk_overlap": 10}, "chunk_overlap"),
                        ({"name": "x", "embedding_model": "nomodel"}, "embedding_model")]:
        response = admin.call("POST", "/api/v1/rag/collections", body, key=handbook["key"])
        assert response.status_code == 400 and response.json()["error"]["param"] == param
    path = f"/api/v1/rag/collections/{handbook['collection']}/query"
    assert admin.call("POST", path, {"query": "x", "top_k": 0}, key=handbook["key"]).json()["error"]["param"] == "top_k"
    assert admin.call("POST", path, {"query": "  "}, key=handbook["key"]).status_code == 400
    ingest = f"/api/v1/rag/collections/{handbook['collection']}/documents"
    both = admin.call("POST", ingest, {"id": "x", "text": "a", "content_base64": "YQ=="}, key=handbook["key"])
    assert both.status_code == 400
