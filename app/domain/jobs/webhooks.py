"""Signed webhook delivery with an SSRF guard.

Signatures: ``x-junction-timestamp`` and ``x-junction-signature = "sha256=" + hex(HMAC-SHA256(secret,
timestamp + "." + body))`` (DESIGN §7), and the Standard Webhooks headers ``webhook-id``,
``webhook-timestamp``, ``webhook-signature = "v1," + base64(HMAC-SHA256(key, id + "." + timestamp +
"." + body))``. The Standard Webhooks key is the secret's UTF-8 bytes, or for a ``whsec_<base64>``
secret its decoded bytes (that library's convention): a receiver verifies with
``standardwebhooks.Webhook("whsec_" + base64(secret))``, or with the ``whsec_`` secret as configured.

The guard: http(s) only; every address the host resolves to must be public (not loopback,
private, link-local, CGNAT, multicast, reserved or a cloud metadata address) unless
``[jobs] allow_private_webhooks``; the connection goes to the addresses that were checked — the
check lives in the connector's resolver, so there is no second lookup an attacker's DNS could
answer differently — and redirects are not followed. (The resolver is in
:mod:`junction.security.resolver`; aiohttp is imported with the first delivery or check.)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import socket
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from junction.errors import InvalidRequest
from junction.security.ssrf import WebhookRefused, check_url, is_ip, literal_refusal

if TYPE_CHECKING:
    import aiohttp

log = logging.getLogger("junction.jobs.webhooks")


def standard_webhooks_key(secret: str) -> bytes:
    if secret.startswith("whsec_"):
        return base64.b64decode(secret.removeprefix("whsec_"))
    return secret.encode("utf-8")


def signature_headers(secret: str, message_id: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """Both signature schemes' headers for one POST of ``body``."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    junction = hmac.new(secret.encode("utf-8"), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    standard = hmac.new(standard_webhooks_key(secret), f"{message_id}.{stamp}.".encode() + body,
                        hashlib.sha256).digest()
    return {
        "x-junction-timestamp": stamp,
        "x-junction-signature": "sha256=" + junction,
        "webhook-id": message_id,
        "webhook-timestamp": stamp,
        "webhook-signature": "v1," + base64.b64encode(standard).decode(),
    }


class WebhookSender:
    """One pooled client for every webhook of the process; ``send`` makes one attempt."""

    def __init__(self, allow_private: bool, timeout: float) -> None:
        self._allow_private = allow_private
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        """Nothing to open yet: the pool is made by the first delivery (most processes send none)."""

    def _pool(self) -> aiohttp.ClientSession:
        if self._session is None:
            from junction.security.resolver import guarded_session

            self._session = guarded_session(self._allow_private, limit=64, timeout=self._timeout)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def check_target(self, url: str) -> None:
        """At submit time: the URL's shape, and (unless private targets are allowed) that its
        host resolves to public addresses only. Delivery checks again (DNS may change)."""
        check_url(url)
        if self._allow_private:
            return
        host = urlsplit(url).hostname or ""
        try:
            reason = literal_refusal(host)
            if reason is None and not is_ip(host):
                from junction.security.resolver import GuardedResolver

                await GuardedResolver(False).resolve(host, 0, socket.AF_UNSPEC)
        except WebhookRefused as refused:
            reason = str(refused)
        except OSError:
            raise InvalidRequest(f"webhook.url: host {host!r} does not resolve", param="webhook.url",
                                 code="invalid_webhook_url") from None
        if reason is not None:
            raise InvalidRequest(f"webhook.url: refused: {reason} (private targets need "
                                 "[jobs] allow_private_webhooks)", param="webhook.url", code="webhook_refused")

    async def send(self, url: str, body: bytes, headers: dict[str, str]) -> tuple[int | None, str | None]:
        """POST once: ``(status, None)`` when the receiver answered, ``(None, error)`` otherwise.
        A 2xx is a delivery; anything else (a redirect included: none is followed) is a failure."""
        import aiohttp

        try:
            check_url(url)
        except InvalidRequest as error:
            return None, error.message
        if not self._allow_private:
            reason = literal_refusal(urlsplit(url).hostname or "")
            if reason is not None:
                return None, f"refused: {reason}"
        try:
            async with self._pool().post(url, data=body, allow_redirects=False,
                                          headers={**headers, "content-type": "application/json",
                                                   "user-agent": "junction-webhooks"}) as response:
                await response.read()
                return response.status, None if 200 <= response.status < 300 else f"HTTP {response.status}"
        except WebhookRefused as refused:
            return None, f"refused: {refused}"
        except aiohttp.ClientConnectorError as error:
            cause: Any = error.os_error
            if isinstance(cause, WebhookRefused):
                return None, f"refused: {cause}"
            return None, f"connection failed: {type(cause).__name__}"
        except TimeoutError:
            return None, "timed out"
        except aiohttp.ClientError as error:
            return None, f"{type(error).__name__}"
