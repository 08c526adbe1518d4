"""Caches keyed by what clients send are bounded by size, not only by entry count (#16)."""

from __future__ import annotations


def test_the_routers_cache_of_client_chosen_names_is_bounded_by_size():
    from junction.routing import router as router_module
    from junction.routing.router import Router
    from tests.unit.sample_plugins import EchoAdapter, EchoConfig

    router = Router({"p": EchoAdapter(EchoConfig(), None)}, {"p"}, {})
    for index in range(10_000):
        router.resolve(f"p/{index:0>250}")
        assert router._direct_chars <= router_module._RESOLVED_CACHE_CHARS + 260
    assert len(router._direct) * 250 <= router_module._RESOLVED_CACHE_CHARS + 260


async def test_an_org_cache_of_caller_chosen_names_is_bounded_by_size():
    from junction.domain.invalidation import OrgCache

    cache: OrgCache[str] = OrgCache("bridge", None, ttl=300, max_chars=100_000)

    async def load() -> str:
        return "missing"

    for index in range(5_000):
        await cache.get("org_1", f"{index:0>250}", load)
        assert cache._chars <= 100_000 + 300
