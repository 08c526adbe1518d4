"""Who may touch which org.

The master key (and the anonymous caller when auth is disabled) acts on any org; every other
caller (API key, JWT) is confined to its own ``org_id``. A record of another org is reported as
missing (404), never as forbidden, so ids of other orgs cannot be probed.
"""

from __future__ import annotations

from collections.abc import Mapping

from app.errors import InvalidRequest, NotFound, PermissionDenied
from app.plugins.protocols import Principal

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


def require_scope(principal: Principal, scope: str) -> None:
    if scope not in principal.scopes:
        raise PermissionDenied(f"this credential lacks the {scope!r} scope", code="insufficient_scope")


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
