"""Hook specifications of the ``junction`` pluggy project.

Hooks are small, synchronous and run once, at start-up, while the app is being assembled. They
*register* things; per-request behaviour lives in the async objects they register (see
:mod:`junction.plugins.protocols` and :mod:`junction.plugins.stages`). An implementation may accept fewer
arguments than its spec, so specs can grow without breaking plugins. Only
:class:`junction.plugins.hooks.PluginHooks` calls them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pluggy

from junction.plugins.node import NodeService
from junction.plugins.protocols import MiddlewareSpec, ProviderSpec, RouteContext
from junction.plugins.vectors import VectorIndexSpec

PROJECT_NAME = "junction"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


class JunctionHookSpecs:
    """Every hook Junction calls. Documented and exercised by tests (tests/unit/test_hookspecs.py)."""

    @hookspec
    def register_providers(self, register: Callable[[ProviderSpec], None]) -> None:
        """Register provider adapters.

        Called once at start-up, after the config file is read and before the app serves, for every
        enabled plugin of the ``junction.providers`` entry-point group.

        :param register: call it once per provider with a :class:`ProviderSpec`. The spec's ``name``
            must equal the plugin's entry-point name; it is also the provider's config table
            (``[providers.<name>]``) and the prefix of its models (``<name>/<model>``).
        :return: nothing; results are ignored.
        """

    @hookspec
    def register_middleware(self, register: Callable[[MiddlewareSpec], None]) -> None:
        """Register request-pipeline behaviours: authenticators, stages, routing policies.

        Called once at start-up for every enabled plugin of the ``junction.middleware`` group.

        :param register: call it once with a :class:`MiddlewareSpec` whose ``name`` equals the
            plugin's entry-point name (its config table is ``[middleware.<name>]``). The object its
            ``create`` returns is placed by the Protocols it satisfies: an
            :class:`~junction.plugins.protocols.Authenticator`, a :class:`~junction.plugins.stages.Stage`
            (where ``spec.stage`` places it) and/or a :class:`~junction.plugins.stages.RoutingPolicy`.
        :return: nothing; results are ignored.
        """

    @hookspec
    def register_routes(self, register: Callable[[Any], None], context: RouteContext) -> None:
        """Add HTTP routes: Litestar route handlers (``@get``/``@post`` functions), controllers or
        routers, e.g. a plugin's own admin page or a ``/metrics`` endpoint.

        Called once at start-up, after every plugin's object is created and before the app is
        assembled, for every enabled plugin of either group.

        :param register: call it once per route handler, controller or router.
        :param context: what the routes may use: ``context.authenticate(headers)`` (the gateway's
            own authentication; then :func:`junction.plugins.stages.require_scope`), the created
            plugin objects by name (``context.components``), the shared services
            (``context.services``) and, for built-ins that drive the admin services as the admin
            API does (the ``admin-ui`` console), the composition root (``context.runtime``).
        :return: nothing; results are ignored. A path another route already serves is a start-up
            error.
        """

    @hookspec
    def register_asgi_middleware(self, register: Callable[[Any], None], context: RouteContext) -> None:
        """Wrap the whole ASGI app (every route, errors included), e.g. tracing or access logs.

        Called once at start-up, after ``register_routes``, for every enabled plugin. Middleware
        registered first is outermost.

        :param register: call it once per Litestar middleware: an ``ASGIMiddleware`` instance, a
            ``DefineMiddleware``, or a factory ``(app) -> ASGIApp``.
        :param context: as for ``register_routes``.
        :return: nothing; results are ignored.
        """

    @hookspec
    def register_vector_indexes(self, register: Callable[[VectorIndexSpec], None]) -> None:
        """Register vector indexes for RAG collections (see :mod:`junction.plugins.vectors`).

        Called once at start-up for the plugin of the ``junction.vector_indexes`` entry-point group
        that ``[knowledge] index`` selects (every one of them for ``auto``).

        :param register: call it once with a :class:`~junction.plugins.vectors.VectorIndexSpec` whose
            ``name`` equals the plugin's entry-point name; ``[knowledge.indexes.<name>]`` is its
            config table.
        :return: nothing; results are ignored.
        """

    @hookspec
    def register_node_services(self, register: Callable[[NodeService], None],
                               components: Mapping[str, object], workers: int) -> None:
        """Register processes to run beside the Granian workers, one of each per node (see
        :mod:`junction.plugins.node`), e.g. one that takes work off the workers' event loops.

        Called once, only by ``junction serve``, in its own process after the config and every
        plugin were validated and before Granian spawns the workers; never in a worker, nor in an
        app built in-process (tests, the other commands), so what uses a service must work without
        it.

        :param register: call it once per :class:`~junction.plugins.node.NodeService`.
        :param components: the objects the enabled plugins' ``create`` returned, by plugin name (as
            ``RouteContext.components``), built to validate the config: read their settings, do not
            start them.
        :param workers: how many Granian workers the node runs (a service may be worth running
            only when the node has cores they leave idle).
        :return: nothing; results are ignored.
        """
