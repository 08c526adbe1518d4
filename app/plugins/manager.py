"""Discovers plugins from entry points, applies the config, and builds what they register.

Nothing here runs at import time: :func:`load_plugins` is called by the
:class:`~junction.runtime.Runtime` (and by the ``junction plugins`` command) with the validated
settings, and returns a fresh manager each time.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import msgspec
import pluggy

from junction.errors import ConfigError
from junction.plugins.hooks import PluginHooks
from junction.plugins.hookspecs import PROJECT_NAME, JunctionHookSpecs
from junction.plugins.ordering import resolve_order
from junction.plugins.protocols import (
    Authenticator,
    MiddlewareConfig,
    MiddlewareSpec,
    PluginContext,
    ProviderAdapter,
    ProviderConfig,
    ProviderSpec,
    RouteContext,
    StagePlacement,
)
from junction.plugins.stages import RoutingPolicy, is_stage
from junction.settings import Settings, describe_validation_error

Kind = Literal["provider", "middleware"]

ENTRY_POINT_GROUPS: dict[Kind, str] = {
    "provider": "junction.providers",
    "middleware": "junction.middleware",
}
_SETTINGS_TABLE: dict[Kind, str] = {"provider": "providers", "middleware": "middleware"}


@dataclass(frozen=True, slots=True)
class PluginInfo:
    """One discovered plugin, as listed by ``junction plugins`` and ``GET /api/v1/plugins``."""

    name: str
    kind: Kind
    package: str
    version: str
    enabled: bool
    #: Why a plugin is off ("disabled in config", "OPENAI_API_KEY not set"), for the listing.
    reason: str = ""
    #: For an enabled stage: its phase and its 1-based place in the resolved order.
    phase: str | None = None
    position: int | None = None


@dataclass(slots=True)
class LoadedPlugins:
    """Everything the enabled plugins registered, instantiated and ready to start."""

    infos: list[PluginInfo]
    hooks: PluginHooks | None = None
    providers: dict[str, ProviderAdapter] = field(default_factory=dict)
    authenticators: list[Authenticator] = field(default_factory=list)
    #: The enabled stages, outermost first, as (plugin name, stage object).
    stages: list[tuple[str, object]] = field(default_factory=list)
    #: Their names in that order (also when the plugins are only listed, not instantiated).
    stage_order: list[str] = field(default_factory=list)
    #: The routing policy ``[routing] policy`` names (``None`` when only listed).
    policy: RoutingPolicy | None = None
    #: Every object that may have start()/close() lifecycle methods, in start order.
    components: list[object] = field(default_factory=list)
    #: The objects plugins created, by plugin name (for their routes).
    by_name: dict[str, object] = field(default_factory=dict)
    #: Config that is valid but probably not what was meant; the CLI prints them at start-up.
    warnings: list[str] = field(default_factory=list)

    def info(self, name: str, kind: Kind) -> PluginInfo | None:
        return next((i for i in self.infos if i.name == name and i.kind == kind), None)

    def enable_hints(self) -> dict[str, str]:
        """For each installed provider that is off: how an operator turns it on."""
        hints: dict[str, str] = {}
        for info in self.infos:
            if info.kind != "provider" or info.enabled:
                continue
            table = f"[providers.{info.name}]"
            if info.reason.endswith(" not set"):
                variable = info.reason.removesuffix(" not set")
                hints[info.name] = f"export {variable}, or add a {table} table with api_key"
            elif info.reason == "disabled in config":
                hints[info.name] = f"it is switched off in the config ({table} enabled = false)"
            else:
                hints[info.name] = f"add a {table} table"
        return hints


EntryPointSource = Callable[[str], Iterable[importlib.metadata.EntryPoint]]


def installed_entry_points(group: str) -> list[importlib.metadata.EntryPoint]:
    return sorted(importlib.metadata.entry_points(group=group), key=lambda ep: ep.name)


def _package_of(entry_point: importlib.metadata.EntryPoint) -> tuple[str, str]:
    dist = entry_point.dist
    if dist is None:  # not from an installed distribution: name it by its top-level module
        return (entry_point.value.split(":")[0].split(".")[0], "unknown")
    return (dist.metadata["Name"] or dist.name, dist.version)


def _reject_duplicates(kind: Kind, entry_points: Iterable[importlib.metadata.EntryPoint]) -> None:
    """pluggy would silently keep one of two same-named plugins; we refuse to guess."""
    seen: dict[str, str] = {}
    for ep in entry_points:
        package = _package_of(ep)[0]
        if ep.name in seen and seen[ep.name] != package:
            raise ConfigError(
                f"two {kind} plugins are named {ep.name!r}: from packages {seen[ep.name]!r} and "
                f"{package!r}; uninstall one of them"
            )
        seen[ep.name] = package


def _table(settings: Settings, kind: Kind, name: str) -> dict[str, Any] | None:
    tables: dict[str, dict[str, Any]] = getattr(settings, _SETTINGS_TABLE[kind])
    return tables.get(name)


def _validate_config(kind: Kind, name: str, config_type: type[Any], raw: dict[str, Any]) -> Any:
    prefix = f"{_SETTINGS_TABLE[kind]}.{name}"
    try:
        return msgspec.convert(raw, config_type)
    except msgspec.ValidationError as error:
        raise ConfigError(describe_validation_error(error, prefix=prefix)) from None


def _explicitly_disabled(table: dict[str, Any] | None) -> bool:
    return table is not None and table.get("enabled", True) is False


def load_plugins(settings: Settings, *, instantiate: bool = True,
                 entry_points: EntryPointSource = installed_entry_points,
                 context: PluginContext | None = None) -> LoadedPlugins:
    """Discover, configure and (unless ``instantiate`` is false) build every enabled plugin.

    Raises :class:`ConfigError` for a config table that names no installed plugin, a bad key or
    value, duplicate plugin names, a hookimpl that matches no hookspec, stages that cannot be
    ordered, a ``[routing] policy`` that no enabled plugin provides, and for serving with no
    authenticator or no auth-phase stage when ``auth.disabled`` is not set.
    """
    manager = pluggy.PluginManager(PROJECT_NAME)
    manager.add_hookspecs(JunctionHookSpecs)
    infos: list[PluginInfo] = []
    packages: dict[tuple[Kind, str], tuple[str, str]] = {}

    for kind, group in ENTRY_POINT_GROUPS.items():
        found = list(entry_points(group))
        _reject_duplicates(kind, found)
        installed = {ep.name for ep in found}
        for configured in getattr(settings, _SETTINGS_TABLE[kind]):
            if configured not in installed:
                raise ConfigError(
                    f"{_SETTINGS_TABLE[kind]}.{configured}: no installed {kind} plugin has this name "
                    f"(installed: {', '.join(sorted(installed)) or 'none'})"
                )
        for ep in found:
            if manager.has_plugin(ep.name) or manager.is_blocked(ep.name):
                continue  # the same distribution seen twice on sys.path
            packages[(kind, ep.name)] = _package_of(ep)
            if _explicitly_disabled(_table(settings, kind, ep.name)):
                manager.set_blocked(ep.name)
                infos.append(PluginInfo(ep.name, kind, *_package_of(ep), enabled=False, reason="disabled in config"))
                continue
            try:
                plugin = ep.load()
            except Exception as error:  # a broken third-party package must name itself
                raise ConfigError(f"{kind} plugin {ep.name!r} failed to import: {error!r}") from error
            manager.register(plugin, name=ep.name)
    try:
        manager.check_pending()
    except pluggy.PluginValidationError as error:
        name = manager.get_name(error.plugin) or repr(error.plugin)
        raise ConfigError(f"plugin {name!r}: {error}; no such hook exists (misspelt?)") from None

    hooks = PluginHooks(manager)
    provider_specs = _collect(hooks.register_providers, "provider", packages)
    middleware_specs = _collect(hooks.register_middleware, "middleware", packages)
    context = context or PluginContext(settings=settings)
    loaded = LoadedPlugins(infos=infos, hooks=hooks)

    for spec in provider_specs:
        if context.pricing is not None:
            context.pricing.add_provider_prices(spec.name, spec.prices)
        config = _provider_config(settings, spec)
        package, version = packages[("provider", spec.name)]
        if config is None:
            reason = f"{spec.api_key_env} not set" if spec.api_key_env else "no [providers] table"
            infos.append(PluginInfo(spec.name, "provider", package, version, enabled=False, reason=reason))
            continue
        infos.append(PluginInfo(spec.name, "provider", package, version, enabled=True))
        if instantiate:
            adapter = _create("provider", spec, config, context)
            loaded.providers[spec.name] = adapter
            loaded.components.append(adapter)
            loaded.by_name[spec.name] = adapter

    placements: dict[str, StagePlacement] = {}
    policies: dict[str, RoutingPolicy] = {}
    enabled_middleware: list[str] = []
    for spec in _in_config_order(middleware_specs, settings.middleware):
        table = _table(settings, "middleware", spec.name)
        config = _validate_config("middleware", spec.name, spec.config_type, table or {})
        enabled = config.enabled if table and "enabled" in table else spec.enabled_by_default
        package, version = packages[("middleware", spec.name)]
        infos.append(PluginInfo(spec.name, "middleware", package, version, enabled=enabled,
                                reason="" if enabled else "off by default"))
        if table and "enabled" not in table and not enabled:
            loaded.warnings.append(
                f"middleware.{spec.name}: the table has settings but the plugin is off by default, so "
                f"they are ignored; add enabled = true to turn it on")
        if not enabled:
            continue
        enabled_middleware.append(spec.name)
        if spec.stage is not None:
            placements[spec.name] = spec.stage
        if instantiate:
            behaviour = _create("middleware", spec, config, context)
            if _place_middleware(loaded, spec, behaviour, settings):
                policies[spec.name] = behaviour  # type: ignore[assignment]

    loaded.stage_order = resolve_order(placements, settings.pipeline.order)
    loaded.stages = [(name, loaded.by_name[name]) for name in loaded.stage_order] if instantiate else []
    for position, name in enumerate(loaded.stage_order, start=1):
        index = next(i for i, info in enumerate(infos) if info.kind == "middleware" and info.name == name)
        infos[index] = dataclasses.replace(infos[index], phase=placements[name].phase, position=position)
    if instantiate:
        loaded.policy = _selected_policy(settings, policies, enabled_middleware)
        _check_access_control(settings, loaded, placements)
    infos.sort(key=lambda info: (info.kind, info.name))
    return loaded


def _selected_policy(settings: Settings, policies: dict[str, RoutingPolicy], enabled: list[str]) -> RoutingPolicy:
    name = settings.routing.policy
    policy = policies.get(name)
    if policy is not None:
        return policy
    if name in enabled:
        raise ConfigError(f"routing.policy: middleware {name!r} is not a routing policy")
    raise ConfigError(f"routing.policy: no enabled routing policy is named {name!r} "
                      f"(enabled: {', '.join(sorted(policies)) or 'none'})")


def _check_access_control(settings: Settings, loaded: LoadedPlugins, placements: dict[str, StagePlacement]) -> None:
    """Serving with nobody checking credentials or scopes must be asked for explicitly."""
    if settings.auth.disabled:
        return
    if not loaded.authenticators:
        raise ConfigError(
            "no authenticator is enabled (the master-key middleware is off); enable one, or set "
            "auth.disabled = true to serve without authentication"
        )
    if not any(placement.phase == "auth" for placement in placements.values()):
        raise ConfigError(
            "no stage of the auth phase is enabled (the authorize middleware is off), so key scopes "
            "would not be checked; enable it, or set auth.disabled = true"
        )


def collect_routes(loaded: LoadedPlugins, context: RouteContext) -> tuple[list[Any], list[Any]]:
    """The route handlers and the ASGI middleware the enabled plugins add."""
    routes: list[Any] = []
    middleware: list[Any] = []
    if loaded.hooks is not None:
        loaded.hooks.register_routes(routes.append, context)
        loaded.hooks.register_asgi_middleware(middleware.append, context)
    return routes, middleware


def _collect(hook: Callable[[Callable[[Any], None]], None], kind: Kind,
             packages: dict[tuple[Kind, str], tuple[str, str]]) -> list[Any]:
    hook_name = hook.__name__
    specs: list[Any] = []
    names: set[str] = set()

    def register(spec: ProviderSpec | MiddlewareSpec) -> None:
        expected = ProviderSpec if kind == "provider" else MiddlewareSpec
        if not isinstance(spec, expected):
            raise ConfigError(f"{hook_name} was given {spec!r}; expected a {expected.__name__}")
        if (kind, spec.name) not in packages:
            raise ConfigError(
                f"{kind} {spec.name!r} is registered, but no entry point of group "
                f"{ENTRY_POINT_GROUPS[kind]!r} has that name; name the entry point {spec.name!r}"
            )
        if spec.name in names:
            raise ConfigError(f"{kind} {spec.name!r} is registered twice")
        base = ProviderConfig if kind == "provider" else MiddlewareConfig
        if not (isinstance(spec.config_type, type) and issubclass(spec.config_type, base)):
            raise ConfigError(f"{kind} {spec.name!r}: its config_type {spec.config_type!r} must be a "
                              f"subclass of {base.__name__}")
        names.add(spec.name)
        specs.append(spec)

    hook(register)
    return specs


def _create(kind: Kind, spec: ProviderSpec | MiddlewareSpec, config: Any, context: PluginContext) -> Any:
    """``spec.create(config, context)``; a plugin that fails to build names itself."""
    try:
        return spec.create(config, context)
    except ConfigError:
        raise
    except Exception as error:  # a third-party plugin's bug or refusal stops start-up, named
        raise ConfigError(f"{kind} {spec.name!r} failed to start: {error!r}") from error


def _provider_config(settings: Settings, spec: ProviderSpec) -> Any | None:
    """The provider's validated config, or ``None`` when it is not enabled."""
    table = _table(settings, "provider", spec.name)
    env_key = os.environ.get(spec.api_key_env) if spec.api_key_env else None
    if table is None:
        if not env_key:
            return None
        table = {}
    config = _validate_config("provider", spec.name, spec.config_type, table)
    if not config.enabled:
        return None
    if config.api_key is None and env_key:
        config.api_key = env_key
    if not config.api_key and spec.needs_api_key and not _deployment_keys(settings, spec.name):
        where = f"export {spec.api_key_env}, or set" if spec.api_key_env else "set"
        example = spec.api_key_env or f"{spec.name.upper().replace('-', '_')}_API_KEY"
        raise ConfigError(f"providers.{spec.name}: no API key: {where} api_key in [providers.{spec.name}] "
                          f"(e.g. api_key = {{ env = \"{example}\" }}), or switch it off with "
                          "enabled = false")
    if not config.base_url:
        raise ConfigError(f"providers.{spec.name}.base_url: must be set (the plugin has no default)")
    config.base_url = config.base_url.rstrip("/")
    return config


def _deployment_keys(settings: Settings, provider: str) -> bool:
    """Whether a ``[models]`` alias deploys this provider with a key of its own."""
    return any(deployment.api_key and deployment.model.startswith(f"{provider}/")
               for alias in settings.models.values() for deployment in alias.deployments)


def _in_config_order(specs: list[MiddlewareSpec], tables: dict[str, Any]) -> list[MiddlewareSpec]:
    """Middleware of one stage runs in the order its tables appear in the config file."""
    position = {name: index for index, name in enumerate(tables)}
    return sorted(specs, key=lambda spec: (position.get(spec.name, len(position)), spec.name))


def _place_middleware(loaded: LoadedPlugins, spec: MiddlewareSpec, behaviour: object, settings: Settings) -> bool:
    """Place ``behaviour`` by what it is; returns whether it is a routing policy."""
    name = type(behaviour).__name__
    placed = False
    if isinstance(behaviour, Authenticator):
        if not settings.auth.disabled:
            loaded.authenticators.append(behaviour)
        placed = True
    if is_stage(behaviour):
        if spec.stage is None:
            raise ConfigError(f"middleware {spec.name!r} created {name}, a stage, but its MiddlewareSpec "
                              "has no stage placement (stage=StagePlacement(phase=...))")
        placed = True
    elif spec.stage is not None:
        raise ConfigError(f"middleware {spec.name!r}: its MiddlewareSpec places a stage, but {name} "
                          "defines none of enter, handle, stream, attempt")
    policy = isinstance(behaviour, RoutingPolicy)
    if not (placed or policy or spec.routes_only):
        raise ConfigError(
            f"middleware {spec.name!r} created {name}, which satisfies none of Authenticator, Stage, "
            "RoutingPolicy"
        )
    loaded.components.append(behaviour)
    loaded.by_name[spec.name] = behaviour
    return policy
