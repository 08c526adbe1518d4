"""Resolves a request's ``model`` into its candidate deployments: ``provider/model``, or an alias
from ``[models]`` with weighted deployments and fallbacks. The order they are tried in is the
routing policy's (:class:`~junction.plugins.stages.RoutingPolicy`)."""

from __future__ import annotations

import re
from collections.abc import Mapping

from junction.errors import ConfigError, InvalidRequest, NotFound
from junction.plugins.protocols import Deployment, ProviderAdapter, UpstreamTarget
from junction.settings import DeploymentSettings, ModelAliasSettings

_RESOLVED_CACHE_LIMIT = 4096
#: ...and at most this many characters of names: model names come from clients, so the cache is
#: bounded by size, not only by count (``[limits] max_model_chars`` bounds each name first).
_RESOLVED_CACHE_CHARS = 1 << 20
#: What an upstream model id may look like. Providers put it into URL paths (Gemini's
#: ``/models/{model}:generateContent``), so dot segments, queries, fragments, escapes and
#: whitespace are refused here, once for every provider.
_UPSTREAM_MODEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@+\-]*(/[A-Za-z0-9][A-Za-z0-9._:@+\-]*)*")


class Router:
    def __init__(self, providers: dict[str, ProviderAdapter], installed: set[str],
                 aliases: dict[str, ModelAliasSettings], enable_hints: Mapping[str, str] | None = None) -> None:
        self._providers = providers
        self._installed = installed
        #: How to turn on each installed provider that is off, for the provider_disabled error.
        self._enable_hints = enable_hints or {}
        self._direct: dict[str, tuple[Deployment, ...]] = {}
        self._direct_chars = 0
        self._aliases = {name: self._build_alias(name, alias, aliases) for name, alias in aliases.items()}

    @property
    def alias_names(self) -> list[str]:
        return sorted(self._aliases)

    def resolve(self, model: str) -> tuple[Deployment, ...]:
        """The candidate deployments of ``model``: an alias's in the order configured (with their
        weights), its fallbacks last (``fallback`` set). Raises a 4xx naming the problem for an
        unknown model or a provider that is installed but not enabled."""
        alias = self._aliases.get(model)
        if alias is not None:
            return alias
        cached = self._direct.get(model)
        if cached is None:
            cached = (self._direct_deployment(model),)
            if len(self._direct) >= _RESOLVED_CACHE_LIMIT or self._direct_chars > _RESOLVED_CACHE_CHARS:
                self._direct.clear()  # model names come from clients: keep the cache bounded
                self._direct_chars = 0
            self._direct[model] = cached
            self._direct_chars += len(model)
        return cached

    def _direct_deployment(self, model: str, *, api_key: str | None = None, base_url: str | None = None,
                           weight: float = 1.0, fallback: bool = False, context: bool = False) -> Deployment:
        provider_name, slash, upstream_model = model.partition("/")
        if not slash or not upstream_model:
            raise NotFound(
                f"model {model!r} is not an alias; address a provider's model as 'provider/model' "
                f"(e.g. 'openai/gpt-4o-mini')", param="model", code="model_not_found")
        if not _UPSTREAM_MODEL.fullmatch(upstream_model) or "/../" in f"/{upstream_model}/":
            raise InvalidRequest(f"model {model!r}: not a valid model id (letters, digits and . _ : @ + - /)",
                                 param="model", code="invalid_model")
        provider = self._providers.get(provider_name)
        if provider is None:
            if provider_name in self._installed:
                hint = self._enable_hints.get(provider_name)
                raise InvalidRequest(
                    f"provider {provider_name!r} is not enabled on this gateway (model {model!r})"
                    + (f"; to enable it, {hint}" if hint else ""), param="model", code="provider_disabled")
            raise NotFound(f"model {model!r}: no provider named {provider_name!r}", param="model",
                           code="model_not_found")
        target = UpstreamTarget(model=upstream_model, api_key=api_key, base_url=base_url)
        return Deployment(provider_name, provider, target, weight=weight, fallback=fallback, context_fallback=context)

    def _configured(self, deployment: DeploymentSettings, *, fallback: bool = False,
                    context: bool = False) -> Deployment:
        return self._direct_deployment(deployment.model, api_key=deployment.api_key, base_url=deployment.base_url,
                                       weight=deployment.weight, fallback=fallback, context=context)

    def _build_alias(self, name: str, alias: ModelAliasSettings,
                     aliases: dict[str, ModelAliasSettings]) -> tuple[Deployment, ...]:
        try:
            deployments = [self._configured(d) for d in alias.deployments]
            for fallbacks, context in ((alias.fallbacks, False), (alias.context_fallbacks, True)):
                for fallback in fallbacks:
                    if fallback in aliases and fallback != name:
                        deployments.extend(self._configured(d, fallback=True, context=context)
                                           for d in aliases[fallback].deployments)
                    else:
                        deployments.append(self._direct_deployment(fallback, fallback=True, context=context))
        except (NotFound, InvalidRequest) as error:
            raise ConfigError(f"models.{name}: {error.message}") from None
        return tuple(deployments)
