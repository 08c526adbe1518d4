"""The cache key: a SHA-256 of the canonical form of a call's request, after bridge expansion.

In the key: the org, the bridge and its published version, and every request field that can
change the answer (model, messages, tools, tool_choice, response_format, sampling parameters,
``n``, ``seed``, ``stop``, ``max_tokens``, ``reasoning_effort``, ``logprobs``, provider options and
any field Junction passes through unmodelled). Left out, because they never change the answer:
``stream`` and ``stream_options`` (a hit replays in either form), ``user`` and ``metadata``
(attribution only). Two requests share an entry only when all of the rest is identical.
"""

from __future__ import annotations

import hashlib

import msgspec

from junction.plugins.call import Call
from junction.schemas.chat import ChatRequest

#: Bumped when the canonical form or the stored entry changes, so old entries are never misread.
KEY_VERSION = "v1"
_encoder = msgspec.json.Encoder()


def cache_key(call: Call, request: ChatRequest) -> str:
    canonical = msgspec.structs.replace(request, stream=None, stream_options=None, user=None, metadata=None)
    material = _encoder.encode((KEY_VERSION, call.org_id or "", call.bridge_id or "", call.bridge_version,
                                canonical))
    return hashlib.sha256(material).hexdigest()
