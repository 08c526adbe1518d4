"""A ``junction serve`` with the OpenAI, Anthropic and Gemini fakes and a real tool server, all
on loopback (``[jobs] allow_private_webhooks`` lets tools reach it), SQLite documents."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis

from junction.testing.scripted_upstream import Reply, SeenRequest, ToolCallReply
from junction.testing.server import JunctionProcess
from tests.agents.mcp_server import TOKEN as MCP_TOKEN
from tests.agents.mcp_server import McpTestServer
from tests.agents.tool_server import ToolServer
from tests.conftest import openai_provider_table
from tests.fakes.anthropic_upstream import FakeAnthropic
from tests.fakes.fixtures import fake_fixtures
from tests.fakes.gemini_upstream import FakeGemini
from tests.fakes.openai_upstream import FakeOpenAI, ScriptedReply
from tests.tenancy.conftest import ENCRYPTION_KEY, Api, Tenant, new_tenant

MASTER = "sk-test-master"
#: Redis database of these tests (flushed when they start).
AGENTS_REDIS_DB = 9
TOOL_SECRET = "Bearer tool-secret-123"

tool_server_process, tool_server = fake_fixtures(ToolServer, scope="session", server_name="tool_server_process",
                                                 name="tool_server")
fake_anthropic_server, fake_anthropic = fake_fixtures(FakeAnthropic, scope="session",
                                                      server_name="fake_anthropic_server", name="fake_anthropic")
fake_gemini_server, fake_gemini = fake_fixtures(FakeGemini, scope="session",
                                                server_name="fake_gemini_server", name="fake_gemini")


def agents_config(openai: FakeOpenAI, anthropic: FakeAnthropic, gemini: FakeGemini, documents: str) -> str:
    return openai_provider_table(openai, read_timeout=10.0) + f"""
[providers.anthropic]
api_key = "{anthropic.api_key}"
base_url = "{anthropic.base_url}"

[providers.gemini]
api_key = "{gemini.api_key}"
base_url = "{gemini.base_url}"

[stores]
documents = "{documents}"
cache = "redis://127.0.0.1:6379/{AGENTS_REDIS_DB}"

[security]
encryption_keys = [{{ id = "test-1", key = "{ENCRYPTION_KEY}" }}]

[jobs]
allow_private_webhooks = true

[middleware.agents]
keepalive_seconds = 0.2
"""


@pytest.fixture(scope="session")
def agents_redis() -> Iterator[redis.Redis]:
    client = redis.Redis(host="127.0.0.1", port=6379, db=AGENTS_REDIS_DB)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture(scope="session")
def agents_server(agents_redis: redis.Redis, fake_openai_server: FakeOpenAI, fake_anthropic_server: FakeAnthropic,
                  fake_gemini_server: FakeGemini, tool_server_process: ToolServer,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[JunctionProcess]:
    directory = tmp_path_factory.mktemp("agents")
    config = agents_config(fake_openai_server, fake_anthropic_server, fake_gemini_server,
                           f"sqlite+aiosqlite:///{directory}/documents.db")
    with JunctionProcess(directory, config, master_key=MASTER,
                         env={"JUNCTION_SECRET_TOOLS": "env-secret",
                              "JUNCTION_SECRET_MCP": f"Bearer {MCP_TOKEN}"}) as server:
        yield server


@pytest.fixture(scope="session")
def mcp_server() -> Iterator[McpTestServer]:
    server = McpTestServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def agents_http(agents_server: JunctionProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=agents_server.url, timeout=30) as client:
        yield client


@pytest.fixture
def tenant(agents_http: httpx.Client) -> Tenant:
    return new_tenant(Api(agents_http, MASTER), "Agents")


def register_tool(tenant: Tenant, server: ToolServer, name: str, **fields: Any) -> dict[str, Any]:
    body = {
        "name": name,
        "description": f"The {name} tool",
        "url": f"{server.url}/tools/{name}",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        "headers": {"authorization": TOOL_SECRET, "x-env-secret": {"env": "JUNCTION_SECRET_TOOLS"}},
        **fields,
    }
    return tenant.admin.ok("POST", "/api/v1/tools", body, status=201)


def agent_bridge(tenant: Tenant, model: str, tool_ids: list[str], slug: str = "agent", **fields: Any) -> dict[str, Any]:
    body = {"slug": slug, "name": "Agent", "model": model, "prompt": "You help.", "server_tools": tool_ids, **fields}
    return tenant.admin.ok("POST", "/api/v1/bridges", body, status=201)


class Upstream:
    """One fake provider behind a provider-neutral ``queue`` and ``bodies``."""

    def __init__(self, name: str, fake: Any, model: str) -> None:
        self.name, self.fake, self.model = name, fake, model

    def queue(self, text: str = "", calls: list[tuple[str, dict[str, Any]]] = (), prompt_tokens: int = 11) -> None:
        if isinstance(self.fake, FakeOpenAI):
            self.fake.script(ScriptedReply(
                text=text or None, prompt_tokens=prompt_tokens,
                tool_calls=[{"id": f"call_{len(self.fake.replies)}_{i}", "name": name, "arguments": _json(args)}
                            for i, (name, args) in enumerate(calls)]))
        else:
            self.fake.queue_reply(Reply(text=text, prompt_tokens=prompt_tokens,
                                        tool_calls=[ToolCallReply(name, args) for name, args in calls]))

    def seen(self) -> SeenRequest:
        """What the model was sent last, provider-neutral."""
        if not isinstance(self.fake, FakeOpenAI):
            return self.fake.last_seen()
        body = self.fake.last.json()
        return SeenRequest(model=body["model"], stream=bool(body.get("stream")),
                           tool_names=[tool["function"]["name"] for tool in body.get("tools", [])],
                           tool_results=[m["content"] for m in body["messages"] if m["role"] == "tool"])

    def schema_seen(self, tool: str) -> dict[str, Any]:
        """The JSON schema of ``tool`` as the model was sent it."""
        body = self.fake.last.json()
        if isinstance(self.fake, FakeOpenAI):
            found = [t["function"]["parameters"] for t in body["tools"] if t["function"]["name"] == tool]
        elif isinstance(self.fake, FakeAnthropic):
            found = [t["input_schema"] for t in body["tools"] if t["name"] == tool]
        else:
            found = [d.get("parametersJsonSchema") or d.get("parameters") for t in body["tools"]
                     for d in t.get("functionDeclarations", []) if d["name"] == tool]
        return found[0]

    @property
    def chat_requests(self) -> list[Any]:
        return [r for r in self.fake.requests if r.method == "POST"]


def _json(value: Any) -> str:
    import json

    return json.dumps(value)


@pytest.fixture(params=["openai", "anthropic", "gemini"])
def upstream(request: pytest.FixtureRequest, fake_openai: FakeOpenAI, fake_anthropic: FakeAnthropic,
             fake_gemini: FakeGemini) -> Upstream:
    return {
        "openai": Upstream("openai", fake_openai, "openai/gpt-4o-mini"),
        "anthropic": Upstream("anthropic", fake_anthropic, "anthropic/claude-sonnet-4-5"),
        "gemini": Upstream("gemini", fake_gemini, "gemini/gemini-2.5-flash"),
    }[request.param]
