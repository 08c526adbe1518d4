"""Console forms → the admin API's own body Structs, so a form is validated exactly as the same
request to the API would be (same types, same messages naming the field)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

import msgspec

from junction.errors import InvalidRequest
from junction.formats.openai import validation_error

T = TypeVar("T")


def decode_form(fields: Mapping[str, str], type_: type[T], *, lists: Iterable[str] = (),
                json: Iterable[str] = (), clearable: Iterable[str] = ()) -> T:
    """``fields`` as ``type_``. An empty field is left out (its default applies), or sent as
    ``null`` when it is ``clearable`` (a PATCH clearing a limit); ``lists`` are comma- or
    line-separated; ``json`` fields hold JSON text (a bridge's params, variables, tools)."""
    lists, json, clearable = set(lists), set(json), set(clearable)
    data: dict[str, Any] = {}
    for name, raw in fields.items():
        value = raw.strip()
        if not value:
            if name in clearable:
                data[name] = None
            continue
        if name in lists:
            data[name] = [part.strip() for part in value.replace("\n", ",").split(",") if part.strip()]
        elif name in json:
            try:
                data[name] = msgspec.json.decode(value)
            except msgspec.DecodeError:
                raise InvalidRequest(f"{name}: not valid JSON", param=name, code="invalid_json") from None
        else:
            data[name] = value
    try:
        return msgspec.convert(data, type_, strict=False)
    except msgspec.ValidationError as error:
        raise validation_error(error) from None


def only(fields: Mapping[str, str], *names: str) -> dict[str, str]:
    return {name: fields[name] for name in names if name in fields}
