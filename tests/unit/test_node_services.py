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
    def register_node_services(self, register, components):
        if components.get("wanted"):
            register(ECHO)


def test_plugins_register_their_services_through_the_hook() -> None:
    manager = pluggy.PluginManager(PROJECT_NAME)
    manager.add_hookspecs(JunctionHookSpecs)
    manager.register(_Plugin())
    found: list[NodeService] = []
    PluginHooks(manager).register_node_services(register=found.append, components={"wanted": True})
    assert found == [ECHO]


@pytest.mark.parametrize(("metrics", "services"), [
    ({"relay": True}, ["usage-relay"]),
    ({}, []),  # opt-in
    ({"relay": True, "ledger": False, "prometheus": False}, []),  # nothing to relay
    ({"relay": True, "enabled": False}, []),
])
def test_the_metrics_plugin_runs_the_usage_relay_when_asked_to(metrics: dict[str, object],
                                                                    services: list[str]) -> None:
    app = create_app(settings_from_mapping({"middleware": {"metrics": metrics}}), provisional=True)
    found = _node_services(app.state["runtime"].plugins)
    assert [service.name for service in found] == services
    assert all(service.module == "junction.middleware.metrics.relay" for service in found)
