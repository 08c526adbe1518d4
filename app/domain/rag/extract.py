"""The text of an ingested document: plain text, Markdown, HTML or PDF (pypdf)."""

from __future__ import annotations

import io
import re
from html.parser import HTMLParser

from junction.errors import InvalidRequest

TEXT_TYPES = ("text/plain", "text/markdown", "text/html", "application/pdf")
_BLOCK_TAGS = frozenset({"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "section", "article",
                         "pre", "blockquote", "table", "ul", "ol", "header", "footer", "title"})
_SKIPPED_TAGS = frozenset({"script", "style", "noscript", "template", "svg", "head"})
_MARKDOWN_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_MARKDOWN_MARKS = re.compile(r"^\s{0,3}(#{1,6}|>|[-*+]|\d+\.)\s+|[*_`~]{1,3}", re.MULTILINE)


def media_type(content_type: str | None) -> str:
    kind = (content_type or "text/plain").split(";", 1)[0].strip().lower()
    if kind not in TEXT_TYPES:
        raise InvalidRequest(f"content_type: {kind!r} is not supported (one of {', '.join(TEXT_TYPES)})",
                             param="content_type", code="unsupported_content_type")
    return kind


def extract_text(content: bytes | str, content_type: str | None) -> str:
    kind = media_type(content_type)
    if kind == "application/pdf":
        if isinstance(content, str):
            raise InvalidRequest("content_type: a PDF must come as content_base64", param="content_base64",
                                 code="invalid_value")
        return _pdf_text(content)
    text = content if isinstance(content, str) else _decode(content)
    if kind == "text/html":
        return _html_text(text)
    if kind == "text/markdown":
        return _MARKDOWN_MARKS.sub("", _MARKDOWN_LINK.sub(r"\1", text))
    return text


def _decode(content: bytes) -> str:
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequest("content_base64: text content must be UTF-8", param="content_base64",
                             code="invalid_value") from None


def _pdf_text(content: bytes) -> str:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(content))
        return "\n\n".join(page.extract_text() or "" for page in reader.pages)
    except (PdfReadError, ValueError, KeyError, TypeError) as error:
        raise InvalidRequest(f"content_base64: not a readable PDF ({type(error).__name__})",
                             param="content_base64", code="invalid_pdf") from None


class _TextOfHtml(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED_TAGS:
            self._skipping += 1
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED_TAGS:
            self._skipping = max(0, self._skipping - 1)
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


def _html_text(html: str) -> str:
    parser = _TextOfHtml()
    parser.feed(html)
    parser.close()
    text = re.sub(r"[ \t\r\f\v]+", " ", "".join(parser.parts))
    return re.sub(r"\s*\n\s*\n\s*", "\n\n", text).strip()
