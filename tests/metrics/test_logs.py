"""Logs: JSON lines with time, level, logger and request id; one access line per request
(method, path, status, duration, model, org), unmatched paths included; never a key or a body;
readable text when stderr is a terminal."""

from __future__ import annotations

import io
import json
import logging

import httpx
import pytest

from junction.logs import LoggingSettings, configure_logging
from junction.testing.server import JunctionProcess
from tests.conftest import openai_provider_table

pytestmark = pytest.mark.slow
SECRET_TEXT = "SECRET-PROMPT-TEXT-1234"


@pytest.mark.parametrize("metrics", ["on", "off"])
def test_json_access_lines_name_the_request_and_never_secrets(fake_openai_server, tmp_path, metrics):
    """The line names the model (and org, for an org's key) whether or not the metrics plugin is on."""
    config = openai_provider_table(fake_openai_server) + '[logging]\nformat = "json"\n'
    if metrics == "off":
        config += "[middleware.metrics]\nenabled = false\n"
    with JunctionProcess(tmp_path, config) as server:
        headers = {"authorization": f"Bearer {server.key}"}
        chat = httpx.post(f"{server.url}/v1/chat/completions", headers={**headers, "x-request-id": "trace-42"},
                          json={"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": SECRET_TEXT}]})
        assert chat.status_code == 200
        missing = httpx.get(f"{server.url}/no/such/route?token=zzz", headers=headers)
        assert missing.status_code == 404
    output = server.output()
    assert server.key not in output and SECRET_TEXT not in output and "sk-upstream-test" not in output
    assert "zzz" not in output  # query strings are not logged
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    assert lines and all({"ts", "level", "logger", "message"} <= set(line) for line in lines)
    access = [line for line in lines if line["logger"] == "junction.access"]
    by_path = {line["path"]: line for line in access}
    call = by_path["/v1/chat/completions"]
    assert call["request_id"] == "trace-42" and call["method"] == "POST" and call["status"] == 200
    assert call["model"] == "openai/gpt-4o-mini" and call["duration_ms"] > 0
    assert by_path["/no/such/route"]["status"] == 404
    assert by_path["/no/such/route"]["request_id"] == missing.headers["x-request-id"]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_readable_text_on_a_terminal_and_json_elsewhere():
    root = logging.getLogger()
    level = root.level
    try:
        terminal = Terminal()
        configure_logging(LoggingSettings(), terminal)
        logging.getLogger("junction.test").warning("hello %s", "there")
        line = terminal.getvalue().strip()
        assert line.endswith("WARNING junction.test hello there") and line[:4].isdigit()
        piped = io.StringIO()
        configure_logging(LoggingSettings(), piped)
        logging.getLogger("junction.test").warning("hello")
        assert json.loads(piped.getvalue())["message"] == "hello"
        assert terminal.getvalue().count("\n") == 1  # the old handler was replaced, not added to
    finally:
        for handler in [h for h in root.handlers if getattr(h, "junction", False)]:
            root.removeHandler(handler)
        root.setLevel(level)
