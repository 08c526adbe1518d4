"""Chunking and text extraction for RAG ingestion (no model needed)."""

from __future__ import annotations

import pytest

from junction.domain.rag.chunking import chunk_text, count_tokens
from junction.domain.rag.extract import extract_text
from junction.errors import InvalidRequest
from tests.knowledge.pdf import pdf_with_text


def test_chunks_hold_at_most_size_tokens_and_overlap():
    text = " ".join(f"word{i}" for i in range(1000))
    chunks = chunk_text(text, 100, 20)
    assert all(count_tokens(chunk) <= 100 for chunk in chunks)
    assert chunks[0].split()[-20:] == chunks[1].split()[:20]  # the overlap, exactly
    assert chunks[0].startswith("word0 ") and chunks[-1].endswith("word999")
    covered = {word for chunk in chunks for word in chunk.split()}
    assert covered == set(text.split())


def test_chunks_end_at_a_sentence_when_one_ends_late_in_the_window():
    sentence = "This sentence has exactly ten tokens in it ok."  # 10 tokens with the period
    text = " ".join([sentence] * 30)
    chunks = chunk_text(text, 25, 0)
    assert all(chunk.endswith(".") for chunk in chunks)
    assert chunk_text("", 10, 2) == [] and chunk_text("   \n ", 10, 2) == []


def test_html_markdown_and_pdf_become_text():
    html = "<html><head><title>t</title><style>p{}</style></head><body><h1>Title</h1><p>First &amp; para.</p>" \
           "<script>alert(1)</script><p>Second</p></body></html>"
    assert extract_text(html, "text/html") == "Title\n\nFirst & para.\n\nSecond"
    assert extract_text("# Head\n\nSee [the docs](http://x) and **bold**.", "text/markdown") == \
        "Head\n\nSee the docs and bold."
    pdf = pdf_with_text(["The first page says hello.", "Page two talks about llamas."])
    text = extract_text(pdf, "application/pdf")
    assert "The first page says hello." in text and "Page two talks about llamas." in text


def test_bad_documents_are_400s_naming_the_field():
    with pytest.raises(InvalidRequest) as error:
        extract_text(b"not a pdf at all", "application/pdf")
    assert error.value.param == "content_base64" and error.value.code == "invalid_pdf"
    with pytest.raises(InvalidRequest) as error:
        extract_text("x", "image/png")
    assert error.value.param == "content_type"
    with pytest.raises(InvalidRequest):
        extract_text(b"\xff\xfe", "text/plain")
