"""The spec checker that the suite's OpenAPI plugin runs on every answer really refuses bad ones."""

from __future__ import annotations

from tests.openapi.validation import SpecChecker

checker = SpecChecker()

CHUNK = {
    "id": "c1",
    "object": "chat.completion.chunk",
    "created": 1,
    "model": "m",
    "choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": None}],
}


def test_a_valid_chunk_passes_and_a_broken_one_is_named() -> None:
    assert checker.check_event("POST", "/v1/chat/completions", _json(CHUNK)) == []
    broken = {key: value for key, value in CHUNK.items() if key != "created"}
    problems = checker.check_event("POST", "/v1/chat/completions", _json(broken))
    assert problems and "created" in problems[0]


def test_error_bodies_need_every_member() -> None:
    good = {"error": {"message": "m", "type": "invalid_request_error", "param": None, "code": None}}
    assert checker.check_body("POST", "/v1/responses", 400, _json(good).encode()) == []
    assert checker.check_body("POST", "/v1/responses", 400, b'{"error": {"message": "m"}}')


def test_responses_events_are_checked_by_type() -> None:
    delta = {
        "type": "response.output_text.delta",
        "item_id": "msg_1",
        "output_index": 0,
        "content_index": 0,
        "delta": "x",
        "sequence_number": 3,
        "logprobs": [],
    }
    assert checker.check_event("POST", "/v1/responses", _json(delta)) == []
    del delta["sequence_number"]
    assert checker.check_event("POST", "/v1/responses", _json(delta))


def _json(value: object) -> str:
    import json

    return json.dumps(value)
