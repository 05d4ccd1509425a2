"""Conversations in each state for the domain's unit tests, built through the domain itself
(`shared/domain/conversation.py`), and the widget settings and moments they use.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from shared.domain.conversation import (
    Conversation,
    Event,
    EventType,
    State,
    apply_event,
    new_conversation,
)
from shared.domain.settings import WidgetSettings

T0 = datetime(2026, 3, 1, 9, 0, 0, tzinfo=UTC)


AUTO_CLOSE = timedelta(minutes=15)


LIMIT_MINUTES = 10


AGENT = "agent-1"


WIDGET = "widget-1"


ENABLED = WidgetSettings(
    widget_id=WIDGET,
    reconnect_enabled=True,
    time_limit_minutes=LIMIT_MINUTES,
    portal_url="https://contoso.example/support",
)


DISABLED = dataclasses.replace(ENABLED, reconnect_enabled=False)


# Moments of the standard story: registered at T0, disconnected at DISCONNECT_AT.
DISCONNECT_AT = T0 + timedelta(minutes=1)


DEADLINE = DISCONNECT_AT + timedelta(minutes=LIMIT_MINUTES)


SECOND = timedelta(seconds=1)

# Inside the reconnect window of every disconnected builder, so reconnects are allowed.
MATRIX_NOW = DISCONNECT_AT + timedelta(minutes=5)


def ev(event_type: EventType, agent_id: str | None = None) -> Event:
    return Event(type=event_type, agent_id=agent_id)


def queued() -> Conversation:
    """open, no agent yet, customer connected."""
    return new_conversation("conv-1", WIDGET, None, "cust-key", T0)


def active() -> Conversation:
    """active with an agent, customer connected."""
    return new_conversation("conv-1", WIDGET, AGENT, "cust-key", T0)


def disconnected() -> Conversation:
    """active, customer disconnected within the window (reconnect enabled)."""
    return apply_event(active(), ev(EventType.CUSTOMER_DISCONNECTED), ENABLED, DISCONNECT_AT)


def requeued_disconnected() -> Conversation:
    """open after agent_closed, customer still within the reconnect window."""
    at = DISCONNECT_AT + timedelta(minutes=2)
    return apply_event(disconnected(), ev(EventType.AGENT_CLOSED), ENABLED, at)


def requeued_connected() -> Conversation:
    """open after agent_closed while the customer was still connected."""
    return apply_event(active(), ev(EventType.AGENT_CLOSED), ENABLED, T0 + timedelta(minutes=1))


def wrapped_up() -> Conversation:
    """wrap_up after the agent pressed End."""
    return apply_event(active(), ev(EventType.AGENT_ENDED), ENABLED, T0 + timedelta(minutes=3))


def closed() -> Conversation:
    """closed after the agent closed the wrap-up."""
    return apply_event(wrapped_up(), ev(EventType.AGENT_CLOSED), ENABLED, T0 + timedelta(minutes=4))


def waiting() -> Conversation:
    """`waiting` is reserved for asynchronous channels; live chat never enters it."""
    return dataclasses.replace(queued(), state=State.WAITING)
