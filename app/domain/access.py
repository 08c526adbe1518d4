"""Who may touch which org.

The master key (and the anonymous caller when auth is disabled) acts on any org; every other
caller (API key, JWT) is confined to its own ``org_id``. A record of another org is reported as
missing (404), never as forbidden, so ids of other orgs cannot be probed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from junction.errors import InvalidRequest, NotFound, PermissionDenied
from junction.plugins.protocols import Principal
from junction.stores.documents.protocol import Thread

UNCONFINED_KINDS = frozenset({"master", "anonymous"})
#: Header naming the org a master-key call acts on (the admin API also takes ``?org_id=``).
ORG_HEADER = "x-junction-org-id"
#: Longer than any id, slug or provider name the stores issue or accept.
MAX_ID_CHARS = 200


def could_be_id(value: str) -> bool:
    """Whether ``value`` could name a stored record. One with a NUL character (which PostgreSQL
    refuses in text) or longer than any id names nothing, and must not reach the store."""
    return len(value) <= MAX_ID_CHARS and "\x00" not in value


def is_unconfined(principal: Principal) -> bool:
    return principal.kind in UNCONFINED_KINDS


def confined_org(principal: Principal) -> str:
    """The org of a confined caller; a key or token without one may touch no org's data."""
    if principal.org_id is None:
        raise PermissionDenied("this credential belongs to no org", code="no_org")
    return principal.org_id


def requested_org(
    query: Mapping[str, str], headers: Mapping[str, str], body_org: str | None = None
) -> str | None:
    return body_org or query.get("org_id") or headers.get(ORG_HEADER) or None


def org_for(principal: Principal, requested: str | None, *, what: str = "record") -> str | None:
    """The org a call acts on: a confined caller's own (naming another org is a 404), or for an
    unconfined caller the one it named (``None`` when it named none)."""
    if requested is not None and not could_be_id(requested):
        raise NotFound(f"{what} not found", param="org_id", code="not_found")
    if is_unconfined(principal):
        return requested
    own = confined_org(principal)
    if requested is not None and requested != own:
        raise NotFound(f"{what} not found", code="not_found")
    return own


def org_required(principal: Principal, requested: str | None, *, what: str = "record") -> str:
    org = org_for(principal, requested, what=what)
    if org is None:
        raise InvalidRequest(
            "org_id: required when calling with the master key", param="org_id", code="missing_org_id"
        )
    return org


def thread_owner(principal: Principal) -> str:
    """What a thread records as who started it: the caller's id (``key:<id>``, ``jwt:<subject>``,
    ``master``), or a digest of it when a token's subject is too long or odd to store as is."""
    if could_be_id(principal.id):
        return principal.id
    return "sha256:" + hashlib.sha256(principal.id.encode("utf-8", "surrogatepass")).hexdigest()


def check_thread_reader(principal: Principal, thread: Thread, *, param: str | None = None) -> None:
    """A thread is read and continued by who started it, by its org's admins and by the master
    key; to anyone else it is missing (404), so thread ids of others cannot be probed. A thread
    with no owner (from before owners were recorded) is for admins only."""
    if is_unconfined(principal) or "admin" in principal.scopes:
        return
    if thread.owner is None or thread.owner != thread_owner(principal):
        raise NotFound(f"thread {thread.id!r} not found", param=param, code="thread_not_found")
