"""Node services (``register_node_services``): ``junction serve`` runs each in a process of its
own beside the workers, tells them where it listens, and stops it after them."""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path

import pluggy
import pytest

from junction.asgi import create_app
from junction.cli import _node_services
from junction.errors import ConfigError
from junction.middleware.metrics.config import usable_cpus
from junction.plugins import NodeService, hookimpl
from junction.plugins.hooks import PluginHooks
from junction.plugins.hookspecs import PROJECT_NAME, JunctionHookSpecs
from junction.plugins.node import running
from junction.settings import settings_from_mapping

ECHO = NodeService(name="echo", module="tests.unit.node_echo", env="JUNCTION_TEST_ECHO")


def _greeting(address: str) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.connect(address)
        return client.recv(16)


def test_a_service_listens_beside_the_workers_and_stops_after_them(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    marker = tmp_path / "stopped"
    monkeypatch.setenv("NODE_ECHO_MARKER", str(marker))
    with running([ECHO]) as listening:
        address = listening["echo"]
        assert os.environ[ECHO.env] == address  # what spawned workers inherit
        assert _greeting(address) == b"hello"
        assert not marker.exists()
    assert marker.read_text() == "stopped on SIGTERM"  # stopped by the signal, its work finished
    assert ECHO.env not in os.environ
    assert not Path(address).parent.exists()


def test_a_service_that_does_not_start_is_left_out(monkeypatch: pytest.MonkeyPatch,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("NODE_ECHO_FAIL", "1")
    with caplog.at_level(logging.WARNING, logger="junction.node"), running([ECHO], ready_seconds=10) as listening:
        assert listening == {}
        assert ECHO.env not in os.environ
    assert "node service echo did not start (exit code 3)" in caplog.text


class _Plugin:
    @hookimpl
    def register_node_services(self, register, components, workers):
        if components.get("wanted") and workers < 4:
            register(ECHO)


class _OlderPlugin:  # written before the hook had ``workers``: pluggy passes what it asks for
    @hookimpl
    def register_node_services(self, register, components):
        register(NodeService(name="older", module="tests.unit.node_echo", env="JUNCTION_TEST_OLDER"))


def test_plugins_register_their_services_through_the_hook() -> None:
    manager = pluggy.PluginManager(PROJECT_NAME)
    manager.add_hookspecs(JunctionHookSpecs)
    manager.register(_Plugin())
    manager.register(_OlderPlugin())
    found: list[NodeService] = []
    PluginHooks(manager).register_node_services(register=found.append, components={"wanted": True}, workers=2)
    assert sorted(service.name for service in found) == ["echo", "older"]
    found.clear()
    PluginHooks(manager).register_node_services(register=found.append, components={"wanted": True}, workers=4)
    assert [service.name for service in found] == ["older"]


@pytest.mark.parametrize(("metrics", "cpus", "workers", "services"), [
    ({}, 4, 1, ["usage-relay"]),  # auto: a core the workers leave idle
    ({}, 4, 3, ["usage-relay"]),
    ({}, 4, 4, []),  # auto: every core serves requests, where the relay would only move the cost
    ({}, 1, 1, []),  # e.g. `taskset -c 0 junction serve`
    ({"relay": True}, 1, 1, ["usage-relay"]),
    ({"relay": False}, 4, 1, []),
    ({"relay": True, "ledger": False, "prometheus": False}, 4, 1, []),  # nothing to relay
    ({"ledger": False, "prometheus": False}, 4, 1, []),
    ({"relay": True, "enabled": False}, 4, 1, []),
])
def test_the_metrics_plugin_runs_the_usage_relay_where_it_helps(monkeypatch: pytest.MonkeyPatch,
                                                                 tmp_path: Path, metrics: dict[str, object],
                                                                 cpus: int, workers: int,
                                                                 services: list[str]) -> None:
    # The CPUs the server may run on, as a taskset or a container's cpuset leaves them (no quota).
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cpus)))
    monkeypatch.setattr("junction.middleware.metrics.config.CPU_MAX", tmp_path / "no-quota")
    app = create_app(settings_from_mapping({"middleware": {"metrics": metrics}}), provisional=True)
    found = _node_services(app.state["runtime"].plugins, workers)
    assert [service.name for service in found] == services
    assert all(service.module == "junction.middleware.metrics" for service in found)


def test_an_unknown_relay_setting_is_refused_naming_the_key() -> None:
    with pytest.raises(ConfigError, match=r"^middleware\.metrics\.relay: "):
        create_app(settings_from_mapping({"middleware": {"metrics": {"relay": "sometimes"}}}),
                   provisional=True)


@pytest.mark.parametrize(("cpu_max", "usable"), [
    ("max 100000\n", 4),  # no quota
    ("100000 100000\n", 1),  # a Kubernetes limit of one CPU: the relay would eat into the workers'
    ("150000 100000\n", 2),
    ("800000 100000\n", 4),  # a quota above the CPUs it may run on
    ("not a quota\n", 4),
])
def test_a_cpu_quota_counts_as_fewer_cpus(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, cpu_max: str,
                                          usable: int) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(4)))
    (tmp_path / "cpu.max").write_text(cpu_max)
    assert usable_cpus(tmp_path / "cpu.max") == usable
    assert usable_cpus(tmp_path / "absent") == 4
