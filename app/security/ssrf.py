"""Where Junction may send a request it was told to send (webhooks, HTTP and MCP tools): the URL's
shape, and the addresses it may not reach (loopback, private, link-local, cloud metadata, ...).

Free of any HTTP client, so the stores and the CLI can check a URL without importing one; the
resolvers that apply these rules at connection time live with their clients.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from junction.errors import InvalidRequest

_CGNAT = ipaddress.ip_network("100.64.0.0/10")  # shared address space; Alibaba's metadata lives here
_METADATA = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254"),
             ipaddress.ip_address("100.100.100.200")}


class WebhookRefused(OSError):
    """The target is not one Junction may POST to (scheme or address)."""


def refused_reason(address: str) -> str | None:
    """Why ``address`` may not be a webhook target, or ``None`` when it is a public address."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip in _METADATA:
        return "a cloud metadata address"
    for test, name in ((ip.is_loopback, "loopback"), (ip.is_link_local, "link-local"),
                       (ip.is_private, "private"), (ip.is_multicast, "multicast"),
                       (ip.is_unspecified, "unspecified"), (ip.is_reserved, "reserved")):
        if test:
            return f"a {name} address"
    if isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT:
        return "a shared (CGNAT) address"
    return None


def check_url(url: str, param: str = "webhook.url") -> str:
    """The URL's shape: http(s) with a host, no credentials. A 400 naming ``param`` otherwise."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise InvalidRequest(f"{param}: not a valid URL", param=param, code="invalid_webhook_url") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidRequest(f"{param}: must be an http:// or https:// URL", param=param,
                             code="invalid_webhook_url")
    if parts.username or parts.password:
        raise InvalidRequest(f"{param}: must not contain credentials", param=param, code="invalid_webhook_url")
    if len(url) > 2048:
        raise InvalidRequest(f"{param}: must be at most 2048 characters", param=param,
                             code="invalid_webhook_url")
    return url


def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def literal_refusal(host: str) -> str | None:
    """An IP-literal host never reaches the resolver: check it here."""
    return refused_reason(host.strip("[]")) if is_ip(host) else None
