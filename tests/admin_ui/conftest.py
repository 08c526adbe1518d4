"""A real ``junction serve`` (SQLite stores, sessions in Redis DB 15) with the fake OpenAI upstream,
an admin client for seeding through the admin API, and a headless Debian ``chromium`` driven by
Playwright (tests that need it skip when /usr/bin/chromium is missing)."""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from junction.testing.server import JunctionProcess
from tests.conftest import openai_provider_table
from tests.fakes.openai_upstream import FakeOpenAI

#: Redis database reserved for the console's tests (flushed when they start).
CONSOLE_REDIS_DB = 15
CHROMIUM = os.environ.get("JUNCTION_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ENCRYPTION_KEY = base64.b64encode(bytes(range(50, 82))).decode()


def console_config(fake: FakeOpenAI, redis_db: int = CONSOLE_REDIS_DB, extra: str = "") -> str:
    return openai_provider_table(fake) + f"""
[stores]
cache = "redis://127.0.0.1:6379/{redis_db}"

[security]
encryption_keys = [{{ id = "ui-1", key = "{ENCRYPTION_KEY}" }}]

[metrics]
flush_seconds = 0.2

[middleware.rate-limit]
enabled = true

[middleware.budget]
enabled = true
""" + extra


@pytest.fixture(scope="module")
def console_redis() -> Iterator[redis.Redis]:
    client = redis.Redis(db=CONSOLE_REDIS_DB)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture(scope="module")
def server(fake_openai_server: FakeOpenAI, console_redis: redis.Redis,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[JunctionProcess]:
    with JunctionProcess(tmp_path_factory.mktemp("console"), console_config(fake_openai_server)) as process:
        yield process


@pytest.fixture(scope="module")
def admin(server: JunctionProcess) -> Iterator[httpx.Client]:
    """The admin API with the master key (seeding and cross-checking what the pages show)."""
    with httpx.Client(base_url=server.url, headers={"authorization": f"Bearer {server.key}"}, timeout=20) as client:
        yield client


def new_org(admin: httpx.Client, name: str) -> dict[str, Any]:
    answer = admin.post("/api/v1/admin/orgs", json={"name": name})
    assert answer.status_code == 201, answer.text
    return answer.json()


def new_key(admin: httpx.Client, org_id: str, scopes: list[str]) -> str:
    answer = admin.post("/api/v1/admin/keys", json={"org_id": org_id, "name": "seed", "scopes": scopes})
    assert answer.status_code == 201, answer.text
    return answer.json()["key"]


@contextmanager
def signed_in(server: JunctionProcess, key: str) -> Iterator[httpx.Client]:
    """An HTTP client holding a console session (as a browser would after the sign-in form)."""
    with httpx.Client(base_url=server.url, timeout=20, follow_redirects=False) as client:
        page = client.get("/ui/login")
        answer = client.post("/ui/login", data={"key": key, "csrf_token": csrf_of(page.text)})
        assert answer.status_code == 303, answer.text
        yield client


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "no csrf_token field on the page"
    return found.group(1)


# --- the browser ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Module-scoped: Playwright's sync API runs its own event loop on this thread while it is
    open, which the async tests of later modules (pytest-asyncio's loop) must not meet."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield launched
        launched.close()


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where every page's screenshot goes (printed at the end of the run for reviewers)."""
    return tmp_path_factory.mktemp("console-screenshots")


class ConsolePage:
    """A browser tab on the console that records console errors and failed requests."""

    def __init__(self, page: Any, server: JunctionProcess, screenshots: Path) -> None:
        self.page = page
        self.server = server
        self.screenshots = screenshots
        self.errors: list[str] = []
        #: Pages a test opens to see a refusal (their 4xx status is what the test expects).
        self.refusals: set[str] = set()
        page.on("console", self._on_console)
        page.on("pageerror", lambda error: self.errors.append(str(error)))

    def _on_console(self, message: Any) -> None:
        url = message.location.get("url", "")
        if message.type == "error" and url.split("?")[0] not in self.refusals:
            self.errors.append(f"{message.text} ({url})")

    def expect_refusal(self, path: str) -> None:
        self.refusals.add(f"{self.server.url}{path}")

    def open(self, path: str) -> Any:
        return self.page.goto(f"{self.server.url}{path}")

    def sign_in(self, key: str) -> None:
        self.open("/ui/login")
        self.page.get_by_label("Master key or admin key").fill(key)
        self.page.get_by_role("button", name="Sign in").click()
        self.page.wait_for_url(f"{self.server.url}/ui")

    def shot(self, name: str) -> None:
        self.page.screenshot(path=str(self.screenshots / f"{name}.png"), full_page=True)


@pytest.fixture
def console(browser: Any, server: JunctionProcess, screenshots: Path) -> Iterator[ConsolePage]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    tab = ConsolePage(context.new_page(), server, screenshots)
    yield tab
    context.close()
    assert tab.errors == [], f"the browser console showed errors: {tab.errors}"
