"""``[middleware.admin-ui]``: the admin console at ``/ui``."""

from __future__ import annotations

from typing import Annotated

import msgspec

from junction.plugins.protocols import MiddlewareConfig


class AdminUiConfig(MiddlewareConfig, kw_only=True, forbid_unknown_fields=True):
    #: How long a console session lasts after sign-in, in seconds (then the admin signs in again).
    session_ttl_seconds: Annotated[int, msgspec.Meta(ge=60, le=7 * 86400)] = 8 * 3600
    #: ``Secure`` on the session cookie: ``None`` (default) sets it when the request came over TLS;
    #: ``true``/``false`` force it (``true`` behind a TLS-terminating proxy).
    secure_cookie: bool | None = None
