"""The order of the stages: phases first, refined by each stage's ``before``/``after``, or exactly
as ``[pipeline] order`` lists them. Problems are start-up errors that name the stages involved."""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence

from junction.errors import ConfigError
from junction.plugins.protocols import PHASES, StagePlacement


def resolve_order(placements: Mapping[str, StagePlacement], override: Sequence[str] | None = None) -> list[str]:
    """The enabled stages (``placements``, by name), outermost first."""
    for name, placement in placements.items():
        if placement.phase not in PHASES:
            raise ConfigError(f"middleware {name!r}: its stage phase {placement.phase!r} is not one of "
                              f"{', '.join(PHASES)}")
    if override is not None:
        return _explicit(placements, override)
    successors: dict[str, set[str]] = {name: set() for name in placements}
    for name, placement in placements.items():
        successors[name].update(other for other in placement.before if other in placements and other != name)
        for other in placement.after:
            if other in placements and other != name:
                successors[other].add(name)
    waiting = {name: 0 for name in placements}
    for targets in successors.values():
        for target in targets:
            waiting[target] += 1
    # Among the stages whose constraints are met, the earliest phase goes first, then the name:
    # the same plugins always give the same order.
    ready = [(PHASES.index(placements[name].phase), name) for name, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    ordered: list[str] = []
    while ready:
        _, name = heapq.heappop(ready)
        ordered.append(name)
        for target in sorted(successors[name]):
            waiting[target] -= 1
            if waiting[target] == 0:
                heapq.heappush(ready, (PHASES.index(placements[target].phase), target))
    if len(ordered) < len(placements):
        cycle = _a_cycle({name: successors[name] for name in placements if name not in ordered})
        raise ConfigError(
            f"the stages {' → '.join(cycle)} are ordered in a cycle by their before/after constraints; "
            "set [pipeline] order to list every stage in the order you want")
    return ordered


def _explicit(placements: Mapping[str, StagePlacement], override: Sequence[str]) -> list[str]:
    enabled = ", ".join(sorted(placements)) or "none"
    seen: set[str] = set()
    for name in override:
        if name not in placements:
            raise ConfigError(f"pipeline.order: {name!r} is not an enabled stage (enabled stages: {enabled})")
        if name in seen:
            raise ConfigError(f"pipeline.order: {name!r} is listed twice")
        seen.add(name)
    for name in placements:
        if name not in seen:
            raise ConfigError(f"pipeline.order: the enabled stage {name!r} is not listed; list it, or "
                              f"switch it off with [middleware.{name}] enabled = false")
    return list(override)


def _a_cycle(successors: Mapping[str, set[str]]) -> list[str]:
    """One cycle among the stages Kahn's walk left over, closed (``[a, b, a]``). Each of them
    waits on another of them, so walking back along "waits on" must come round."""
    waits_on: dict[str, list[str]] = {name: [] for name in successors}
    for name, targets in successors.items():
        for target in targets:
            if target in waits_on:
                waits_on[target].append(name)
    path: list[str] = []
    position: dict[str, int] = {}
    node = min(waits_on)
    while node not in position:
        position[node] = len(path)
        path.append(node)
        node = min(waits_on[node])
    cycle = path[position[node]:]
    cycle.reverse()
    start = cycle.index(min(cycle))  # told from its first name, the same way every time
    cycle = cycle[start:] + cycle[:start]
    return [*cycle, cycle[0]]
