"""The fake Anthropic API refuses what the real one refuses; the provider tests rely on it."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fakes.anthropic_validation import request_problem


def body(messages: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    return {"model": "claude-sonnet-4-5", "max_tokens": 2048, "messages": messages, **fields}


TOOL_USE = {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}
TOOL_RESULT = {"type": "tool_result", "tool_use_id": "toolu_1", "content": "ok"}
TOOLS = [{"name": "f", "input_schema": {"type": "object"}}]


def test_a_valid_tool_conversation_passes():
    assert (
        request_problem(
            body(
                [
                    {"role": "user", "content": "hi"},
                    {"role": "assistant", "content": [{"type": "text", "text": "calling"}, TOOL_USE]},
                    {"role": "user", "content": [TOOL_RESULT, {"type": "text", "text": "and?"}]},
                ],
                tools=TOOLS,
            )
        )
        is None
    )


@pytest.mark.parametrize(
    ("request_body", "fragment"),
    [
        ({"model": "m", "messages": [{"role": "user", "content": "hi"}]}, "max_tokens: Field required"),
        (body([{"role": "assistant", "content": "hi"}]), "first message"),
        (body([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]), "roles must alternate"),
        (body([{"role": "system", "content": "a"}]), "messages.0.role"),
        (body([{"role": "user", "content": "hi"}], frequency_penalty=1), "Extra inputs"),
        (body([{"role": "user", "content": [{"type": "text", "text": ""}]}]), "non-empty"),
        (
            body(
                [
                    {"role": "user", "content": "hi"},
                    {"role": "assistant", "content": [TOOL_USE]},
                    {"role": "user", "content": [{"type": "text", "text": "x"}, TOOL_RESULT]},
                ],
                tools=TOOLS,
            ),
            "must come first",
        ),
        (
            body(
                [
                    {"role": "user", "content": "hi"},
                    {"role": "assistant", "content": [TOOL_USE]},
                    {"role": "user", "content": "no result"},
                ],
                tools=TOOLS,
            ),
            "without `tool_result`",
        ),
        (body([{"role": "user", "content": [TOOL_RESULT]}]), "unexpected `tool_use_id`"),
        (
            body(
                [
                    {"role": "user", "content": "hi"},
                    {"role": "assistant", "content": [TOOL_USE]},
                    {"role": "user", "content": [TOOL_RESULT]},
                ],
                tools=TOOLS,
                thinking={"type": "enabled", "budget_tokens": 1024},
            ),
            "must start with a thinking block",
        ),
        (
            body([{"role": "user", "content": "hi"}], thinking={"type": "enabled", "budget_tokens": 4096}),
            "greater than `thinking.budget_tokens`",
        ),
        (
            body(
                [{"role": "user", "content": "hi"}],
                tools=TOOLS,
                tool_choice={"type": "any"},
                thinking={"type": "enabled", "budget_tokens": 1024},
            ),
            "forces tool use",
        ),
        (
            body(
                [
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "image",
                                "source": {"type": "base64", "media_type": "image/bmp", "data": "AA=="},
                            }
                        ],
                    }
                ]
            ),
            "media_type",
        ),
    ],
)
def test_what_the_real_api_refuses_the_fake_refuses(request_body, fragment):
    problem = request_problem(request_body)
    assert problem is not None and fragment in problem
