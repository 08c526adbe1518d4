"""The webhook sender's own guard, at delivery time (DNS may have changed since the job was
submitted): the connection only goes to addresses the guard checked, and redirects are not followed."""

from __future__ import annotations

from aiohttp import web

from junction.domain.jobs.webhooks import WebhookSender, signature_headers
from junction.security.ssrf import refused_reason
from tests.jobs.conftest import WebhookReceiver


async def test_delivery_to_a_name_resolving_to_loopback_is_refused(receiver: WebhookReceiver) -> None:
    sender = WebhookSender(allow_private=False, timeout=2.0)
    await sender.start()
    try:
        for url in (f"http://localhost:{receiver.port}/hook", f"http://127.0.0.1:{receiver.port}/hook"):
            status, problem = await sender.send(url, b"{}", {})
            assert status is None and problem is not None and problem.startswith("refused"), (url, problem)
        status, problem = await sender.send("file:///etc/passwd", b"{}", {})
        assert status is None and "http" in (problem or "")
    finally:
        await sender.close()
    assert receiver.deliveries() == []  # nothing ever connected


class Redirecting(WebhookReceiver):
    def routes(self) -> list[web.RouteDef]:
        return [web.post("/hook", self.hook), web.post("/moved", self.moved)]

    async def moved(self, request: web.Request) -> web.Response:
        raise web.HTTPTemporaryRedirect(location=f"{self.url}/hook")


async def test_redirects_are_not_followed() -> None:
    target = Redirecting().start()
    sender = WebhookSender(allow_private=True, timeout=2.0)
    await sender.start()
    try:
        status, problem = await sender.send(f"{target.url}/moved", b"{}", signature_headers("s", "job_1", b"{}"))
        assert (status, problem) == (307, "HTTP 307")
        assert [request.path for request in target.requests] == ["/moved"]
    finally:
        await sender.close()
        target.stop()


def test_address_classes() -> None:
    assert refused_reason("8.8.8.8") is None and refused_reason("2606:4700::1111") is None
    for address in ("127.0.0.1", "::1", "10.0.0.1", "192.168.1.1", "172.16.0.1", "169.254.169.254",
                    "fe80::1", "fd00:ec2::254", "100.100.100.200", "0.0.0.0", "::ffff:10.0.0.1", "224.0.0.1"):
        assert refused_reason(address) is not None, address
