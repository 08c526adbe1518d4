"""The JSON nesting check's cost beside the chat decode it protects (issue #16), in process.

    python bench/json_depth.py

Prints the minimum of 7 rounds, in microseconds per body.
"""

from __future__ import annotations

import json
import timeit

from junction.formats.json_depth import nesting_exceeds
from junction.formats.openai import decode_chat_request

small = json.dumps({"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]}).encode()
conv = json.dumps({"model": "openai/gpt-4o-mini", "messages": [{"role": "user" if i % 2 else "assistant", "content": "some text " * 20} for i in range(100)],
                   "tools": [{"type": "function", "function": {"name": f"f{i}", "parameters": {"type": "object", "properties": {"a": {"type": "string"}}}}} for i in range(10)]}).encode()
deep = b"[" * 8_000_000 + b"]" * 8_000_000
for name, body, n in (("83-byte chat", small, 5000), ("25 KB chat (100 messages, 10 tools)", conv, 500)):
    check = min(timeit.repeat(lambda: nesting_exceeds(body, 64), number=n, repeat=7)) / n * 1e6
    decode = min(timeit.repeat(lambda: decode_chat_request(body), number=n, repeat=7)) / n * 1e6
    print(f"{name}: depth check {check:.1f} us, decode_chat_request {decode:.1f} us")
print(f"16 MB of nested brackets: {min(timeit.repeat(lambda: nesting_exceeds(deep, 64), number=1, repeat=3))*1000:.0f} ms")
