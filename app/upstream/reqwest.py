"""The upstream client on pyreqwest (Rust's reqwest and hyper, its own Tokio thread): the same
contract as the aiohttp one in ``http.py`` (pool slots, error mapping, redaction, SSE relay are
inherited), at about half its CPU per request (``bench/http_clients.py``; README, Performance).

Chosen per provider with ``http_client = "pyreqwest"`` (the default is the event-loop client in
``native.py``, which needs no thread of its own).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import timedelta

from pyreqwest.client import Client, ClientBuilder
from pyreqwest.exceptions import ConnectError, NetworkError, PyreqwestError, RequestTimeoutError
from pyreqwest.response import Response

from junction.errors import JunctionError, UpstreamUnavailable
from junction.upstream.http import _TAIL_SECONDS, UpstreamClient, _with_extra


class ReqwestClient(UpstreamClient):
    _client: Client | None = None

    async def start(self) -> None:
        if self._client is not None:
            return
        config = self.config
        self._client = (ClientBuilder()
                        .max_connections(config.max_connections)
                        .connect_timeout(timedelta(seconds=config.connect_timeout))
                        .read_timeout(timedelta(seconds=config.read_timeout))
                        .pool_idle_timeout(timedelta(seconds=60))
                        .no_proxy()  # as aiohttp (trust_env=False): never a proxy from the environment
                        .follow_redirects(False)
                        .error_for_status(False)
                        .build())

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    @property
    def started(self) -> bool:
        return self._client is not None

    @property
    def client(self) -> Client:
        if self._client is None:
            raise UpstreamUnavailable(f"{self.provider}: HTTP client not started")
        return self._client

    async def _fetch(self, method: str, url: str, headers: Mapping[str, str], body: bytes | None = None) -> bytes:
        builder = self.client.request(method, url).headers(dict(_with_extra(headers)))
        if body is not None:
            builder = builder.body_bytes(body)
        try:
            async with self._slot():
                response = await builder.build().send()
                payload = (await response.bytes()).to_bytes()
        except JunctionError:
            raise
        except Exception as error:  # cancellation is a BaseException and passes untouched
            raise self.redacted(self._transport_error(error), headers) from error
        if response.status >= 400:
            raise self.redacted(self.map_error(self.provider, response.status, payload, response.headers), headers)
        return payload

    @asynccontextmanager
    async def _response(self, url: str, body: bytes,
                        headers: Mapping[str, str]) -> AsyncIterator[AsyncIterator[bytes]]:
        # No read-ahead buffer: with one, the response is handed over only once that much of the
        # body arrived, which holds back a slow stream's first events.
        request = (self.client.post(url).headers(dict(_with_extra(headers))).body_bytes(body)
                   .streamed_read_buffer_limit(0).build_streamed())
        try:
            response = await request.__aenter__()
        except Exception as error:
            raise self.redacted(self._transport_error(error), headers) from error
        try:
            if response.status >= 400:
                try:
                    payload = (await response.bytes()).to_bytes()
                except Exception as error:
                    raise self.redacted(self._transport_error(error), headers) from error
                raise self.redacted(self.map_error(self.provider, response.status, payload, response.headers),
                                    headers)
            yield self._read(response)
            await _drain(response)
        finally:
            await request.__aexit__(None, None, None)  # drops the connection unless the body was read whole

    async def _read(self, response: Response) -> AsyncIterator[bytes]:
        reader = response.body_reader
        try:
            while (chunk := await reader.read_chunk()) is not None:
                yield chunk.to_bytes()
        except Exception as error:  # cancellation and generator close are BaseExceptions: they pass
            raise self._transport_error(error) from error

    def _failure_kinds(self) -> tuple[tuple[type[BaseException], ...], tuple[type[BaseException], ...]]:
        return (RequestTimeoutError, TimeoutError), (ConnectError, NetworkError)


async def _drain(response: Response) -> None:
    """Keep the connection after a complete stream: its end (the chunked terminator) may trail the
    last event by a moment, so wait for it briefly rather than drop a kept-alive connection (the
    next request would pay a new TCP and TLS handshake). Past the wait, closing drops it."""
    reader = response.body_reader
    try:
        async with asyncio.timeout(_TAIL_SECONDS):
            while await reader.read_chunk() is not None:
                pass  # bytes after the stream's end: nothing to relay
    except (TimeoutError, PyreqwestError):
        return
