"""Typed access to the hooks: the rest of the code calls these methods, never ``pm.hook``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pluggy

from junction.plugins.node import NodeService
from junction.plugins.protocols import MiddlewareSpec, ProviderSpec, RouteContext
from junction.plugins.vectors import VectorIndexSpec


class PluginHooks:
    """The enabled plugins' hook implementations, called with keyword arguments only (so an
    implementation may take fewer of them)."""

    def __init__(self, manager: pluggy.PluginManager) -> None:
        self._hook = manager.hook

    def register_providers(self, register: Callable[[ProviderSpec], None]) -> None:
        self._hook.register_providers(register=register)

    def register_middleware(self, register: Callable[[MiddlewareSpec], None]) -> None:
        self._hook.register_middleware(register=register)

    def register_routes(self, register: Callable[[Any], None], context: RouteContext) -> None:
        self._hook.register_routes(register=register, context=context)

    def register_asgi_middleware(self, register: Callable[[Any], None], context: RouteContext) -> None:
        self._hook.register_asgi_middleware(register=register, context=context)

    def register_vector_indexes(self, register: Callable[[VectorIndexSpec], None]) -> None:
        self._hook.register_vector_indexes(register=register)

    def register_node_services(self, register: Callable[[NodeService], None],
                               components: Mapping[str, object], workers: int = 1) -> None:
        self._hook.register_node_services(register=register, components=components, workers=workers)
