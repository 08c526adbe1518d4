"""HTTP tools a bridge may call server-side (``/api/v1/tools``): the records and the repository.

Header values are secrets. A header is given either as a literal string, stored sealed (AES-GCM,
like provider credentials, bound to the org and the tool), or as a reference
``{"env": "JUNCTION_SECRET_<NAME>"}`` read from the gateway's environment when the tool is
called. References are confined to variables named ``JUNCTION_SECRET_*`` so that an org admin
cannot send the gateway's own keys to a URL of their choosing. Neither kind is ever returned:
:class:`ToolView` lists header names and where each value comes from.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal, Protocol, runtime_checkable

import msgspec
from msgspec import UNSET, UnsetType

from junction.errors import InvalidRequest, NotFound

#: Environment variables a header may reference.
SECRET_ENV_PREFIX = "JUNCTION_SECRET_"
#: Tool names as the providers accept function names (OpenAI's rule, the strictest).
TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
HttpMethod = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
Timeout = Annotated[float, msgspec.Meta(gt=0, le=300)]


class EnvRef(msgspec.Struct, forbid_unknown_fields=True):
    """A header value read from the gateway's environment when the tool is called."""

    env: str


HeaderValue = str | EnvRef


class NewTool(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: str
    url: str
    description: str | None = None
    #: JSON schema of the arguments (an object schema).
    parameters: dict[str, Any] = msgspec.field(default_factory=lambda: {"type": "object", "properties": {}})
    method: HttpMethod = "POST"
    headers: dict[str, HeaderValue] = {}
    timeout_seconds: Timeout = 10.0
    #: Arguments filled from the call's ``variables``, removed from the schema the model sees.
    bound: list[str] = []


class ToolPatch(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: str | UnsetType = UNSET
    url: str | UnsetType = UNSET
    description: str | None | UnsetType = UNSET
    parameters: dict[str, Any] | UnsetType = UNSET
    method: HttpMethod | UnsetType = UNSET
    #: Replaces every header (send all of them again: values are never returned).
    headers: dict[str, HeaderValue] | UnsetType = UNSET
    timeout_seconds: Timeout | UnsetType = UNSET
    bound: list[str] | UnsetType = UNSET


class HttpTool(msgspec.Struct, kw_only=True):
    """The stored tool. Literal header values exist only sealed (``key_id`` + ``ciphertext``)."""

    id: str
    org_id: str
    name: str
    description: str | None = None
    parameters: dict[str, Any]
    url: str
    method: str
    timeout_seconds: float
    bound: list[str] = []
    #: Header name → environment variable.
    env_headers: dict[str, str] = {}
    #: Names of the sealed headers (their values are in ``ciphertext``).
    secret_headers: list[str] = []
    key_id: str | None = None
    ciphertext: bytes | None = None
    created_at: datetime
    updated_at: datetime


class HeaderView(msgspec.Struct, kw_only=True, omit_defaults=True):
    env: str | None = None
    stored: bool = False


class ToolView(msgspec.Struct, kw_only=True):
    id: str
    org_id: str
    name: str
    description: str | None
    parameters: dict[str, Any]
    url: str
    method: str
    headers: dict[str, HeaderView]
    timeout_seconds: float
    bound: list[str]
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, tool: HttpTool) -> ToolView:
        headers = {name: HeaderView(env=env) for name, env in tool.env_headers.items()}
        headers.update((name, HeaderView(stored=True)) for name in tool.secret_headers)
        return cls(id=tool.id, org_id=tool.org_id, name=tool.name, description=tool.description,
                   parameters=tool.parameters, url=tool.url, method=tool.method, headers=headers,
                   timeout_seconds=tool.timeout_seconds, bound=tool.bound, created_at=tool.created_at,
                   updated_at=tool.updated_at)


def tool_not_found(tool_id: str) -> NotFound:
    return NotFound(f"tool {tool_id!r} not found", param="tool_id", code="tool_not_found")


def check_tool(name: str, parameters: dict[str, Any], bound: list[str], headers: dict[str, HeaderValue]) -> None:
    """What the stores refuse (400 naming the field): a name providers would refuse, a schema that
    is not an object schema, a bound argument the schema lacks, an unconfined env reference."""
    if not TOOL_NAME.match(name):
        raise InvalidRequest("name: letters, digits, '_' and '-' only, at most 64", param="name",
                             code="invalid_tool_name")
    if parameters.get("type", "object") != "object" or not isinstance(parameters.get("properties", {}), dict):
        raise InvalidRequest("parameters: must be a JSON schema of type object", param="parameters",
                             code="invalid_tool_parameters")
    properties = parameters.get("properties", {})
    for argument in bound:
        if argument not in properties:
            raise InvalidRequest(f"bound: {argument!r} is not a property of parameters", param="bound",
                                 code="invalid_bound_argument")
    for header, value in headers.items():
        if isinstance(value, EnvRef) and not value.env.startswith(SECRET_ENV_PREFIX):
            raise InvalidRequest(f"headers.{header}: env references must name a {SECRET_ENV_PREFIX}* variable",
                                 param=f"headers.{header}", code="invalid_secret_reference")


def split_headers(headers: dict[str, HeaderValue]) -> tuple[dict[str, str], dict[str, str]]:
    """``(env references, literal secrets)``."""
    env = {name: value.env for name, value in headers.items() if isinstance(value, EnvRef)}
    literal = {name: value for name, value in headers.items() if isinstance(value, str)}
    return env, literal


@runtime_checkable
class ToolRepository(Protocol):
    async def create(self, org_id: str, spec: NewTool) -> HttpTool:
        """Conflict when the org already has a tool of that name; NotFound for a missing org."""
        ...

    async def get(self, org_id: str, tool_id: str) -> HttpTool: ...

    async def list(self, org_id: str) -> list[HttpTool]: ...

    async def update(self, org_id: str, tool_id: str, patch: ToolPatch) -> HttpTool: ...

    async def delete(self, org_id: str, tool_id: str) -> None: ...

    def reveal(self, tool: HttpTool) -> dict[str, str]:
        """The sealed header values of ``tool`` (plaintext: never log or return them)."""
        ...

    async def many(self, org_id: str, tool_ids: list[str]) -> list[HttpTool]:
        """The org's tools among ``tool_ids`` (one query; missing or another org's are left out)."""
        ...
