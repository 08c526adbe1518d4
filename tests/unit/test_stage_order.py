"""The order of the stages: declared (phases, before/after), overridden by ``[pipeline] order``,
and refused with a clear start-up error when it cannot be resolved."""

from __future__ import annotations

from importlib.metadata import EntryPoint

import pytest

from junction.errors import ConfigError
from junction.plugins import StagePlacement
from junction.plugins.ordering import resolve_order
from tests.unit.test_plugin_manager import load


def P(phase, before=(), after=()):  # noqa: N802 - reads like the spec it builds
    return StagePlacement(phase=phase, before=tuple(before), after=tuple(after))


def test_phases_order_stages_outermost_first_then_by_name():
    placements = {"rate-limit": P("admission"), "cache": P("cache"), "metrics": P("observe"),
                  "authorize": P("auth"), "bridges": P("transform"), "budget": P("admission"),
                  "org-credentials": P("route")}
    assert resolve_order(placements) == ["metrics", "authorize", "bridges", "budget", "rate-limit", "cache",
                                         "org-credentials"]


def test_before_and_after_refine_the_order_within_and_across_phases():
    placements = {"rate-limit": P("admission"), "budget": P("admission", after=["rate-limit"]),
                  "rag": P("transform", after=["bridges"], before=["nonexistent"]), "bridges": P("transform"),
                  "early": P("cache", before=["authorize"]), "authorize": P("auth")}
    order = resolve_order(placements)
    assert order.index("rate-limit") < order.index("budget")
    assert order.index("bridges") < order.index("rag")
    assert order.index("early") < order.index("authorize")  # an explicit constraint beats the phase
    assert resolve_order(placements) == order  # deterministic


def test_a_cycle_is_refused_and_named():
    placements = {"a": P("admission", before=["b"]), "b": P("admission", before=["c"]),
                  "c": P("admission", before=["a"]), "d": P("cache", after=["c"]), "e": P("auth")}
    with pytest.raises(ConfigError) as caught:
        resolve_order(placements)
    message = caught.value.message
    assert "a → b → c → a" in message and "[pipeline] order" in message
    assert "'d'" not in message and " e " not in message


def test_an_explicit_order_overrides_the_declared_one():
    placements = {"authorize": P("auth"), "bridges": P("transform"), "cache": P("cache")}
    assert resolve_order(placements, ["cache", "authorize", "bridges"]) == ["cache", "authorize", "bridges"]


@pytest.mark.parametrize(("order", "message"), [
    (["authorize", "bridges"], "pipeline.order: the enabled stage 'cache' is not listed"),
    (["authorize", "bridges", "cache", "typo"], "pipeline.order: 'typo' is not an enabled stage"),
    (["authorize", "bridges", "cache", "cache"], "pipeline.order: 'cache' is listed twice"),
])
def test_an_explicit_order_must_list_every_enabled_stage_once(order, message):
    placements = {"authorize": P("auth"), "bridges": P("transform"), "cache": P("cache")}
    with pytest.raises(ConfigError, match=message):
        resolve_order(placements, order)


def test_an_unknown_phase_is_named():
    with pytest.raises(ConfigError, match="middleware 'x': its stage phase 'later' is not one of observe, auth"):
        resolve_order({"x": P("later")})  # type: ignore[arg-type]


# --- through the plugin manager ----------------------------------------------------------------


def test_the_built_in_stages_resolve_in_their_phases():
    loaded = load({"auth": {"master_key": "k"}})
    assert loaded.stage_order == ["metrics", "authorize", "bridges", "agents", "org-credentials"]
    assert [name for name, _ in loaded.stages] == loaded.stage_order
    listed = {info.name: (info.phase, info.position) for info in loaded.infos if info.kind == "middleware"}
    assert listed["metrics"] == ("observe", 1)
    assert listed["authorize"] == ("auth", 2) and listed["org-credentials"] == ("route", 5)
    assert listed["master-key"] == (None, None)


def test_the_config_overrides_the_order_and_a_disabled_stage_leaves_it():
    loaded = load({"auth": {"master_key": "k"}, "pipeline": {"order": ["bridges", "authorize"]},
                   "middleware": {"org-credentials": {"enabled": False}, "metrics": {"enabled": False},
                                  "agents": {"enabled": False}}})
    assert loaded.stage_order == ["bridges", "authorize"]


def test_a_stage_in_a_cycle_stops_start_up():
    cyclic = [EntryPoint("loop-a", "tests.unit.sample_plugins:loop_a", "junction.middleware"),
              EntryPoint("loop-b", "tests.unit.sample_plugins:loop_b", "junction.middleware")]
    with pytest.raises(ConfigError, match="loop-a → loop-b → loop-a"):
        load({"auth": {"master_key": "k"}}, middleware=cyclic)


def test_serving_without_an_auth_stage_needs_auth_disabled():
    with pytest.raises(ConfigError, match="no stage of the auth phase is enabled"):
        load({"auth": {"master_key": "k"}, "middleware": {"authorize": {"enabled": False}}})
    load({"auth": {"disabled": True}, "middleware": {"authorize": {"enabled": False}}})


def test_the_routing_policy_must_be_an_enabled_policy_plugin():
    with pytest.raises(ConfigError, match="routing.policy: no enabled routing policy is named 'fastest'"):
        load({"auth": {"master_key": "k"}, "routing": {"policy": "fastest"}})
    with pytest.raises(ConfigError, match="routing.policy: middleware 'authorize' is not a routing policy"):
        load({"auth": {"master_key": "k"}, "routing": {"policy": "authorize"}})


def test_a_stage_spec_must_create_a_stage_and_a_stage_must_be_placed():
    with pytest.raises(ConfigError, match="places a stage, but Inert defines none of enter"):
        load({"auth": {"master_key": "k"}},
             middleware=[EntryPoint("placed-inert", "tests.unit.sample_plugins:placed_inert", "junction.middleware")])
    with pytest.raises(ConfigError, match="a stage, but its MiddlewareSpec has no stage placement"):
        load({"auth": {"master_key": "k"}},
             middleware=[EntryPoint("unplaced", "tests.unit.sample_plugins:unplaced", "junction.middleware")])
