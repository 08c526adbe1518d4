"""Clients that send too slowly, too little or malformed bytes, on raw sockets against a real
gateway whose ``[limits]`` timeouts are short: each is answered with a 4xx or dropped on time,
never a 500 and never held open."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import pytest

from junction.testing.server import JunctionProcess
from tests.conftest import openai_provider_table
from tests.fakes.openai_upstream import FakeOpenAI

pytestmark = pytest.mark.slow

HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 1.0
BODY = json.dumps({"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}).encode()


@pytest.fixture(scope="module")
def server(fake_openai_server: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[JunctionProcess]:
    config = openai_provider_table(fake_openai_server) + f"""
[limits]
header_read_timeout_seconds = {HEADER_TIMEOUT}
body_read_timeout_seconds = {BODY_TIMEOUT}
max_header_bytes = 16384
"""
    with JunctionProcess(tmp_path_factory.mktemp("slow"), config) as started:
        yield started


def connect(server: JunctionProcess) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=15)
    return sock


def read_until_closed(sock: socket.socket, limit: float = 15) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and how long that took."""
    started = time.monotonic()
    data = b""
    sock.settimeout(limit)
    while True:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            break
        if not chunk:
            break
        data += chunk
    return data, time.monotonic() - started


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def head(server: JunctionProcess, extra: str = "") -> bytes:
    return (f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {server.key}\r\n"
            f"Content-Type: application/json\r\n{extra}").encode()


def test_malformed_chunked_body_is_a_400(server, fake_openai):
    with connect(server) as sock:
        sock.sendall(head(server, "Transfer-Encoding: chunked\r\n\r\n") + BODY)
        sock.shutdown(socket.SHUT_WR)
        response, _ = read_until_closed(sock)
    assert status_of(response) == 400, response
    assert b"internal_error" not in response
    assert fake_openai.requests == []


def test_headers_sent_one_per_second_are_cut_off(server):
    with connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        started = time.monotonic()
        closed_after = None
        for index in range(30):
            time.sleep(0.25)
            try:
                sock.sendall(f"X-Slow-{index}: 1\r\n".encode())
            except (BrokenPipeError, ConnectionResetError):
                closed_after = time.monotonic() - started
                break
            sock.settimeout(0.01)
            try:
                if sock.recv(65536) == b"":
                    closed_after = time.monotonic() - started
                    break
            except TimeoutError:
                continue
            except ConnectionResetError:
                closed_after = time.monotonic() - started
                break
    assert closed_after is not None and closed_after < HEADER_TIMEOUT + 2.5, closed_after


def test_a_trickled_body_gets_408(server, fake_openai):
    with connect(server) as sock:
        sock.sendall(head(server, f"Content-Length: {len(BODY)}\r\n\r\n"))
        started = time.monotonic()
        response = b""
        sock.settimeout(0.2)
        for byte in BODY:
            try:
                sock.sendall(bytes([byte]))
                response = sock.recv(65536)
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                break
            if response:
                break
        elapsed = time.monotonic() - started
    assert elapsed < BODY_TIMEOUT + 2.5, elapsed
    assert status_of(response) == 408, response
    assert b"limits.body_read_timeout_seconds" in response
    assert fake_openai.requests == []


def test_an_idle_kept_alive_connection_is_closed(server):
    with connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        sock.settimeout(5)
        first = sock.recv(65536)
        assert status_of(first) == 200
        rest, idle = read_until_closed(sock, limit=15)
    assert idle < HEADER_TIMEOUT + 2.5, idle


def test_oversized_headers_are_refused(server):
    with connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 40_000 + b"\r\n\r\n")
        response, _ = read_until_closed(sock)
    assert status_of(response) == 431, response[:200]


def test_normal_requests_still_work_on_a_kept_alive_connection(server, fake_openai):
    with connect(server) as sock:
        for _ in range(2):
            sock.sendall(head(server, f"Content-Length: {len(BODY)}\r\n\r\n") + BODY)
            sock.settimeout(10)
            response = sock.recv(65536)
            assert status_of(response) == 200, response
