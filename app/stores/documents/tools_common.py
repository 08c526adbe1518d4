"""What both backends store of an HTTP tool: new and patched records, sealed headers."""

from __future__ import annotations

import msgspec
from msgspec import UNSET

from junction.errors import Conflict, InvalidRequest
from junction.security.crypto import Cipher, SealedBlob
from junction.security.ssrf import check_url
from junction.stores.documents.common import new_id, utc_now
from junction.stores.documents.tools import (
    HeaderValue,
    HttpTool,
    NewTool,
    ToolPatch,
    check_tool,
    split_headers,
)

_headers_encoder = msgspec.json.Encoder()
_headers_decoder = msgspec.json.Decoder(dict[str, str])


def _binding(org_id: str, tool_id: str) -> bytes:
    """AES-GCM associated data: sealed headers open only on the tool (and org) they were sealed for."""
    return f"junction-tool-headers\x00{org_id}\x00{tool_id}".encode()


def _with_headers(tool: HttpTool, headers: dict[str, HeaderValue], cipher: Cipher) -> HttpTool:
    env, literal = split_headers(headers)
    key_id = ciphertext = None
    if literal:
        sealed = cipher.seal(_headers_encoder.encode(literal), _binding(tool.org_id, tool.id))
        key_id, ciphertext = sealed.key_id, sealed.blob
    return msgspec.structs.replace(tool, env_headers=env, secret_headers=sorted(literal), key_id=key_id,
                                   ciphertext=ciphertext)


def new_tool(org_id: str, spec: NewTool, cipher: Cipher) -> HttpTool:
    check_tool(spec.name, spec.parameters, spec.bound, spec.headers)
    check_url(spec.url, param="url")
    now = utc_now()
    tool = HttpTool(id=new_id("tool"), org_id=org_id, name=spec.name, description=spec.description,
                    parameters=spec.parameters, url=spec.url, method=spec.method,
                    timeout_seconds=spec.timeout_seconds, bound=spec.bound, created_at=now, updated_at=now)
    return _with_headers(tool, spec.headers, cipher)


def patched_tool(tool: HttpTool, patch: ToolPatch, cipher: Cipher) -> HttpTool:
    changes = {name: getattr(patch, name) for name in patch.__struct_fields__
               if name != "headers" and getattr(patch, name) is not UNSET}
    for required in ("name", "url", "parameters", "method", "timeout_seconds", "bound"):
        if required in changes and changes[required] is None:
            raise InvalidRequest(f"{required} cannot be null", param=required)
    updated = msgspec.structs.replace(tool, **changes, updated_at=utc_now())
    headers: dict[str, HeaderValue] = {} if patch.headers is UNSET else patch.headers
    check_tool(updated.name, updated.parameters, updated.bound, headers)
    if "url" in changes:
        check_url(updated.url, param="url")
    return updated if patch.headers is UNSET else _with_headers(updated, headers, cipher)


def reveal_headers(tool: HttpTool, cipher: Cipher) -> dict[str, str]:
    if tool.ciphertext is None or tool.key_id is None:
        return {}
    plaintext = cipher.open(SealedBlob(key_id=tool.key_id, blob=tool.ciphertext), _binding(tool.org_id, tool.id))
    return _headers_decoder.decode(plaintext)


def tool_name_taken(name: str) -> Conflict:
    return Conflict(f"a tool named {name!r} already exists in this org", param="name", code="tool_name_taken")
