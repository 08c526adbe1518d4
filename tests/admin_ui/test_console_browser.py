"""The console in a real browser (headless Debian chromium through Playwright): sign-in, keys shown
once and revoked, bridges edited, versioned, published and played with (streamed text), the usage
explorer's chart against the analytics API, and org confinement. Every test fails on a browser
console error; each page's screenshot lands in the pytest tmp dir (``console-screenshots*``)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from junction.testing.server import JunctionProcess
from tests.admin_ui.conftest import ConsolePage, new_key, new_org
from tests.fakes.openai_upstream import FakeOpenAI, ScriptedReply

pytestmark = pytest.mark.slow


def chat(server: JunctionProcess, key: str, model: str = "openai/gpt-4o-mini") -> httpx.Response:
    return httpx.post(f"{server.url}/v1/chat/completions", timeout=20, headers={"authorization": f"Bearer {key}"},
                      json={"model": model, "messages": [{"role": "user", "content": "hi"}]})


PAGES = [("overview", "/ui"), ("orgs", "/ui/orgs"), ("keys", "/ui/keys"), ("bridges", "/ui/bridges"),
         ("usage", "/ui/usage"), ("plugins", "/ui/plugins"), ("jobs", "/ui/jobs")]


def unlabeled_controls(page: Any) -> list[str]:
    return page.evaluate("""[...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
        .filter(el => !el.labels || el.labels.length === 0).map(el => el.name)""")


def until(check: Any, timeout: float = 10.0) -> Any:
    """Poll ``check`` from the test (the page's CSP forbids the eval Playwright's waits use)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"not true within {timeout}s")


def test_sign_in_then_every_page_renders_without_console_errors(console: ConsolePage, server: JunctionProcess) -> None:
    page = console.page
    first = console.open("/ui/keys")
    assert page.url.endswith("/ui/login")
    assert "script-src 'self'" in first.headers["content-security-policy"]
    console.expect_refusal("/ui/login")
    page.get_by_label("Master key or admin key").fill("sk-not-a-key")
    page.get_by_role("button", name="Sign in").click()
    assert page.get_by_role("alert").inner_text() == "That key is not valid."
    console.shot("login-refused")
    console.sign_in(server.key)
    cookie = next(c for c in page.context.cookies() if c["name"] == "junction_ui")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    for name, path in PAGES:
        answer = console.open(path)
        assert answer.status == 200 and answer.headers["content-security-policy"].startswith("default-src 'none'")
        console.shot(name)
        assert unlabeled_controls(page) == [], name
        if name == "plugins":  # the resolved stage order, as the API lists it
            assert page.locator("#stage-order li").count() > 0
    page.emulate_media(color_scheme="dark")
    console.open("/ui/orgs")
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(15, 23, 42)"
    console.shot("orgs-dark")
    page.emulate_media(color_scheme="light")
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(255, 255, 255)"
    page.set_viewport_size({"width": 390, "height": 844})  # a phone: nothing wider than the screen
    for name, path in PAGES:
        console.open(path)
        assert page.evaluate("document.documentElement.scrollWidth") <= 390, name
        console.shot(f"{name}-phone")
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(f"{server.url}/ui/login")
    console.open("/ui/orgs")
    assert page.url.endswith("/ui/login")


def test_keyboard_alone_reaches_the_navigation(console: ConsolePage, server: JunctionProcess) -> None:
    console.sign_in(server.key)
    page = console.page
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Overview"
    for _ in range(2):
        page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{server.url}/ui/keys")


def test_a_key_is_shown_once_and_once_revoked_the_api_refuses_it(
        console: ConsolePage, server: JunctionProcess, admin: httpx.Client) -> None:
    org = new_org(admin, "browser-keys")
    console.sign_in(server.key)
    page = console.page
    console.open(f"/ui/keys?org_id={org['id']}")
    page.get_by_label("Name", exact=True).fill("from the console")
    page.get_by_label("Requests a minute").fill("50")
    page.get_by_role("button", name="Create key").click()
    secret = page.get_by_label("The new key").input_value()
    assert secret.startswith("sk-jn-")
    console.shot("key-created")
    assert chat(server, secret).status_code == 200
    page.get_by_role("link", name="Go to the key").click()
    assert secret not in page.content()
    rpm_row = page.locator("table.usage tr", has_text="Requests, last minute").inner_text().split("\t")
    assert rpm_row[1:3] == ["1", "50"]  # its one call against its rpm limit
    console.shot("key")
    page.get_by_role("button", name="Revoke this key").click()
    assert page.locator(".notice").inner_text().startswith("The key was revoked")
    assert page.locator("#key-state").inner_text().startswith("revoked")
    refused = chat(server, secret)
    assert refused.status_code == 401, refused.text
    console.open("/ui/keys")
    assert secret not in page.content()


def test_edit_a_bridge_publish_a_version_and_stream_from_the_playground(
        console: ConsolePage, server: JunctionProcess, admin: httpx.Client, fake_openai: FakeOpenAI) -> None:
    org = new_org(admin, "browser-bridges")
    console.sign_in(server.key)
    page = console.page
    console.open("/ui/bridges")
    page.get_by_label("Org id").select_option(org["id"])
    page.get_by_label("Name", exact=True).fill("Support")
    page.get_by_label("Slug").fill("support")
    page.get_by_label("Model", exact=True).fill("openai/gpt-4o-mini")
    page.get_by_label("Prompt").fill("You are helpful.")
    page.get_by_role("button", name="Create bridge").click()
    bridge_id = page.url.split("/ui/bridges/")[1].split("?")[0]
    assert unlabeled_controls(page) == []
    page.get_by_role("button", name="Save the draft as a new version").click()
    page.get_by_label("Prompt (").fill("You answer {{product}} questions.")
    page.get_by_label("Variables (JSON list").fill('[{"name": "product", "default": "Junction"}]')
    page.get_by_label("Params (JSON").fill('{"temperature": 0.2}')
    page.get_by_role("button", name="Save draft").click()
    assert page.locator(".notice").inner_text() == "Saved."
    draft = admin.get(f"/api/v1/bridges/{bridge_id}").json()
    assert draft["prompt"] == "You answer {{product}} questions." and draft["params"] == {"temperature": 0.2}
    page.get_by_role("button", name="Save the draft as a new version").click()
    page.get_by_label("Compare").select_option("1")
    page.get_by_label("with").select_option("2")
    page.get_by_role("button", name="Show diff").click()
    diff = page.locator("#diff").inner_text()
    assert '-  "prompt": "You are helpful."' in diff and '+  "prompt": "You answer {{product}} questions."' in diff
    console.shot("bridge-diff")
    page.go_back()
    page.get_by_role("button", name="Publish version 2").click()
    assert admin.get(f"/api/v1/bridges/{bridge_id}").json()["published_version"] == 2
    page.get_by_role("button", name="Roll back to version 1").click()
    assert page.locator("#published").inner_text() == "version 1"
    assert admin.get(f"/api/v1/bridges/{bridge_id}").json()["published_version"] == 1

    fake_openai.script(ScriptedReply(text="Streaming from the playground, piece by piece.", chunk_size=6, delay=0.15))
    page.get_by_label("Run").select_option("2")
    page.get_by_label("Message").fill("How do I start?")
    page.get_by_role("button", name="Send").click()
    answer, status = page.locator("#pg-answer"), page.locator("#pg-status")
    partial = until(lambda: answer.inner_text())
    # The first pieces are on the page while the rest is still on its way: streamed, not buffered.
    assert status.inner_text() == "Streaming…" and partial != "Streaming from the playground, piece by piece."
    until(lambda: status.inner_text() == "Done.")
    assert answer.inner_text() == "Streaming from the playground, piece by piece."
    console.shot("bridge-playground")
    sent = json.loads(fake_openai.requests[-1].body)  # version 2, its variable's default filled in
    assert sent["messages"][0] == {"role": "system", "content": "You answer Junction questions."}
    assert sent["temperature"] == 0.2
    console.open(f"/ui/bridges/{bridge_id}/threads")
    console.shot("bridge-threads")


def test_the_usage_chart_shows_the_series_the_analytics_api_answers(
        console: ConsolePage, server: JunctionProcess, admin: httpx.Client) -> None:
    org = new_org(admin, "browser-usage")
    key = new_key(admin, org["id"], ["chat"])
    for model, calls in (("openai/gpt-4o-mini", 3), ("openai/gpt-4o", 2)):
        for _ in range(calls):
            assert chat(server, key, model).status_code == 200
    start = (datetime.now(UTC) - timedelta(hours=1)).replace(microsecond=0).isoformat()
    query = {"org_id": org["id"], "bucket": "minute", "group_by": "model", "start": start}
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:  # the ledger flushes every 0.2 s
        report = admin.get("/api/v1/analytics/usage", params=query).json()
        if report["totals"]["requests"] == 5:
            break
        time.sleep(0.2)
    assert report["totals"]["requests"] == 5
    console.sign_in(server.key)
    page = console.page
    console.open("/ui/usage?" + httpx.QueryParams({**query, "metric": "requests", "chart": "bar"}).__str__())
    until(lambda: page.evaluate("Chart.getChart('usage-chart') !== undefined"))
    chart: dict[str, Any] = page.evaluate("""(() => { const c = Chart.getChart('usage-chart');
        return {type: c.config.type, labels: c.data.labels,
                datasets: c.data.datasets.map(d => ({label: d.label, data: d.data}))}; })()""")
    console.shot("usage-explorer")
    assert chart["type"] == "bar"
    expected: dict[str, dict[str, int]] = {}
    for point in report["series"]:
        expected.setdefault(f"model={point['group']['model']}", {})[point["bucket"]] = point["stats"]["requests"]
    drawn = {dataset["label"]: {datetime.fromisoformat(label): value
                                for label, value in zip(chart["labels"], dataset["data"]) if value}
             for dataset in chart["datasets"]}
    assert drawn == {label: {datetime.fromisoformat(b.replace("Z", "+00:00")): v for b, v in buckets.items()}
                     for label, buckets in expected.items()}
    assert sum(sum(values.values()) for values in drawn.values()) == 5
    with page.expect_download() as download:
        page.get_by_role("link", name="Export CSV").click()
    rows = open(download.value.path(), encoding="utf-8").read().splitlines()
    assert rows[0].startswith("bucket,model,requests")
    assert sum(int(row.split(",")[2]) for row in rows[1:]) == 5


def test_an_org_admin_cannot_open_another_orgs_pages(
        console: ConsolePage, server: JunctionProcess, admin: httpx.Client) -> None:
    mine, theirs = new_org(admin, "browser-mine"), new_org(admin, "browser-theirs")
    console.sign_in(new_key(admin, mine["id"], ["admin", "chat"]))
    page = console.page
    assert theirs["id"] not in console.open("/ui/orgs").text()
    console.expect_refusal(f"/ui/orgs/{theirs['id']}")
    answer = console.open(f"/ui/orgs/{theirs['id']}")
    assert answer.status == 404 and "org not found" in page.content()
    console.shot("other-org-refused")
    assert console.open(f"/ui/orgs/{mine['id']}").status == 200
    console.shot("own-org")


def test_a_form_post_without_the_csrf_token_is_refused(
        console: ConsolePage, server: JunctionProcess, admin: httpx.Client) -> None:
    console.sign_in(server.key)
    page = console.page
    console.open("/ui/orgs")
    before = len(admin.get("/api/v1/admin/orgs").json())
    page.evaluate("document.querySelector('form[action=\"/ui/orgs\"] input[name=csrf_token]').remove()")
    console.expect_refusal("/ui/orgs")
    page.get_by_label("Name", exact=True).fill("no-token")
    page.get_by_role("button", name="Create org").click()
    assert page.get_by_role("heading").inner_text() == "Refused"
    console.shot("csrf-refused")
    assert len(admin.get("/api/v1/admin/orgs").json()) == before
