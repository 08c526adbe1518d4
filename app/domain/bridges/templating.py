"""``{{variable}}`` templating of bridge prompts.

One pass, left to right: a value that itself contains ``{{...}}`` is inserted literally, never
expanded again, so callers cannot inject placeholders. A placeholder is filled from the call's
``variables``, else the declared default; a declared required variable, or an undeclared
placeholder, left without a value is a 400 naming it, and so is a given variable the bridge
neither declares nor uses (a misspelling).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import msgspec

from junction.errors import InvalidRequest, PayloadTooLarge
from junction.stores.documents.bridges import BridgeVariable

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


def check_known(template: str, declared: list[BridgeVariable], values: Mapping[str, Any], slug: str, *,
                also: Iterable[str] = ()) -> None:
    """A variable the bridge neither declares nor uses in its prompt (nor binds to a server tool's
    argument: ``also``) is a misspelling, not something to ignore: 400 naming it (and what the
    bridge knows)."""
    known = {variable.name for variable in declared} | set(PLACEHOLDER.findall(template)) | set(also)
    unknown = sorted(name for name in values if name not in known)
    if unknown:
        param = f"variables.{unknown[0][:100]}"
        names = ", ".join(repr(name[:100]) for name in unknown[:10])
        raise InvalidRequest(
            f"{param}: bridge {slug!r} has no variable {names} (its variables: "
            f"{', '.join(sorted(known)) or 'none'})", param=param, code="unknown_variable")


def render(template: str, declared: list[BridgeVariable], values: Mapping[str, Any], slug: str, *,
           max_chars: int | None = None, max_variable_chars: int | None = None, check_unknown: bool = True) -> str:
    """The prompt with its placeholders filled. With limits: a variable's value longer than
    ``max_variable_chars`` is a 400, and a prompt that would grow past ``max_chars`` is a 413 the
    moment it would, so a short template repeating a large value cannot make a huge string."""
    if check_unknown:  # else the caller checks, knowing more names (a server tool's bound arguments)
        check_known(template, declared, values, slug)
    check_values(declared, values, slug)
    by_name = {variable.name: variable for variable in declared}
    texts = {name: _text(value) for name, value in values.items() if value is not None}
    if max_variable_chars is not None:
        for name, text in texts.items():
            if len(text) > max_variable_chars:
                param = f"variables.{name[:100]}"
                raise InvalidRequest(
                    f"{param}: {len(text)} characters, more than limits.max_variable_chars "
                    f"({max_variable_chars})",
                    param=param, code="variable_too_large")
    size = len(template)

    def fill(match: re.Match[str]) -> str:
        nonlocal size
        text = _value(match)
        size += len(text) - len(match.group(0))
        if max_chars is not None and size > max_chars:
            raise PayloadTooLarge(
                f"bridge {slug!r}: its prompt with these variables would be longer than "
                f"limits.max_prompt_chars ({max_chars} characters)", code="prompt_too_large")
        return text

    def _value(match: re.Match[str]) -> str:
        name = match.group(1)
        text = texts.get(name)
        if text is not None:
            return text
        variable = by_name.get(name)
        if variable is None:
            raise InvalidRequest(
                f"variables.{name}: used by the prompt of bridge {slug!r} but not given",
                param=f"variables.{name}",
                code="missing_variable",
            )
        return variable.default if variable.default is not None else ""

    return PLACEHOLDER.sub(fill, template)
