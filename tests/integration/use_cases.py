"""What the service-layer rule tests share: a widget, an agent and short calls of the App's
use cases (`app.settings`, `app.conversations`, `app.reconnect`, `app.timer`) over a real
Azurite, with the test's movable clock.

Outcomes are read back from storage (`stored`), not from the use case's answer, so each
test checks what was kept; `held` is the agent's capacity as the use case verifies it,
`capacity_index` the raw index rows behind it.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from shared.domain.conversation import Conversation, Event, EventType
from shared.domain.errors import InvalidTransition, LinkUnavailable
from shared.domain.settings import Authentication, WidgetSettings
from shared.services.app import App
from shared.services.reconnect import ContinueResult, CustomerSession, ReconnectContext
from shared.storage.entities import Versioned

WIDGET = "w"


AGENT = "agent-1"


LIMIT_MINUTES = 7


LIMIT = timedelta(minutes=LIMIT_MINUTES)


PORTAL = "https://contoso.example/chat?lang=en"


REDIRECT = "https://contoso.example/new-chat"


UNKNOWN_LINK = "nobody-here.0." + "A" * 38


def put_widget(
    app: App,
    widget_id: str = WIDGET,
    *,
    reconnect_enabled: bool = True,
    redirect_url: str | None = None,
    authentication: Authentication | None = None,
) -> WidgetSettings:
    settings = WidgetSettings(
        widget_id, reconnect_enabled, LIMIT_MINUTES, PORTAL, redirect_url, authentication
    )
    saved, _ = app.settings.put_widget(settings)
    return saved.value


def register(
    app: App,
    conversation_id: str,
    *,
    widget: str = WIDGET,
    agent: str | None = AGENT,
    customer: str | None = None,
) -> Conversation:
    result, _ = app.conversations.register(conversation_id, widget, agent, customer)
    return result.conversation


def send(
    app: App,
    conversation_id: str,
    event_type: str,
    *,
    agent_id: str | None = None,
    event_id: str | None = None,
) -> Conversation:
    """Apply a platform event; the conversation the use case answers."""
    event = Event(EventType(event_type), agent_id)
    return app.conversations.apply_event(conversation_id, event, event_id).conversation


def refused(
    app: App,
    conversation_id: str,
    event_type: str,
    *,
    agent_id: str | None = None,
    event_id: str | None = None,
) -> str:
    """Send an event that must be refused; the state the refusal names."""
    with pytest.raises(InvalidTransition) as refusal:
        send(app, conversation_id, event_type, agent_id=agent_id, event_id=event_id)
    return refusal.value.state


def stored(app: App, conversation_id: str) -> Versioned[Conversation]:
    """The conversation as stored, with its ETag (an unchanged ETag: nothing was written)."""
    found = app.store.get_conversation(conversation_id)
    assert found is not None, conversation_id
    return found


def held(app: App, agent: str = AGENT) -> list[str]:
    """Ids of the conversations holding the agent's capacity (contract §2.4)."""
    return sorted(c.conversation_id for c in app.conversations.agent_capacity(agent))


def capacity_index(app: App, agent: str = AGENT) -> list[str]:
    """The capacity index rows of an agent, as stored."""
    return sorted(app.store.capacity_rows(agent))


def link_of(app: App, conversation_id: str) -> str:
    """The conversation's current reconnect id."""
    return app.signer.reconnect_id(stored(app, conversation_id).value)


def disconnected(
    app: App, conversation_id: str, *, widget: str = WIDGET, customer: str | None = None
) -> Conversation:
    """A registered active conversation whose customer just disconnected."""
    register(app, conversation_id, widget=widget, customer=customer)
    return send(app, conversation_id, "customer_disconnected")


def session(app: App, widget: str = WIDGET) -> CustomerSession:
    """An anonymous widget's caller."""
    return app.reconnect.customer_session(widget, None)


def context(app: App, reconnect_id: str, widget: str = WIDGET) -> ReconnectContext:
    return app.reconnect.reconnect_context(session(app, widget), reconnect_id)


def resume(app: App, reconnect_id: str, widget: str = WIDGET) -> ContinueResult:
    return app.reconnect.continue_conversation(session(app, widget), reconnect_id)


def gone(app: App, reconnect_id: str, widget: str = WIDGET) -> str | None:
    """Continue a link that must be unavailable; the redirect URL the refusal carries."""
    with pytest.raises(LinkUnavailable) as refusal:
        resume(app, reconnect_id, widget)
    return refusal.value.redirect_url


def decline(app: App, reconnect_id: str, widget: str = WIDGET) -> None:
    app.reconnect.decline(session(app, widget), reconnect_id)


def unavailable(redirect: str | None) -> ReconnectContext:
    """What the widget learns about any link that cannot be used."""
    return ReconnectContext(False, None, None, None, redirect)
