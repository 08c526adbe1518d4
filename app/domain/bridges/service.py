"""Running bridges: finding one for a caller (cached per worker, dropped on change), and turning a
call into the chat request the pipeline routes.

A bridge call is a chat request whose ``model`` is ``bridge/<id-or-slug>``; the pipeline hands it
to :meth:`BridgeService.expand`, which fills the prompt, merges the bridge's parameters *under* the
caller's own fields, sets the bridge's model and fallback, and records which version ran.
"""

from __future__ import annotations

from typing import Any

import msgspec

from junction.domain.access import ORG_HEADER, could_be_id, is_unconfined, org_for
from junction.domain.bridges.templating import render
from junction.domain.invalidation import OrgCache, OrgIdsCache
from junction.domain.rag.context import CONTEXT_HEADER, CONTEXT_VARIABLE, last_user_text
from junction.domain.rag.service import KnowledgeService
from junction.errors import InvalidRequest, NotFound, PermissionDenied
from junction.formats.openai import decode_chat_request
from junction.plugins.call import Call
from junction.plugins.protocols import Principal
from junction.plugins.services import BRIDGE_MODEL_PREFIX
from junction.schemas.chat import ChatRequest, Message
from junction.settings import LimitsSettings
from junction.stores.documents.bridges import BridgeRepository, ResolvedBridge
from junction.stores.documents.protocol import OrgRepository
from junction.stores.notify import ChangeBus

#: Request field carrying the template variables on ``/v1/chat/completions`` (not sent upstream).
VARIABLES_FIELD = "variables"
_NOT_OVERRIDABLE = ("model", "messages", "extra_fields")
_variables_decoder = msgspec.json.Decoder(dict[str, Any])


class CallVariables(msgspec.Struct, frozen=True):
    """A bridge call's ``variables``, kept in ``call.state`` for later stages (the tool loop fills
    bound tool arguments from them)."""

    values: dict[str, Any]


class _Missing(msgspec.Struct, frozen=True):
    """A cached "no such bridge in this org": the master key's lookup across orgs asks every org,
    and all but one answer this, so misses are cached too (dropped on any bridge change)."""

    message: str
    param: str | None
    code: str | None


class BridgeService:
    def __init__(
        self, bridges: BridgeRepository, orgs: OrgRepository, changes: ChangeBus | None, *, ttl: float,
        limits: LimitsSettings | None = None, knowledge: KnowledgeService | None = None,
    ) -> None:
        self._limits = limits or LimitsSettings()
        self._knowledge = knowledge
        self._bridges = bridges
        self._org_ids = OrgIdsCache(orgs, changes, ttl=ttl)
        self._cache: OrgCache[ResolvedBridge | _Missing] = OrgCache(
            "bridge",
            changes,
            ttl=ttl,
            record_id=lambda r: r.bridge.id if isinstance(r, ResolvedBridge) else None,
        )

    def start(self) -> None:
        self._org_ids.start()
        self._cache.start()

    def close(self) -> None:
        self._cache.close()
        self._org_ids.close()

    async def resolve(self, org_id: str, id_or_slug: str) -> ResolvedBridge:
        """The bridge and the config calls use (cached); NotFound for another org's or none."""
        found = await self._cache.get(org_id, id_or_slug, lambda: self._load(org_id, id_or_slug))
        if isinstance(found, _Missing):
            raise NotFound(found.message, param=found.param, code=found.code)
        return found

    async def _load(self, org_id: str, id_or_slug: str) -> ResolvedBridge | _Missing:
        try:
            return await self._bridges.resolve(org_id, id_or_slug)
        except NotFound as error:
            return _Missing(error.message, error.param, error.code)

    async def find(self, principal: Principal, requested_org: str | None, id_or_slug: str) -> ResolvedBridge:
        """Resolve for a caller: confined callers look in their org only; the master key looks in
        the org it names, else in every org (a slug found in several is ambiguous)."""
        if not could_be_id(id_or_slug):
            raise NotFound("bridge not found", param="model", code="bridge_not_found")
        org = org_for(principal, requested_org, what="bridge")
        if org is not None:
            return await self.resolve(org, id_or_slug)
        if not is_unconfined(principal):
            raise NotFound("bridge not found", code="not_found")
        found: list[ResolvedBridge] = []
        for candidate in await self._org_ids.all():
            try:
                found.append(await self.resolve(candidate, id_or_slug))
            except NotFound:
                continue
        if not found:
            raise NotFound(f"bridge {id_or_slug!r} not found", param="model", code="bridge_not_found")
        if len(found) > 1:
            raise InvalidRequest(
                f"bridge {id_or_slug!r} exists in several orgs; name one with the "
                f"{ORG_HEADER} header or org_id",
                param="org_id",
                code="ambiguous_bridge",
            )
        return found[0]

    async def everywhere(self, id_or_slug: str) -> list[ResolvedBridge]:
        """The bridges of every org with this id or slug (a chatbot's CORS preflight carries no
        credential that names the org)."""
        if not could_be_id(id_or_slug):
            return []
        found: list[ResolvedBridge] = []
        for org_id in await self._org_ids.all():
            try:
                found.append(await self.resolve(org_id, id_or_slug))
            except NotFound:
                continue
        return found

    async def find_active(self, principal: Principal, requested_org: str | None, id_or_slug: str, *,
                          param: str | None = None) -> ResolvedBridge:
        """:meth:`find`, refusing (403) a paused bridge."""
        resolved = await self.find(principal, requested_org, id_or_slug)
        if resolved.bridge.status == "paused":
            raise PermissionDenied(f"bridge {resolved.bridge.slug!r} is paused", param=param, code="bridge_paused")
        return resolved

    async def expand(self, call: Call, request: ChatRequest) -> ChatRequest:
        """The routed request for a ``bridge/<id-or-slug>`` model (see the module docstring). A
        bridge the caller already resolved (``call.state[ResolvedBridge]``, as the bridge chat
        route does) is used as it is: a call looks its bridge up once."""
        resolved = call.state.get(ResolvedBridge)
        if resolved is None:
            id_or_slug = request.model[len(BRIDGE_MODEL_PREFIX) :]
            if not id_or_slug:
                raise InvalidRequest(
                    "model: name a bridge as 'bridge/<id-or-slug>'", param="model", code="model_not_found"
                )
            requested = call.org_id or call.headers.get(ORG_HEADER)
            resolved = await self.find_active(call.principal, requested, id_or_slug, param="model")
            call.state[ResolvedBridge] = resolved  # later stages (limits, budgets) read the bridge
        bridge = resolved.bridge
        extra = dict(request.extra_fields or {})
        variables = _decode_variables(extra.pop(VARIABLES_FIELD, None))
        call.state[CallVariables] = CallVariables(variables)
        overrides = msgspec.to_builtins(msgspec.structs.replace(request, extra_fields=None, messages=[]))
        for name in _NOT_OVERRIDABLE:
            overrides.pop(name, None)
        call.org_id = bridge.org_id
        call.bridge_id, call.bridge_version = bridge.id, resolved.version
        call.fallback_model = resolved.config.fallback_model
        knowledge = resolved.config.knowledge
        if knowledge is not None and knowledge.mode == "prompt" and self._knowledge is not None:
            # The bridge's retrieved context wins over a caller's own "context" variable.
            variables[CONTEXT_VARIABLE], cited = await self._knowledge.context(
                call.principal, bridge.org_id, knowledge, last_user_text(request.messages))
            call.response_headers[CONTEXT_HEADER] = ",".join(cited)
        return build_request(resolved, variables, request.messages, overrides, extra, self._limits)


def _decode_variables(raw: msgspec.Raw | None) -> dict[str, Any]:
    if raw is None:
        return {}
    try:
        return _variables_decoder.decode(raw)
    except msgspec.DecodeError:
        raise InvalidRequest(
            "variables: must be an object of name → value", param="variables", code="invalid_value"
        ) from None


def build_request(
    resolved: ResolvedBridge,
    variables: dict[str, Any],
    messages: list[Message],
    overrides: dict[str, Any],
    extra: dict[str, msgspec.Raw],
    limits: LimitsSettings | None = None,
) -> ChatRequest:
    """Bridge params, then the caller's fields over them; the bridge's system prompt first."""
    config = resolved.config
    body: dict[str, Any] = {k: v for k, v in config.params.items() if k not in _NOT_OVERRIDABLE}
    if config.tools:
        body["tools"] = msgspec.to_builtins(config.tools)
    if config.response_format is not None:
        body["response_format"] = msgspec.to_builtins(config.response_format)
    body.update(extra)
    body.update(overrides)
    limits = limits or LimitsSettings()
    prompt = render(config.prompt, config.variables, variables, resolved.bridge.slug,
                    max_chars=limits.max_prompt_chars, max_variable_chars=limits.max_variable_chars,
                    check_unknown=not config.server_tools)  # the agents stage checks, with bound names
    system = [{"role": "system", "content": prompt}] if prompt else []
    body["model"] = config.model
    body["messages"] = system + msgspec.to_builtins(messages)
    try:
        return decode_chat_request(msgspec.json.encode(body))
    except InvalidRequest as error:
        raise InvalidRequest(
            f"bridge {resolved.bridge.slug!r}: {error.message}", param=error.param, code=error.code
        ) from None
