"""Who may read a thread, for the cases the HTTP tests cannot stage: threads stored before owners
were recorded (no owner) are for the org's admins and the master key only."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from junction.domain.access import check_thread_reader, thread_owner
from junction.errors import NotFound
from junction.plugins.protocols import Principal
from junction.stores.documents.protocol import Thread

NOW = datetime.now(UTC)
CHAT = Principal(id="key:k_chat", kind="key", org_id="o", scopes=frozenset({"chat"}))
ADMIN = Principal(id="key:k_admin", kind="key", org_id="o", scopes=frozenset({"chat", "admin"}))
MASTER = Principal(id="master", kind="master", scopes=frozenset({"chat", "admin"}))


def thread(owner: str | None) -> Thread:
    return Thread(id="th_1", org_id="o", owner=owner, created_at=NOW, updated_at=NOW)


def test_a_thread_without_an_owner_is_for_admins_only() -> None:
    for reader in (ADMIN, MASTER):
        check_thread_reader(reader, thread(None))
    with pytest.raises(NotFound) as caught:
        check_thread_reader(CHAT, thread(None), param="thread_id")
    assert caught.value.param == "thread_id"


def test_an_owner_is_the_callers_id_or_a_digest_of_an_unstorable_one() -> None:
    check_thread_reader(CHAT, thread(thread_owner(CHAT)))
    odd = Principal(id="jwt:a\x00b", kind="jwt", org_id="o", scopes=frozenset({"chat"}))
    assert thread_owner(odd).startswith("sha256:") and len(thread_owner(odd)) <= 200
    check_thread_reader(odd, thread(thread_owner(odd)))
    with pytest.raises(NotFound):
        check_thread_reader(CHAT, thread(thread_owner(odd)))
