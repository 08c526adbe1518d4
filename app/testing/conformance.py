"""The provider conformance kit: one test suite every provider plugin runs, built-in or third-party.

A provider package brings a fake upstream that speaks its provider's protocol and satisfies
:class:`ConformanceUpstream`; the kit starts it, starts a real ``junction serve`` with the provider
pointed at it, and drives the gateway with the official ``openai`` SDK::

    from junction.testing.conformance import ProviderConformance
    from my_provider_tests.fake import FakeAcme

    class TestAcmeConformance(ProviderConformance):
        provider = "acme"                 # the entry-point name
        model = "acme-large-1"            # an upstream model id
        upstream_type = FakeAcme          # FakeAcme(api_key=...) → a ConformanceUpstream

Flags (``supports_images``, ``reports_cached_tokens`` ...) turn off checks a provider cannot pass
because its API lacks the feature; those tests are skipped with a reason, never silently passed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import pytest

from junction.testing.conformance_embeddings import EmbeddingsConformance
from junction.testing.scripted_upstream import (
    PIXEL_DATA_URL,
    ConformanceUpstream,
    Reply,
    SeenRequest,
    ToolCallReply,
    hold_until_disconnected,
)
from junction.testing.server import JunctionProcess

__all__ = ["ConformanceUpstream", "ProviderConformance", "Reply", "SeenRequest", "ToolCallReply",
           "UPSTREAM_KEY", "hold_until_disconnected"]

if TYPE_CHECKING:
    import openai

UPSTREAM_KEY = "sk-conformance-upstream"

# --- the suite --------------------------------------------------------------------------------


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"},
                                                         "unit": {"type": "string", "enum": ["c", "f"]}},
                       "required": ["city"]},
    },
}
TIME_TOOL = {
    "type": "function",
    "function": {"name": "get_time", "description": "Local time in a timezone.",
                 "parameters": {"type": "object", "properties": {"tz": {"type": "string"}},
                                "required": ["tz"]}},
}
HELLO = [{"role": "user", "content": "hi"}]
PERSON_SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
    "additionalProperties": False,
}


def collect_tool_calls(stream: Any) -> tuple[dict[int, dict[str, str]], int, list[str]]:
    """What an OpenAI client assembles from a chat stream: the calls by ``index`` (``id``, ``name``
    and ``arguments`` joined from their pieces), how many argument pieces came, and the finish
    reasons in order."""
    calls: dict[int, dict[str, str]] = {}
    argument_pieces = 0
    finishes: list[str] = []
    for chunk in stream:
        for choice in chunk.choices:
            for delta in choice.delta.tool_calls or ():
                call = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
                call["id"] += delta.id or ""
                if delta.function:
                    call["name"] += delta.function.name or ""
                    if delta.function.arguments:
                        call["arguments"] += delta.function.arguments
                        argument_pieces += 1
            if choice.finish_reason:
                finishes.append(choice.finish_reason)
    return calls, argument_pieces, finishes


@pytest.mark.conformance
class ProviderConformance(EmbeddingsConformance):
    """Subclass as ``Test<Something>`` and set the attributes below; pytest collects the rest.
    Embeddings: set ``supports_embeddings = True`` and ``embedding_model`` (see
    :class:`~junction.testing.conformance_embeddings.EmbeddingsConformance`)."""

    #: The provider's entry-point name (its config table and model prefix).
    provider: ClassVar[str]
    #: An upstream model id the fake accepts.
    model: ClassVar[str]
    #: Called as ``upstream_type(api_key=UPSTREAM_KEY)``; or override the ``upstream`` fixture.
    upstream_type: ClassVar[type[Any] | None] = None
    #: More keys for the generated ``[providers.<name>]`` table (``api_key`` and ``base_url`` are set).
    extra_provider_keys: ClassVar[dict[str, Any]] = {}
    #: TOML appended after that table (other tables: ``[models]``, ``[middleware.x]``...).
    extra_config: ClassVar[str] = ""

    supports_images: ClassVar[bool] = True
    supports_json_schema: ClassVar[bool] = True
    supports_tools: ClassVar[bool] = True
    reports_cached_tokens: ClassVar[bool] = True
    reports_reasoning_tokens: ClassVar[bool] = True

    # --- fixtures (class-scoped: one fake and one gateway per provider) -------------------------

    @pytest.fixture(scope="class")
    @classmethod
    def upstream(cls) -> Iterator[ConformanceUpstream]:
        if cls.upstream_type is None:
            raise TypeError(f"{cls.__name__}: set upstream_type or override the upstream fixture")
        fake = cls.upstream_type(api_key=UPSTREAM_KEY)
        fake.start()
        try:
            yield fake
        finally:
            fake.stop()

    @pytest.fixture(scope="class")
    @classmethod
    def junction(cls, upstream: ConformanceUpstream,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[JunctionProcess]:
        directory: Path = tmp_path_factory.mktemp(f"conformance-{cls.provider}")
        keys = {"api_key": UPSTREAM_KEY, "base_url": upstream.base_url, "read_timeout": 20.0,
                **cls.extra_provider_keys}
        table = "\n".join(f"{key} = {json.dumps(value)}" for key, value in keys.items())
        config = f"[providers.{cls.provider}]\n{table}\n{cls.extra_config}"
        with JunctionProcess(directory, config) as server:
            yield server

    @pytest.fixture
    def fake(self, upstream: ConformanceUpstream) -> ConformanceUpstream:
        upstream.reset()
        return upstream

    @pytest.fixture
    def client(self, junction: JunctionProcess) -> Iterator[openai.OpenAI]:
        import openai

        with openai.OpenAI(base_url=f"{junction.url}/v1", api_key=junction.key, max_retries=0,
                           timeout=30) as sdk:
            yield sdk

    @property
    def routed_model(self) -> str:
        return f"{self.provider}/{self.model}"

    def _skip_unless(self, flag: bool, feature: str) -> None:
        if not flag:
            pytest.skip(f"{self.provider} does not offer {feature}")

    # --- text ---------------------------------------------------------------------------------

    def test_text(self, client: openai.OpenAI, fake: ConformanceUpstream) -> None:
        fake.queue_reply(Reply(text="Paris is the capital of France."))
        completion = client.chat.completions.create(
            model=self.routed_model,
            messages=[{"role": "system", "content": "Answer briefly."},
                      {"role": "user", "content": "Capital of France?"}])
        choice = completion.choices[0]
        assert choice.message.role == "assistant"
        assert choice.message.content == "Paris is the capital of France."
        assert choice.finish_reason == "stop"
        seen = fake.last_seen()
        assert seen.model == self.model and not seen.stream
        assert "Answer briefly." in seen.texts and "Capital of France?" in seen.texts

    def test_length_finish(self, client: openai.OpenAI, fake: ConformanceUpstream) -> None:
        fake.queue_reply(Reply(text="Once upon a", finish="length"))
        completion = client.chat.completions.create(
            model=self.routed_model, max_tokens=3, messages=[{"role": "user", "content": "Tell a story"}])
        assert completion.choices[0].finish_reason == "length"
        assert completion.choices[0].message.content == "Once upon a"

    def test_stream(self, client: openai.OpenAI, fake: ConformanceUpstream) -> None:
        text = "Streaming arrives in many small pieces."
        fake.queue_reply(Reply(text=text, chunk_size=4))
        stream = client.chat.completions.create(
            model=self.routed_model, stream=True, messages=[{"role": "user", "content": "Stream please"}])
        pieces, finishes = [], []
        for chunk in stream:
            for choice in chunk.choices:
                if choice.delta.content:
                    pieces.append(choice.delta.content)
                if choice.finish_reason:
                    finishes.append(choice.finish_reason)
        assert "".join(pieces) == text
        assert len(pieces) > 1, "the upstream's pieces were merged instead of relayed"
        assert finishes == ["stop"]
        assert fake.last_seen().stream

    # --- tools --------------------------------------------------------------------------------

    def test_tool_call_round_trip(self, client: openai.OpenAI, fake: ConformanceUpstream) -> None:
        self._skip_unless(self.supports_tools, "tool calls")
        fake.queue_reply(Reply(tool_calls=[ToolCallReply("get_weather", {"city": "Oslo", "unit": "c"})]))
        messages: list[dict[str, Any]] = [{"role": "user", "content": "Weather in Oslo?"}]
        first = client.chat.completions.create(model=self.routed_model, messages=messages,
                                               tools=[WEATHER_TOOL, TIME_TOOL])
        choice = first.choices[0]
        assert choice.finish_reason == "tool_calls"
        [call] = choice.message.tool_calls or []
        assert call.id and call.function.name == "get_weather"
        assert json.loads(call.function.arguments) == {"city": "Oslo", "unit": "c"}
        assert fake.last_seen().tool_names == ["get_weather", "get_time"]

        # Second turn: the client sends the call back with its result, ids as the gateway gave them.
        fake.queue_reply(Reply(text="It is 4°C in Oslo."))
        messages += [choice.message.model_dump(exclude_none=True),
                     {"role": "tool", "tool_call_id": call.id, "content": '{"temp_c": 4}'}]
        second = client.chat.completions.create(model=self.routed_model, messages=messages,
                                                tools=[WEATHER_TOOL, TIME_TOOL])
        assert second.choices[0].message.content == "It is 4°C in Oslo."
        seen = fake.last_seen()
        assert seen.tool_calls == [("get_weather", {"city": "Oslo", "unit": "c"})]
        assert len(seen.tool_results) == 1 and json.loads(seen.tool_results[0]) == {"temp_c": 4}

    def test_streamed_tool_calls(self, client: openai.OpenAI, fake: ConformanceUpstream) -> None:
        self._skip_unless(self.supports_tools, "tool calls")
        long_city = "Llanfairpwllgwyngyllgogerychwyrndrobwllllantysiliogogogoch"
        fake.queue_reply(Reply(tool_calls=[ToolCallReply("get_weather", {"city": long_city, "unit": "f"}),
                                           ToolCallReply("get_time", {"tz": "Europe/London"})]))
        stream = client.chat.completions.create(
            model=self.routed_model, stream=True, tools=[WEATHER_TOOL, TIME_TOOL],
            messages=[{"role": "user", "content": "Weather and time in Wales?"}])
        calls, argument_pieces, finishes = collect_tool_calls(stream)
        assert finishes == ["tool_calls"]
        assert [calls[i]["name"] for i in sorted(calls)] == ["get_weather", "get_time"]
        assert all(call["id"] for call in calls.values())
        assert len({call["id"] for call in calls.values()}) == 2, "tool-call ids must be distinct"
        assert json.loads(calls[0]["arguments"]) == {"city": long_city, "unit": "f"}
        assert json.loads(calls[1]["arguments"]) == {"tz": "Europe/London"}
        assert argument_pieces >= 2

    # --- images and structured output -----------------------------------------------------------

    def test_image_input(self, client: openai.OpenAI, fake: ConformanceUpstream) -> None:
        self._skip_unless(self.supports_images, "image input")
        fake.queue_reply(Reply(text="A single pixel."))
        completion = client.chat.completions.create(model=self.routed_model, messages=[{
            "role": "user", "content": [{"type": "text", "text": "What is this?"},
                                        {"type": "image_url", "image_url": {"url": PIXEL_DATA_URL}}]}])
        assert completion.choices[0].message.content == "A single pixel."
        seen = fake.last_seen()
        assert seen.images == [PIXEL_DATA_URL]
        assert "What is this?" in seen.texts

    def test_json_schema(self, client: openai.OpenAI, fake: ConformanceUpstream) -> None:
        self._skip_unless(self.supports_json_schema, "json_schema output")
        fake.queue_reply(Reply(text='{"name": "Ada", "age": 36}'))
        completion = client.chat.completions.create(
            model=self.routed_model, messages=[{"role": "user", "content": "Ada Lovelace, as JSON"}],
            response_format={"type": "json_schema",
                             "json_schema": {"name": "person", "schema": PERSON_SCHEMA, "strict": True}})
        assert json.loads(completion.choices[0].message.content or "") == {"name": "Ada", "age": 36}
        constrained = fake.last_seen().json_schema
        assert constrained is not None, "the schema did not reach the upstream"
        assert set(constrained.get("properties", {})) == {"name", "age"}

    # --- usage --------------------------------------------------------------------------------

    def _usage_reply(self) -> Reply:
        return Reply(text="Counted.", prompt_tokens=120, completion_tokens=30,
                     cached_tokens=100 if self.reports_cached_tokens else 0,
                     reasoning_tokens=12 if self.reports_reasoning_tokens else 0)

    def _check_usage(self, usage: Any) -> None:
        assert usage is not None
        assert usage.prompt_tokens == 120
        assert usage.completion_tokens == 30
        assert usage.total_tokens == 150
        if self.reports_cached_tokens:
            assert usage.prompt_tokens_details and usage.prompt_tokens_details.cached_tokens == 100
        if self.reports_reasoning_tokens:
            details = usage.completion_tokens_details
            assert details and details.reasoning_tokens == 12

    def test_usage(self, client: openai.OpenAI, fake: ConformanceUpstream) -> None:
        fake.queue_reply(self._usage_reply())
        completion = client.chat.completions.create(
            model=self.routed_model, messages=[{"role": "user", "content": "Count my tokens"}])
        self._check_usage(completion.usage)

    def test_usage_in_stream(self, client: openai.OpenAI, fake: ConformanceUpstream) -> None:
        fake.queue_reply(self._usage_reply())
        stream = client.chat.completions.create(
            model=self.routed_model, stream=True, stream_options={"include_usage": True},
            messages=[{"role": "user", "content": "Count my tokens"}])
        usages = [chunk.usage for chunk in stream if chunk.usage is not None]
        assert len(usages) == 1
        self._check_usage(usages[0])

    # --- errors -------------------------------------------------------------------------------

    def test_upstream_auth_failure_is_401(self, client: openai.OpenAI, fake: ConformanceUpstream) -> None:
        import openai

        fake.queue_error(401, "API key not valid.")
        with pytest.raises(openai.AuthenticationError) as raised:
            client.chat.completions.create(model=self.routed_model, messages=HELLO)
        assert raised.value.status_code == 401
        assert self.provider in raised.value.message

    def test_rate_limit_keeps_retry_after(self, client: openai.OpenAI, fake: ConformanceUpstream) -> None:
        import openai

        fake.queue_error(429, "Too many requests.", retry_after=7)
        with pytest.raises(openai.RateLimitError) as raised:
            client.chat.completions.create(model=self.routed_model, messages=HELLO)
        assert raised.value.response.headers.get("retry-after") == "7"

    def test_rate_limit_before_stream_starts(self, client: openai.OpenAI, fake: ConformanceUpstream) -> None:
        import openai

        fake.queue_error(429, "Too many requests.", retry_after=3)
        with pytest.raises(openai.RateLimitError) as raised:
            client.chat.completions.create(model=self.routed_model, stream=True,
                                           messages=[{"role": "user", "content": "hi"}])
        assert raised.value.response.headers.get("retry-after") == "3"

    def test_upstream_server_error_is_502(self, client: openai.OpenAI, fake: ConformanceUpstream) -> None:
        import openai

        fake.queue_error(500, "Internal error encountered.")
        with pytest.raises(openai.InternalServerError) as raised:
            client.chat.completions.create(model=self.routed_model, messages=HELLO)
        assert raised.value.status_code == 502
        assert "Internal error encountered." in raised.value.message

    # --- cancellation -------------------------------------------------------------------------

    def test_client_disconnect_closes_upstream_stream(self, client: openai.OpenAI,
                                                      fake: ConformanceUpstream) -> None:
        fake.queue_reply(Reply(text="This answer never finishes because the client leaves.", hold=True))
        stream = client.chat.completions.create(
            model=self.routed_model, stream=True, messages=[{"role": "user", "content": "Go on"}])
        # The first piece reaches the client while the upstream is still mid-answer: nothing is
        # buffered until the end.
        first_text = next(chunk.choices[0].delta.content for chunk in stream
                          if chunk.choices and chunk.choices[0].delta.content)
        assert first_text == "Thi"
        stream.close()
        deadline = time.monotonic() + 10
        while fake.disconnects == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert fake.disconnects == 1, "the gateway kept the upstream stream open after the client left"
