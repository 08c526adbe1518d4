"""HTTP tools pass the webhooks' SSRF guard: a loopback tool URL is refused unless private targets
are allowed, and the refusal is a tool error (the model hears it), not a failed call."""

from __future__ import annotations

import json

from aiohttp import web

from junction.agents.http_tools import HttpToolClient
from junction.stores.documents.common import utc_now
from junction.stores.documents.tools import HttpTool


def tool(url: str) -> HttpTool:
    now = utc_now()
    return HttpTool(id="tool_1", org_id="org_1", name="t", parameters={"type": "object"}, url=url, method="POST",
                    timeout_seconds=2, created_at=now, updated_at=now)


async def test_private_targets_are_refused_unless_allowed() -> None:
    calls: list[dict] = []

    async def handler(request: web.Request) -> web.Response:
        calls.append(await request.json())
        return web.json_response({"ok": True})

    app = web.Application()
    app.add_routes([web.post("/t", handler)])
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        for url in (f"http://127.0.0.1:{port}/t", f"http://localhost:{port}/t"):
            guarded = HttpToolClient(allow_private=False, max_result_chars=1000)
            await guarded.start()
            try:
                result = await guarded.call(tool(url), {}, {"a": 1})
            finally:
                await guarded.close()
            assert result.error is not None and "refused" in result.error and "loopback" in result.error
            assert json.loads(result.content) == {"error": result.error}
        assert calls == []
        allowed = HttpToolClient(allow_private=True, max_result_chars=1000)
        await allowed.start()
        try:
            result = await allowed.call(tool(f"http://127.0.0.1:{port}/t"), {}, {"a": 1})
        finally:
            await allowed.close()
        assert result.error is None and json.loads(result.content) == {"ok": True} and calls == [{"a": 1}]
    finally:
        await runner.cleanup()
