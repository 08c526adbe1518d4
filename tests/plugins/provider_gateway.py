"""A real gateway in front of one provider's fake, for the provider test modules."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import openai

from app.testing.server import JunctionProcess


def provider_gateway(
    directory: Path, provider: str, api_key: str, base_url: str, **keys: Any
) -> JunctionProcess:
    """A started ``junction serve`` with ``[providers.<provider>]`` pointed at ``base_url``."""
    table = {"api_key": api_key, "base_url": base_url, **keys}
    lines = "\n".join(f"{key} = {json.dumps(value)}" for key, value in table.items())
    return JunctionProcess(directory, f"[providers.{provider}]\n{lines}\n").start()


def sdk(server: JunctionProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=server.key, max_retries=0, timeout=20)
