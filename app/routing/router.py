"""Resolves a request's ``model`` into deployments: ``provider/model``, or an alias from
``[models]`` with weighted deployments and fallbacks."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from app.errors import ConfigError, InvalidRequest, NotFound
from app.plugins.protocols import ProviderAdapter, UpstreamTarget
from app.settings import ModelAliasSettings

_RESOLVED_CACHE_LIMIT = 4096
#: What an upstream model id may look like. Providers put it into URL paths (Gemini's
#: ``/models/{model}:generateContent``), so dot segments, queries, fragments, escapes and
#: whitespace are refused here, once for every provider.
_UPSTREAM_MODEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@+\-]*(/[A-Za-z0-9][A-Za-z0-9._:@+\-]*)*")


@dataclass(frozen=True, slots=True)
class Deployment:
    """One place a request can go."""

    provider_name: str
    provider: ProviderAdapter
    target: UpstreamTarget

    @property
    def label(self) -> str:
        return f"{self.provider_name}/{self.target.model}"


@dataclass(frozen=True, slots=True)
class _Alias:
    deployments: tuple[Deployment, ...]
    weights: tuple[float, ...]
    fallbacks: tuple[Deployment, ...]


class Router:
    def __init__(self, providers: dict[str, ProviderAdapter], installed: set[str],
                 aliases: dict[str, ModelAliasSettings]) -> None:
        self._providers = providers
        self._installed = installed
        self._direct: dict[str, tuple[Deployment, ...]] = {}
        self._aliases = {name: self._build_alias(name, alias, aliases) for name, alias in aliases.items()}

    @property
    def alias_names(self) -> list[str]:
        return sorted(self._aliases)

    def resolve(self, model: str) -> tuple[Deployment, ...]:
        """The deployments to try for ``model``, first choice first. Raises a 4xx naming the
        problem for an unknown model or a provider that is installed but not enabled."""
        alias = self._aliases.get(model)
        if alias is not None:
            return self._alias_order(alias)
        cached = self._direct.get(model)
        if cached is None:
            cached = (self._direct_deployment(model),)
            if len(self._direct) >= _RESOLVED_CACHE_LIMIT:
                self._direct.clear()  # model names come from clients: keep the cache bounded
            self._direct[model] = cached
        return cached

    def _direct_deployment(self, model: str, *, api_key: str | None = None,
                           base_url: str | None = None) -> Deployment:
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
                raise InvalidRequest(
                    f"provider {provider_name!r} is not enabled on this gateway (model {model!r})",
                    param="model", code="provider_disabled")
            raise NotFound(f"model {model!r}: no provider named {provider_name!r}", param="model",
                           code="model_not_found")
        target = UpstreamTarget(model=upstream_model, api_key=api_key, base_url=base_url)
        return Deployment(provider_name, provider, target)

    def _build_alias(self, name: str, alias: ModelAliasSettings,
                     aliases: dict[str, ModelAliasSettings]) -> _Alias:
        try:
            deployments = tuple(self._direct_deployment(d.model, api_key=d.api_key, base_url=d.base_url)
                                for d in alias.deployments)
            fallbacks: list[Deployment] = []
            for fallback in alias.fallbacks:
                if fallback in aliases and fallback != name:
                    fallbacks.extend(self._direct_deployment(d.model, api_key=d.api_key, base_url=d.base_url)
                                     for d in aliases[fallback].deployments)
                else:
                    fallbacks.append(self._direct_deployment(fallback))
        except (NotFound, InvalidRequest) as error:
            raise ConfigError(f"models.{name}: {error.message}") from None
        return _Alias(deployments, tuple(d.weight for d in alias.deployments), tuple(fallbacks))

    @staticmethod
    def _alias_order(alias: _Alias) -> tuple[Deployment, ...]:
        if len(alias.deployments) == 1:
            return alias.deployments + alias.fallbacks
        first = random.choices(range(len(alias.deployments)), weights=alias.weights)[0]
        rest = tuple(d for i, d in enumerate(alias.deployments) if i != first)
        return (alias.deployments[first], *rest, *alias.fallbacks)
