"""The default upstream client (``http_client = "httptools"``, app/upstream/native.py) against real
sockets on loopback: servers written here byte by byte, so each test controls exactly what the
upstream sends and when, and checks what the client sent."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from junction.errors import InvalidRequest, RateLimited, UpstreamError, UpstreamTimeout, UpstreamUnavailable
from junction.plugins.protocols import ProviderConfig
from junction.upstream.http1 import HIGH_WATER
from junction.upstream.native import NativeClient

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, "Upstream"], Awaitable[None]]


class Upstream:
    """A loopback server running ``handler`` per connection; counts connections, keeps requests."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.requests: list[tuple[bytes, bytes]] = []  # (head, body)
        self.closed_by_client = asyncio.Event()

    async def __aenter__(self) -> Upstream:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.handler(reader, writer, self)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away: what some tests are about
        finally:
            writer.close()

    async def read_request(self, reader: asyncio.StreamReader) -> tuple[bytes, bytes] | None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            self.closed_by_client.set()
            return None
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        body = await reader.readexactly(length)
        self.requests.append((head, body))
        return head, body


def answer(body: bytes, status: str = "200 OK", extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n%s\r\n%s" % (
        status.encode(), len(body), extra, body)


async def keep_answering(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, upstream: Upstream) -> None:
    while await upstream.read_request(reader) is not None:
        writer.write(answer(b'{"n":%d}' % len(upstream.requests)))
        await writer.drain()


def client(**settings: object) -> NativeClient:
    return NativeClient("openai", ProviderConfig(api_key="sk-secret-upstream", **settings))  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def serving(handler: Handler) -> AsyncIterator[tuple[Upstream, NativeClient]]:
    """An upstream running ``handler`` and a started client of it; the client closes first."""
    async with Upstream(handler) as upstream:
        http = client()
        await http.start()
        try:
            yield upstream, http
        finally:
            await http.close()


async def test_requests_go_as_sent_and_share_one_kept_alive_connection():
    async with serving(keep_answering) as (upstream, http):
        first = await http.post(f"{upstream.url}/v1/chat/completions?api-version=1", b'{"a":1}',
                                {"authorization": "Bearer sk-secret-upstream", "content-type": "application/json"})
        second = await http.get(f"{upstream.url}/v1/models", {"authorization": "Bearer sk-secret-upstream"})
    assert (first, second) == (b'{"n":1}', b'{"n":2}')
    assert upstream.connections == 1
    (head, body), (get_head, get_body) = upstream.requests
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /v1/chat/completions?api-version=1 HTTP/1.1"
    assert f"host: 127.0.0.1:{upstream.port}".encode() in lines
    assert b"authorization: Bearer sk-secret-upstream" in lines and b"content-length: 7" in lines
    assert body == b'{"a":1}'
    assert get_head.startswith(b"GET /v1/models HTTP/1.1\r\n") and b"content-length" not in get_head
    assert get_body == b""


async def test_a_kept_alive_connection_the_upstream_closed_is_replaced_without_sending_twice():
    async def answer_once(reader, writer, upstream):
        if await upstream.read_request(reader) is not None:
            writer.write(answer(b"{}"))
            await writer.drain()  # then the connection closes: an idle timeout upstream

    async with serving(answer_once) as (upstream, http):
        assert await http.post(f"{upstream.url}/a", b"1", {}) == b"{}"
        await asyncio.sleep(0.05)  # the close reaches the client, or is still on its way: both must work
        assert await http.post(f"{upstream.url}/b", b"2", {}) == b"{}"
    assert upstream.connections == 2
    assert [body for _, body in upstream.requests] == [b"1", b"2"]


async def test_an_answer_cut_mid_body_is_an_error_and_not_retried():
    async def cut(reader, writer, upstream):
        await upstream.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{\"partial\":")
        await writer.drain()

    async with serving(cut) as (upstream, http):
        with pytest.raises(UpstreamUnavailable) as raised:
            await http.post(f"{upstream.url}/a", b"{}", {})
    assert raised.value.code == "upstream_unreachable"
    assert len(upstream.requests) == 1


async def test_read_timeout_is_per_read_not_for_the_whole_answer():
    async def silent(reader, writer, upstream):
        await upstream.read_request(reader)
        await reader.read()  # until the client gives up: it closes the connection
        upstream.closed_by_client.set()

    async def trickle(reader, writer, upstream):
        await upstream.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\n")
        for byte in b"abcdef":
            await asyncio.sleep(0.1)
            writer.write(bytes([byte]))
            await writer.drain()

    http = client(read_timeout=0.3)
    await http.start()
    async with Upstream(silent) as upstream:
        started = time.monotonic()
        with pytest.raises(UpstreamTimeout):
            await http.post(f"{upstream.url}/a", b"{}", {})
        assert 0.25 < time.monotonic() - started < 2
        await asyncio.wait_for(upstream.closed_by_client.wait(), 2)
    async with Upstream(trickle) as upstream:  # 0.6 s in all, never 0.3 s without a byte
        assert await http.post(f"{upstream.url}/a", b"{}", {}) == b"abcdef"
    await http.close()


async def test_unreachable_upstreams_and_bad_urls_are_clear_errors():
    http = client(connect_timeout=2)
    await http.start()
    probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    with pytest.raises(UpstreamUnavailable) as refused:
        await http.post(f"http://127.0.0.1:{port}/a", b"{}", {"authorization": "Bearer sk-secret-upstream"})
    assert refused.value.status == 502 and "could not be reached" in refused.value.message
    assert "sk-secret-upstream" not in refused.value.message
    with pytest.raises(UpstreamUnavailable):
        await http.post("ftp://example.invalid/a", b"{}", {})
    await http.close()


async def test_error_answers_map_to_our_errors_with_retry_after():
    async def limited(reader, writer, upstream):
        await upstream.read_request(reader)
        writer.write(answer(b'{"error":{"message":"slow down","code":"rate_limit_exceeded"}}',
                            "429 Too Many Requests", b"Retry-After: 7\r\n"))
        await writer.drain()

    async with serving(limited) as (upstream, http):
        with pytest.raises(RateLimited) as raised:
            await http.post(f"{upstream.url}/a", b"{}", {})
    assert "slow down" in raised.value.message
    assert raised.value.headers["Retry-After"] == "7"


async def test_connection_close_and_close_delimited_bodies():
    async def closing(reader, writer, upstream):
        await upstream.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n" + b"x" * 70_000)
        await writer.drain()

    async with serving(closing) as (upstream, http):
        assert await http.post(f"{upstream.url}/a", b"{}", {}) == b"x" * 70_000
        assert await http.post(f"{upstream.url}/a", b"{}", {}) == b"x" * 70_000
    assert upstream.connections == 2


async def test_an_interim_answer_is_skipped():
    async def hints(reader, writer, upstream):
        await upstream.read_request(reader)
        writer.write(b"HTTP/1.1 103 Early Hints\r\nlink: </x>\r\n\r\n" + answer(b'{"ok":true}'))
        await writer.drain()
        await upstream.read_request(reader)

    async with serving(hints) as (upstream, http):
        assert await http.post(f"{upstream.url}/a", b"{}", {}) == b'{"ok":true}'


async def test_a_stream_arrives_as_sent_and_leaving_it_closes_the_connection():
    first_seen = asyncio.Event()

    async def streaming(reader, writer, upstream):
        await upstream.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
        writer.write(b"6\r\ndata: \r\n")
        await writer.drain()
        await first_seen.wait()  # the client relays the first chunk before the rest exists
        writer.write(b"5\r\nhello\r\n")
        await writer.drain()
        await upstream.read_request(reader)  # waits for the client's end of the connection

    async with serving(streaming) as (upstream, http):
        async with http.stream(f"{upstream.url}/a", b"{}", {}) as chunks:
            iterator = aiter(chunks)
            assert await anext(iterator) == b"data: "
            first_seen.set()
            assert await anext(iterator) == b"hello"
        await asyncio.wait_for(upstream.closed_by_client.wait(), 2)


async def test_a_large_body_arrives_whole_past_the_read_pause():
    size = 3 * HIGH_WATER + 123
    payload = bytes(range(256)) * (size // 256) + b"z" * (size % 256)

    async def large(reader, writer, upstream):
        while await upstream.read_request(reader) is not None:
            writer.write(answer(payload))
            await writer.drain()

    async with serving(large) as (upstream, http):
        assert await http.post(f"{upstream.url}/a", b"{}", {}) == payload
        received = bytearray()
        async with http.stream(f"{upstream.url}/a", b"{}", {}) as chunks:
            async for chunk in chunks:
                received += chunk
                await asyncio.sleep(0.005)  # a slow reader: the socket is paused meanwhile
        assert bytes(received) == payload
    assert upstream.connections == 1  # both read whole: the connection was kept


async def test_a_header_with_a_line_break_is_refused_before_anything_is_sent():
    async with serving(keep_answering) as (upstream, http):
        with pytest.raises(InvalidRequest):
            await http.post(f"{upstream.url}/a", b"{}", {"x-bad": "a\r\nx-injected: 1"})
    assert upstream.requests == []


async def test_garbage_from_the_upstream_is_a_protocol_error():
    async def garbage(reader, writer, upstream):
        await upstream.read_request(reader)
        writer.write(b"NOT HTTP AT ALL\r\n\r\n")
        await writer.drain()
        await reader.read()

    async with serving(garbage) as (upstream, http):
        with pytest.raises(UpstreamError) as raised:
            await http.post(f"{upstream.url}/a", b"{}", {})
    assert raised.value.code == "upstream_protocol_error"


def _self_signed(tmp_path):
    """A certificate for 127.0.0.1 and its key, as PEM files."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "junction test upstream")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                                  critical=False)
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                   .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp_path / "upstream.pem", tmp_path / "upstream.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


async def test_https_upstreams_are_verified_against_the_trusted_cas(tmp_path, monkeypatch):
    import ssl

    cert_file, key_file = _self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    upstream = Upstream(keep_answering)
    upstream.server = await asyncio.start_server(upstream._serve, "127.0.0.1", 0, ssl=context)
    url = f"https://127.0.0.1:{upstream.server.sockets[0].getsockname()[1]}/v1/x"
    try:
        untrusting = client()  # the system's CAs only: this certificate is nobody's
        await untrusting.start()
        with pytest.raises(UpstreamUnavailable) as refused:
            await untrusting.post(url, b"{}", {})
        assert "certificate" in refused.value.message.lower()
        await untrusting.close()
        monkeypatch.setenv("SSL_CERT_FILE", str(cert_file))  # an operator's own CA bundle
        trusting = client()
        await trusting.start()
        assert await trusting.post(url, b'{"a":1}', {}) == b'{"n":1}'
        assert await trusting.post(url, b'{"a":2}', {}) == b'{"n":2}'
        await trusting.close()
    finally:
        upstream.server.close()
        await upstream.server.wait_closed()
    assert upstream.connections == 1  # one kept-alive connection (the refused handshake never became one)
    assert [body for _, body in upstream.requests] == [b'{"a":1}', b'{"a":2}']


async def test_a_path_is_percent_encoded_and_a_header_beyond_latin_1_is_refused():
    async with serving(keep_answering) as (upstream, http):
        await http.post(f"{upstream.url}/v1/models/gpt 4o ünï:generate?alt=sse&x=%2F", b"{}", {})
        with pytest.raises(InvalidRequest):
            await http.post(f"{upstream.url}/a", b"{}", {"x-name": "名前"})
    ((head, _),) = upstream.requests
    assert head.startswith(b"POST /v1/models/gpt%204o%20%C3%BCn%C3%AF:generate?alt=sse&x=%2F HTTP/1.1\r\n")


@pytest.mark.parametrize("library", ["httptools", "pyreqwest", "aiohttp"])
async def test_every_client_answers_and_maps_failures_alike(library):
    """The contract the three ``http_client`` choices share (one mapping of transport failures)."""
    from junction.upstream.http import new_upstream_client

    async def by_path(reader, writer, upstream):
        while (request := await upstream.read_request(reader)) is not None:
            if request[0].startswith(b"POST /limited "):
                writer.write(answer(b'{"error":{"message":"slow down"}}', "429 Too Many Requests",
                                    b"retry-after: 7\r\n"))
            elif request[0].startswith(b"POST /silent "):
                await reader.read()  # until the client gives up on it
                return
            else:
                writer.write(answer(b'{"ok":true}'))
            await writer.drain()

    http = new_upstream_client("openai", ProviderConfig(api_key="sk-secret-upstream", http_client=library,
                                                        read_timeout=0.5, connect_timeout=2))
    await http.start()
    try:
        async with Upstream(by_path) as upstream:
            assert await http.post(f"{upstream.url}/ok", b"{}", {}) == b'{"ok":true}'
            with pytest.raises(RateLimited) as limited:
                await http.post(f"{upstream.url}/limited", b"{}", {})
            assert limited.value.headers["Retry-After"] == "7"
            with pytest.raises(UpstreamTimeout) as timed_out:
                await http.post(f"{upstream.url}/silent", b"{}", {})
            assert timed_out.value.code == "upstream_timeout"
            port = upstream.port
        with pytest.raises(UpstreamUnavailable) as refused:
            await http.post(f"http://127.0.0.1:{port}/ok", b"{}", {})
        assert refused.value.code == "upstream_unreachable"
    finally:
        await http.close()
