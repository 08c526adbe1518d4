"""The admin console's pieces that need no server: its config, sessions, and forms."""

from __future__ import annotations

import time

import pytest

from junction.domain.keys.schemas import NewKeyBody
from junction.errors import ConfigError, InvalidRequest
from junction.middleware.admin_ui.forms import decode_form
from junction.middleware.admin_ui.sessions import MemorySessions, Session, digest_of
from junction.plugins.manager import load_plugins
from junction.plugins.protocols import Principal
from junction.settings import settings_from_mapping
from junction.stores.documents.protocol import OrgPatch

MASTER = Principal(id="master", kind="master", scopes=frozenset({"admin", "chat"}))


def test_the_console_is_on_by_default_and_switched_off_in_config() -> None:
    listed = load_plugins(settings_from_mapping({}), instantiate=False)
    assert next(info for info in listed.infos if info.name == "admin-ui").enabled
    off = load_plugins(settings_from_mapping({"middleware": {"admin-ui": {"enabled": False}}}), instantiate=False)
    assert not next(info for info in off.infos if info.name == "admin-ui").enabled


def test_a_bad_session_lifetime_is_a_config_error_naming_the_key() -> None:
    settings = settings_from_mapping({"middleware": {"admin-ui": {"session_ttl_seconds": 5}}})
    with pytest.raises(ConfigError, match=r"middleware.admin-ui.session_ttl_seconds"):
        load_plugins(settings, instantiate=False)


async def test_a_memory_session_ends_when_it_expires_and_on_sign_out() -> None:
    sessions = MemorySessions()
    await sessions.put(digest_of("live"), Session(principal=MASTER, csrf_token="c", expires_at=time.time() + 60), 60)
    await sessions.put(digest_of("old"), Session(principal=MASTER, csrf_token="c", expires_at=time.time() - 1), 1)
    assert (await sessions.get(digest_of("live"))) is not None
    assert await sessions.get(digest_of("old")) is None
    await sessions.delete(digest_of("live"))
    assert await sessions.get(digest_of("live")) is None


def test_a_form_is_checked_as_the_api_body_would_be() -> None:
    body = decode_form({"name": "k", "scopes": "chat, admin", "models": "", "rpm": "10", "budget_usd": "2.5"},
                       NewKeyBody, lists=("scopes", "models"))
    assert (body.scopes, body.models, body.rpm, body.budget_usd) == (["chat", "admin"], None, 10, 2.5)
    with pytest.raises(InvalidRequest) as raised:
        decode_form({"name": "k", "rpm": "ten"}, NewKeyBody)
    assert raised.value.param == "rpm"
    cleared = decode_form({"rpm": "", "name": "n"}, OrgPatch, clearable=("rpm",))
    assert cleared.rpm is None and cleared.name == "n"
