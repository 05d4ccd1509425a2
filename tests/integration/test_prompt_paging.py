"""The authenticated prompt reads past the first page of a customer's index rows (contract §3).

The `customers` index lists a customer's conversations newest *created* first, while the
prompt offers the one the customer was connected to most recently: an older conversation
may be the answer, however many newer ones there are, and Table storage may answer any
page short (with a continuation token). Set up through the service's use cases on a real
Azurite; a request hook makes storage answer short pages.
"""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import urlsplit

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from local.azurite import Azurite
from shared.domain.conversation import Event, EventType
from shared.domain.settings import Authentication, PublicKey, WidgetSettings
from shared.services import reconnect as reconnect_module
from shared.services.app import App
from shared.services.reconnect import CustomerSession
from tests.conftest import FakeClock, make_service
from tests.keys import public_pem

WIDGET = "w-prompt"
AGENT = "agent-p"
ALICE = "alice@example.com"
PORTAL = "https://portal.example.com/chat"


class ShortPages:
    """A `raw_request_hook` that makes storage answer queries of the customers table with
    at most `rows` rows a page, as Table storage may (it then sends a continuation)."""

    def __init__(self, rows: int) -> None:
        self.rows = rows
        self.table = ""
        self.queries = 0

    def __call__(self, request: Any) -> None:
        http = request.http_request
        if urlsplit(http.url).path.rstrip("/").rsplit("/", 1)[-1].startswith(f"{self.table}("):
            self.queries += 1
            http.url = re.sub(r"(\$|%24)top=\d+", rf"\g<1>top={self.rows}", http.url)


def alice(service: App, key: rsa.RSAPrivateKey) -> CustomerSession:
    """The widget (authenticated) and Alice as its proven customer."""
    authentication = Authentication(
        "https://login.example.com", None, (PublicKey("k1", public_pem(key)),)
    )
    service.settings.put_widget(
        WidgetSettings(WIDGET, True, 10, PORTAL, authentication=authentication),
    )
    return CustomerSession(service.settings.get_widget(WIDGET).value, ALICE)


def event(service: App, conversation_id: str, kind: EventType) -> None:
    service.conversations.apply_event(conversation_id, Event(kind), None)


def test_the_latest_disconnect_is_offered_behind_more_than_20_newer_conversations(
    azurite: Azurite, clock: FakeClock, key1: rsa.RSAPrivateKey
) -> None:
    service = make_service(azurite.connection_string, clock)
    session = alice(service, key1)
    service.conversations.register("c-oldest", WIDGET, AGENT, ALICE)
    newer = [f"c-newer-{number:02d}" for number in range(24)]
    for conversation_id in newer:
        clock.advance(seconds=1)
        service.conversations.register(conversation_id, WIDGET, AGENT, ALICE)
        event(service, conversation_id, EventType.CUSTOMER_DISCONNECTED)
    clock.advance(minutes=1)
    # Created first, disconnected last: the one Alice was connected to most recently.
    event(service, "c-oldest", EventType.CUSTOMER_DISCONNECTED)

    found = service.reconnect.reconnectable(session)

    assert found is not None
    assert found.conversation.conversation_id == "c-oldest"


def test_a_reconnectable_conversation_after_a_short_page_is_offered(
    azurite: Azurite, clock: FakeClock, key1: rsa.RSAPrivateKey
) -> None:
    hook = ShortPages(rows=2)
    service = make_service(azurite.connection_string, clock, raw_request_hook=hook)
    (hook.table,) = [name for name in service.store.table_names if name.endswith("customers")]
    session = alice(service, key1)
    service.conversations.register("c-dropped", WIDGET, AGENT, ALICE)
    event(service, "c-dropped", EventType.CUSTOMER_DISCONNECTED)
    for conversation_id in ("c-ended-1", "c-ended-2"):
        clock.advance(seconds=1)
        service.conversations.register(conversation_id, WIDGET, AGENT, ALICE)
        event(service, conversation_id, EventType.AGENT_ENDED)  # wrap-up: indexed, not offered
    hook.queries = 0

    found = service.reconnect.reconnectable(session)

    assert found is not None
    assert found.conversation.conversation_id == "c-dropped"
    assert hook.queries == 2


def test_a_connected_conversation_ends_the_search_without_reading_further_pages(
    azurite: Azurite, clock: FakeClock, key1: rsa.RSAPrivateKey
) -> None:
    hook = ShortPages(rows=2)
    service = make_service(azurite.connection_string, clock, raw_request_hook=hook)
    (hook.table,) = [name for name in service.store.table_names if name.endswith("customers")]
    session = alice(service, key1)
    for number in range(5):
        service.conversations.register(f"c-dropped-{number}", WIDGET, AGENT, ALICE)
        event(service, f"c-dropped-{number}", EventType.CUSTOMER_DISCONNECTED)
        clock.advance(seconds=1)
    service.conversations.register("c-live", WIDGET, AGENT, ALICE)  # connected: counts as now
    hook.queries = 0

    found = service.reconnect.reconnectable(session)

    assert found is not None
    assert found.conversation.conversation_id == "c-live"
    assert hook.queries == 1  # nothing older can beat "connected now"


def test_past_the_bound_the_oldest_conversations_are_left_out_with_a_warning(
    azurite: Azurite,
    clock: FakeClock,
    key1: rsa.RSAPrivateKey,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(reconnect_module, "PROMPT_MAX_CANDIDATES", 3)
    monkeypatch.setattr(reconnect_module, "PROMPT_PAGE_SIZE", 2)
    service = make_service(azurite.connection_string, clock)
    session = alice(service, key1)
    service.conversations.register("c-beyond", WIDGET, AGENT, ALICE)
    event(service, "c-beyond", EventType.CUSTOMER_DISCONNECTED)
    for number in range(3):
        clock.advance(seconds=1)
        service.conversations.register(f"c-ended-{number}", WIDGET, AGENT, ALICE)
        event(service, f"c-ended-{number}", EventType.AGENT_ENDED)
    caplog.set_level(logging.WARNING, logger="shared.services.reconnect")

    assert service.reconnect.reconnectable(session) is None
    assert [r.getMessage() for r in caplog.records if r.name == "shared.services.reconnect"] == [
        "The prompt considered a customer's 3 newest conversations only"
    ]
