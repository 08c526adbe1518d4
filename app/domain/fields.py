"""Checks of the names and values an admin gives (org and key names, scopes, limits), shared by
the admin API and the ``junction`` admin commands so both refuse the same input with the same
message naming the field. No Litestar here: the CLI imports it."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from junction.errors import InvalidRequest

if TYPE_CHECKING:
    from junction.domain.keys.schemas import NewKeyBody
    from junction.stores.documents.protocol import NewApiKey

#: What the stores hold in a name or model column.
MAX_NAME_CHARS = 200
#: The largest count (``rpm``, ``tpm``, a version number) the stores hold.
MAX_COUNT = 2**31 - 1
#: The scopes a key or token can carry: ``chat`` calls models, ``admin`` manages its org.
KNOWN_SCOPES = ("chat", "admin")


def check_length(field: str, value: str, limit: int = MAX_NAME_CHARS) -> str:
    if len(value) > limit:
        raise InvalidRequest(
            f"{field}: must be at most {limit} characters", param=field, code="invalid_value"
        )
    return value


def check_name(name: str, field: str = "name") -> str:
    """A display name: 1 to ``MAX_NAME_CHARS`` characters once trimmed; returns it trimmed."""
    trimmed = name.strip()
    if not trimmed:
        raise InvalidRequest(f"{field}: must not be empty", param=field, code="invalid_value")
    return check_length(field, trimmed)


def check_scopes(scopes: list[str], field: str = "scopes") -> list[str]:
    for index, scope in enumerate(scopes):
        if scope not in KNOWN_SCOPES:
            raise InvalidRequest(
                f"{field}[{index}]: unknown scope {scope!r} (known: {', '.join(KNOWN_SCOPES)})",
                param=f"{field}[{index}]", code="invalid_value")
    return scopes


def check_limits(body: Any) -> None:
    """An org's, a bridge's or a key's ``rpm``, ``tpm`` (whole, 0 to ``MAX_COUNT``) and
    ``budget_usd`` (finite, not negative), where set."""
    for field in ("rpm", "tpm", "budget_usd"):
        value = getattr(body, field, None)
        if not isinstance(value, int | float) or isinstance(value, bool):
            continue
        if not math.isfinite(value):  # `--budget-usd nan` was stored as no budget at all
            raise InvalidRequest(f"{field}: must be a finite number", param=field, code="invalid_value")
        if value < 0:
            raise InvalidRequest(f"{field}: must not be negative", param=field, code="invalid_value")
        if field != "budget_usd" and value > MAX_COUNT:
            raise InvalidRequest(f"{field}: must be at most {MAX_COUNT}", param=field, code="invalid_value")


def validated_key_spec(body: NewKeyBody) -> NewApiKey:
    from junction.stores.documents.protocol import NewApiKey

    name = check_name(body.name)
    check_scopes(body.scopes)
    check_limits(body)
    expires_at = body.expires_at
    if expires_at is not None:
        if expires_at.tzinfo is None:
            expires_at = expires_at.replace(tzinfo=UTC)
        if expires_at <= datetime.now(UTC):
            raise InvalidRequest(
                "expires_at: must be in the future", param="expires_at", code="invalid_value"
            )
    return NewApiKey(
        name=name,
        scopes=body.scopes,
        models=body.models,
        rpm=body.rpm,
        tpm=body.tpm,
        budget_usd=body.budget_usd,
        budget_period=body.budget_period,
        expires_at=expires_at,
    )
