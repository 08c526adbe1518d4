"""The lean ``POST /v1/chat/completions`` path (app/ingress/lean.py) answers exactly as the
Litestar route does: two gateways on one fake upstream, one with ``[server] lean_ingress = false``,
get the same requests; status, headers and body must match (request ids and dates aside)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from junction.testing.server import JunctionProcess
from junction.testing.upstream import ScriptedError
from tests.conftest import openai_provider_table

CHAT = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
MAX_BODY = 4096
#: Differ between any two answers by design.
VOLATILE = {"date", "x-request-id", "server-timing"}


@pytest.fixture(scope="module")
def pair(fake_openai_server, tmp_path_factory) -> Iterator[dict[str, JunctionProcess]]:
    config = openai_provider_table(fake_openai_server, read_timeout=2.0) + f"""
[server]
max_body_bytes = {MAX_BODY}
"""
    lean = JunctionProcess(tmp_path_factory.mktemp("lean"), config)
    litestar = JunctionProcess(tmp_path_factory.mktemp("litestar"),
                               config.replace("[server]\n", "[server]\nlean_ingress = false\n"))
    with lean, litestar:
        yield {"lean": lean, "litestar": litestar}


def ask(server: JunctionProcess, headers: dict[str, str] | None = None, **request: object) -> httpx.Response:
    sent = {"authorization": f"Bearer {server.key}", "content-type": "application/json", **(headers or {})}
    sent = {name: value for name, value in sent.items() if value is not None}
    if callable(request.get("content")):  # a fresh generator per request: a chunked body
        request["content"] = request["content"]()  # type: ignore[operator]
    with httpx.Client(base_url=server.url, timeout=20) as client:
        return client.request(request.pop("method", "POST"), request.pop("path", "/v1/chat/completions"),  # type: ignore[arg-type]
                              headers=sent, **request)  # type: ignore[arg-type]


def comparable(response: httpx.Response) -> tuple[int, list[tuple[str, str]], bytes]:
    body = response.content
    if response.status_code == 200:  # the fake upstream stamps each answer with the current second
        body = json.dumps({k: v for k, v in response.json().items() if k != "created"}).encode()
    return response.status_code, header_list(response), body


def header_list(response: httpx.Response) -> list[tuple[str, str]]:
    volatile = VOLATILE
    if response.status_code == 413:  # Granian closes a connection whose unread body had not all arrived yet
        volatile = {*VOLATILE, "connection"}
    return [(name, value) for name, value in response.headers.multi_items() if name not in volatile]


def both(pair: dict[str, JunctionProcess], **request: object) -> tuple[httpx.Response, httpx.Response]:
    lean = ask(pair["lean"], **dict(request))
    litestar = ask(pair["litestar"], **dict(request))
    assert comparable(lean) == comparable(litestar)
    return lean, litestar


CASES = {
    "no key": {"headers": {"authorization": None}},
    "wrong key": {"headers": {"authorization": "Bearer sk-wrong"}},
    "x-api-key": {"headers": {"authorization": None, "x-api-key": "sk-test-master"}},
    "not JSON": {"content": b"{not json"},
    "empty body": {"content": b""},
    "no messages": {"json": {"model": "openai/gpt-4o-mini", "messages": []}},
    "wrong type": {"json": {**CHAT, "temperature": "hot"}},
    "out of range": {"json": {**CHAT, "temperature": 7}},
    "too deep": {"content": b'{"model":"openai/gpt-4o-mini","messages":[],"x":' + b"[" * 100 + b"]" * 100 + b"}"},
    "content-length over the limit": {"content": json.dumps({**CHAT, "pad": "x" * MAX_BODY}).encode()},
    "chunked over the limit": {"content": lambda: iter([b'{"pad":"', b"x" * MAX_BODY, b'"}'])},
    "unknown model": {"json": {**CHAT, "model": "nope/none"}},
    "model name too long": {"json": {**CHAT, "model": "m" * 1000}},
    "unknown fields kept": {"json": {**CHAT, "x_custom": {"a": 1}, "user": "u1"}},
    "served": {"json": CHAT},
    "wrong method": {"method": "GET", "json": None},
    "trailing slash": {"path": "/v1/chat/completions/", "json": CHAT},
}


@pytest.mark.parametrize("case", CASES)
def test_lean_and_litestar_answer_alike(pair, fake_openai, case):
    lean, _ = both(pair, **CASES[case])
    assert lean.headers["x-request-id"]
    if case == "served":
        assert lean.status_code == 200 and lean.json()["choices"][0]["message"]["content"]
        assert lean.headers["x-junction-deployment"] == "openai/gpt-4o-mini"
    elif case not in ("unknown fields kept", "x-api-key", "trailing slash"):
        assert lean.status_code >= 400 and "error" in lean.json()


def test_the_clients_request_id_is_kept(pair, fake_openai):
    lean, litestar = both(pair, json=CHAT, headers={"x-request-id": "trace-42"})
    assert lean.headers["x-request-id"] == litestar.headers["x-request-id"] == "trace-42"
    bad, _ = both(pair, json=CHAT, headers={"x-request-id": "has spaces"})
    assert bad.headers["x-request-id"] != "has spaces"


@pytest.mark.parametrize("status,headers", [(429, {"retry-after": "3"}), (500, {}), (401, {})])
def test_upstream_errors_alike(pair, fake_openai, status, headers):
    body = {"error": {"message": "nope", "type": "x", "code": "c"}}
    fake_openai.errors.append(ScriptedError(status, body, headers))
    lean = ask(pair["lean"], json=CHAT)
    fake_openai.errors.append(ScriptedError(status, body, headers))
    litestar = ask(pair["litestar"], json=CHAT)
    assert comparable(lean) == comparable(litestar)
    assert lean.status_code >= 400


def test_streams_alike(pair, fake_openai):
    request = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    lean, litestar = ask(pair["lean"], json=request), ask(pair["litestar"], json=request)
    assert (lean.status_code, header_list(lean)) == (litestar.status_code, header_list(litestar))
    assert lean.headers["content-type"] == "text/event-stream; charset=utf-8"

    def events(response: httpx.Response) -> list[object]:
        lines = [line[6:] for line in response.text.split("\n\n") if line.startswith("data: ")]
        return [line if line == "[DONE]" else {k: v for k, v in json.loads(line).items() if k not in ("id", "created")}
                for line in lines]

    assert events(lean) == events(litestar)
    assert events(lean)[-1] == "[DONE]"


def test_a_stream_refused_before_its_first_byte_alike(pair, fake_openai):
    request = {**CHAT, "stream": True}
    fake_openai.errors.append(ScriptedError(503, {"error": {"message": "busy"}}, {"retry-after": "1"}))
    lean = ask(pair["lean"], json=request)
    fake_openai.errors.append(ScriptedError(503, {"error": {"message": "busy"}}, {"retry-after": "1"}))
    litestar = ask(pair["litestar"], json=request)
    assert comparable(lean) == comparable(litestar)
    assert lean.status_code == 503 and lean.json()["error"]["message"]
