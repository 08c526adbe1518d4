"""The nesting measure the body guard relies on, against a reference parser on tricky documents."""

from __future__ import annotations

import json
import random

import pytest

from junction.formats.json_depth import nesting_exceeds


def depth(value: object) -> int:
    if isinstance(value, dict):
        return 1 + max((depth(item) for item in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth(item) for item in value), default=0)
    return 0


TRICKY_STRINGS = ["", "[", "]]]]", "{[", '"', '\\"[', "\\", "\\\\", '\\\\"', "a\\nb[", "}{", "[[[[[[[[[["]


def random_document(rng: random.Random, level: int = 0) -> object:
    roll = rng.random()
    if level > 12 or roll < 0.3:
        return rng.choice([rng.choice(TRICKY_STRINGS) * rng.randint(1, 3), 1, None, True, 2.5])
    if roll < 0.65:
        return [random_document(rng, level + 1) for _ in range(rng.randint(0, 4))]
    return {rng.choice(TRICKY_STRINGS) + str(i): random_document(rng, level + 1) for i in range(rng.randint(0, 4))}


def test_matches_a_parser_on_random_documents_with_brackets_and_escapes_in_strings():
    rng = random.Random(16)
    for _ in range(800):
        document = random_document(rng)
        body = json.dumps(document, separators=(",", ":") if rng.random() < 0.5 else None).encode()
        actual = depth(document)
        for limit in (1, 2, 3, max(1, actual - 1), actual, actual + 1):
            assert nesting_exceeds(body, limit) == (actual > limit), (body, limit, actual)


@pytest.mark.parametrize(("body", "deep"), [
    (b"[" * 65 + b"]" * 65, True),
    (b"[" * 64 + b"]" * 64, False),
    (b'{"a":' * 65 + b"1" + b"}" * 65, True),
    (b"[" * 63 + b'"' + b"[" * 100 + b'"' + b"]" * 63, False),
    (b"[" * 40 + b'"\\\\"' + b"[" * 40 + b"]" * 80, True),
    (b"[" + b"[]," * 100_000 + b"[]]", False),
    (b"[[]" * 70 + b"]" * 70, True),
])
def test_edge_cases(body, deep):
    assert nesting_exceeds(body, 64) is deep

