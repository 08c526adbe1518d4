"""Every HTTP route of the tenancy features, for ``create_app``."""

from __future__ import annotations

from litestar.handlers import HTTPRouteHandler

from junction.domain.bridges.chat import SubmitBridgeJob, bridge_chat_routes
from junction.domain.bridges.controllers import bridge_routes
from junction.domain.credentials.controllers import credential_routes
from junction.domain.keys.controllers import key_routes
from junction.domain.orgs.controllers import org_routes
from junction.domain.responses.controllers import responses_routes
from junction.domain.services import Domain
from junction.domain.threads.controllers import thread_routes
from junction.domain.tools.controllers import tool_routes
from junction.pipeline import Gateway


def domain_routes(gateway: Gateway, domain: Domain,
                  submit_bridge_job: SubmitBridgeJob | None = None) -> list[HTTPRouteHandler]:
    return [
        *org_routes(gateway, domain),
        *key_routes(gateway, domain),
        *credential_routes(gateway, domain),
        *bridge_routes(gateway, domain),
        *bridge_chat_routes(gateway, domain, submit_bridge_job),
        *thread_routes(gateway, domain),
        *responses_routes(gateway, domain),
        *tool_routes(gateway, domain),
    ]
