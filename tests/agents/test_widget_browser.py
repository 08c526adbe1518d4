"""The chatbot widget in a real browser: Debian's chromium, headless, driven by Playwright, loads a
page of an allowed origin with the one script tag, sends a message and shows the answer as it
streams in. Skipped when chromium (``/usr/bin/chromium``) or Playwright is missing."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest
from aiohttp import web

from junction.testing.upstream import FakeUpstream
from tests.agents.conftest import MASTER
from tests.fakes.openai_upstream import ScriptedReply
from tests.tenancy.conftest import Tenant

CHROMIUM = "/usr/bin/chromium"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"no chromium at {CHROMIUM} (apt-get install chromium)"),
]
playwright_api = pytest.importorskip("playwright.sync_api")


class SitePage(FakeUpstream):
    """A website on its own origin whose page embeds the widget."""

    def __init__(self) -> None:
        super().__init__()
        self.html = ""

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/", self.page)]

    async def page(self, request: web.Request) -> web.Response:
        return web.Response(text=self.html, content_type="text/html")


@pytest.fixture(scope="module")
def site() -> Any:
    page = SitePage().start()
    yield page
    page.stop()


def test_the_widget_streams_an_answer_in_chromium(site: SitePage, agents_server: Any, tenant: Tenant,
                                                  fake_openai: Any) -> None:
    tenant.admin.ok("POST", "/api/v1/bridges", {
        "slug": "shopbot", "name": "Shop bot", "model": "openai/gpt-4o-mini", "prompt": "Help.",
        "type": "chatbot", "chatbot": {"allowed_origins": [site.url]}}, status=201)
    token = tenant.admin.ok("POST", "/api/v1/chatbots/shopbot/token", {"end_user_id": "visitor-1"})["token"]
    site.html = (f"<!doctype html><html><head><title>Shop</title></head><body><h1>Shop</h1>"
                 f'<script src="{agents_server.url}/chatbot/shopbot/widget.js" data-token="{token}" '
                 f'data-title="Ask the shop"></script></body></html>')
    held = asyncio.Event()
    fake_openai.script(ScriptedReply(text="We ship worldwide within three days.", chunk_size=6, hold=held))

    with playwright_api.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(site.url)
            page.click("[data-junction=open]")
            page.fill("[data-junction=input]", "Do you ship abroad?")
            page.click("[data-junction=send]")
            answer = page.locator("[data-junction-role=assistant]")
            # The first piece shows while the model is still writing: the answer streams in.
            page.wait_for_function(
                "() => { const a = document.querySelector('[data-junction-role=assistant]');"
                " return a && a.textContent.length > 0 && a.dataset.junctionState === 'streaming'; }",
                timeout=15_000)
            assert answer.text_content() == "We shi"
            fake_openai.set_event(held)
            page.wait_for_selector("[data-junction-role=assistant][data-junction-state=done]", timeout=15_000)
            assert answer.text_content() == "We ship worldwide within three days."
            assert page.locator("[data-junction-role=user]").text_content() == "Do you ship abroad?"
            assert not errors and page.locator("[data-junction-role=error]").count() == 0
        finally:
            browser.close()
    assert fake_openai.last.json()["messages"][-1] == {"role": "user", "content": "Do you ship abroad?"}
    assert MASTER not in site.html
