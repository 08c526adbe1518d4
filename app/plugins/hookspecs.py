"""Hook specifications of the ``junction`` pluggy project.

Hooks are small, synchronous and run once, at start-up, while the app is being assembled. They
*register* things; per-request behaviour lives in the async objects they register (see
:mod:`app.plugins.protocols`). An implementation may accept fewer arguments than its spec, so specs
can grow without breaking plugins.
"""

from __future__ import annotations

from collections.abc import Callable

import pluggy

from app.plugins.protocols import MiddlewareSpec, ProviderSpec

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
        """Register request-pipeline behaviours: authenticators, rate limiters, caches, observers.

        Called once at start-up for every enabled plugin of the ``junction.middleware`` group.

        :param register: call it once per behaviour with a :class:`MiddlewareSpec` whose ``name``
            equals the plugin's entry-point name (its config table is ``[middleware.<name>]``). The
            object its ``create`` returns is placed in the pipeline by the Protocols it satisfies
            (:class:`Authenticator`, :class:`RateLimiter`, :class:`ResponseCache`,
            :class:`UsageObserver`).
        :return: nothing; results are ignored.
        """
