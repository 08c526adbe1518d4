"""``{{variable}}`` templating of bridge prompts.

One pass, left to right: a value that itself contains ``{{...}}`` is inserted literally, never
expanded again, so callers cannot inject placeholders. A placeholder is filled from the call's
``variables``, else the declared default; a declared required variable, or an undeclared
placeholder, left without a value is a 400 naming it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import msgspec

from app.errors import InvalidRequest
from app.stores.documents.protocol import BridgeVariable

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_.\-]*)\s*\}\}")


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return msgspec.json.encode(value).decode()


def check_values(declared: list[BridgeVariable], values: Mapping[str, Any], slug: str) -> None:
    """Every required variable without a default must be given."""
    for variable in declared:
        if variable.required and variable.default is None and values.get(variable.name) is None:
            raise InvalidRequest(
                f"variables.{variable.name}: required by bridge {slug!r}",
                param=f"variables.{variable.name}",
                code="missing_variable",
            )


def render(template: str, declared: list[BridgeVariable], values: Mapping[str, Any], slug: str) -> str:
    check_values(declared, values, slug)
    by_name = {variable.name: variable for variable in declared}

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        value = values.get(name)
        if value is not None:
            return _text(value)
        variable = by_name.get(name)
        if variable is None:
            raise InvalidRequest(
                f"variables.{name}: used by the prompt of bridge {slug!r} but not given",
                param=f"variables.{name}",
                code="missing_variable",
            )
        return variable.default if variable.default is not None else ""

    return PLACEHOLDER.sub(fill, template)
