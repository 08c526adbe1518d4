"""Shared machinery for talking to upstream providers: pooled HTTP client, SSE, error mapping."""
