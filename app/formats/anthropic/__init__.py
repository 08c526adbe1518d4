"""The Anthropic Messages wire format, both directions.

- :mod:`.wire` — the wire Structs and the mappings both directions share.
- :mod:`.upstream_request`, :mod:`.blocks` — unified request → Anthropic request (provider).
- :mod:`.upstream_response` — Anthropic response, stream and errors → unified (provider).
- :mod:`.client_request` — Anthropic request → unified request (``/v1/messages`` ingress).
- :mod:`.client_response` — unified response and stream → Anthropic JSON and SSE (ingress).
- :mod:`.rate_limit_headers` — the rate-limit headers under Anthropic's names too (ingress).
"""
