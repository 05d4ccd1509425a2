"""The conversation's rules as pure functions over immutable values: states, events,
transitions, deadlines and capacity; no I/O, no Azure."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from shared.domain.errors import InvalidTransition
from shared.domain.settings import WidgetSettings

# How many applied eventIds a conversation remembers for safe retries: a retry of any of
# the last EVENT_ID_MEMORY distinct eventIds applied to it is recognised, an older one is
# judged again. Platforms retry within seconds, so the most recent few dozen are what
# matters. With MAX_EVENT_ID_LENGTH printable characters each (at most 2 UTF-16 units a
# character as stored), the memory takes at most 16,577 of the 32,768 UTF-16 units Table
# storage allows a property (tests/integration/test_azure_limits.py).
EVENT_ID_MEMORY = 64
MAX_EVENT_ID_LENGTH = 128


class State(StrEnum):
    """Omnichannel's conversation states; `waiting` is reserved for asynchronous channels."""

    OPEN = "open"
    ACTIVE = "active"
    WAITING = "waiting"
    WRAP_UP = "wrap_up"
    CLOSED = "closed"


class EventType(StrEnum):
    """Lifecycle events the chat platform reports."""

    AGENT_ASSIGNED = "agent_assigned"
    CUSTOMER_DISCONNECTED = "customer_disconnected"
    CUSTOMER_RECONNECTED = "customer_reconnected"
    AGENT_ENDED = "agent_ended"
    CUSTOMER_ENDED = "customer_ended"
    AGENT_CLOSED = "agent_closed"


class EndReason(StrEnum):
    """Why a conversation last moved into wrap_up or closed."""

    CUSTOMER_DISCONNECTED = "customer_disconnected"
    AGENT_ENDED = "agent_ended"
    CUSTOMER_ENDED = "customer_ended"
    AGENT_CLOSED = "agent_closed"
    RECONNECT_TIMEOUT = "reconnect_timeout"
    AUTO_CLOSED = "auto_closed"
    CUSTOMER_DECLINED = "customer_declined"


@dataclass(frozen=True)
class Event:
    """A lifecycle event; `agent_id` is only meaningful for agent_assigned."""

    type: EventType
    agent_id: str | None = None


@dataclass(frozen=True)
class Conversation:
    """One live-chat conversation as the reconnect feature sees it."""

    conversation_id: str
    widget_id: str
    state: State
    agent_id: str | None
    # A keyed hash of the customer's `sub`; the raw id is never kept.
    customer_key: str | None
    customer_connected: bool
    disconnected_at: datetime | None
    reconnect_deadline: datetime | None
    end_reason: EndReason | None
    # When the conversation last moved into wrap_up; the auto-close clock starts here.
    wrap_up_at: datetime | None
    # Bumped to revoke the reconnect link; the link is derived from it, never stored.
    link_epoch: int
    created_at: datetime
    updated_at: datetime
    event_ids: tuple[str, ...] = ()
    # The agent the customer was with when they disconnected: a continue is "same agent"
    # only if that agent still holds the conversation (not after re-queue and re-assign).
    disconnected_from: str | None = None
    # Stored changes so far (1 = registration) and the ids of the last events' changes,
    # oldest first, the last one `sequence`'s (shared.domain.events).
    sequence: int = 1
    change_ids: tuple[str, ...] = ()

    @property
    def holds_capacity(self) -> bool:
        """An agent's capacity is held exactly while it is assigned to an active conversation."""
        return self.state is State.ACTIVE and self.agent_id is not None


def new_conversation(
    conversation_id: str,
    widget_id: str,
    agent_id: str | None,
    customer_key: str | None,
    now: datetime,
) -> Conversation:
    """A freshly registered conversation: open when queued, active when an agent is assigned."""
    return Conversation(
        conversation_id=conversation_id,
        widget_id=widget_id,
        state=State.ACTIVE if agent_id else State.OPEN,
        agent_id=agent_id,
        customer_key=customer_key,
        customer_connected=True,
        disconnected_at=None,
        reconnect_deadline=None,
        end_reason=None,
        wrap_up_at=None,
        link_epoch=0,
        created_at=now,
        updated_at=now,
    )


def _touch(conversation: Conversation, now: datetime, **changes: object) -> Conversation:
    return dataclasses.replace(conversation, updated_at=now, **changes)  # type: ignore[arg-type]


def _end(
    conversation: Conversation, state: State, reason: EndReason, now: datetime
) -> Conversation:
    """Move into wrap_up or closed: the customer is gone and no reconnect is possible."""
    wrap_up_at = now if state is State.WRAP_UP else conversation.wrap_up_at
    return _touch(
        conversation,
        now,
        state=state,
        end_reason=reason,
        customer_connected=False,
        reconnect_deadline=None,
        wrap_up_at=wrap_up_at,
    )


def _refuse(conversation: Conversation) -> InvalidTransition:
    return InvalidTransition(conversation.state.value)


def within_deadline(conversation: Conversation, now: datetime) -> bool:
    """True while a disconnected customer may still come back (checked to the second)."""
    deadline = conversation.reconnect_deadline
    return deadline is not None and now < deadline


def can_continue(conversation: Conversation, widget: WidgetSettings, now: datetime) -> bool:
    """True when a continue would succeed now (the link and prompt's notion of reconnectable)."""
    if not widget.reconnect_enabled or conversation.widget_id != widget.widget_id:
        return False
    if conversation.state not in (State.ACTIVE, State.OPEN):
        return False
    return conversation.customer_connected or within_deadline(conversation, now)


def continue_conversation(conversation: Conversation, now: datetime) -> Conversation:
    """The customer is back: connected again, deadline cleared. Idempotent while connected."""
    if conversation.customer_connected:
        return conversation
    return _touch(
        conversation,
        now,
        customer_connected=True,
        disconnected_at=None,
        reconnect_deadline=None,
        disconnected_from=None,
    )


def returns_to_same_agent(conversation: Conversation) -> bool:
    """True when continuing now brings the customer back to the agent they were with."""
    if not conversation.holds_capacity:
        return False
    # None: the customer never left (a page refresh), so the agent is the same one.
    return conversation.disconnected_from in (None, conversation.agent_id)


def decline(conversation: Conversation, now: datetime) -> Conversation:
    """The customer chose a fresh conversation: the previous one ends (capacity released)."""
    if conversation.state is State.ACTIVE:
        return _end(conversation, State.WRAP_UP, EndReason.CUSTOMER_DECLINED, now)
    if conversation.state is State.OPEN:
        return _end(conversation, State.CLOSED, EndReason.CUSTOMER_DECLINED, now)
    raise _refuse(conversation)


def apply_event(
    conversation: Conversation, event: Event, widget: WidgetSettings, now: datetime
) -> Conversation:
    """The conversation after a platform event, or InvalidTransition carrying the state.

    Returns the same object when the event applies but changes nothing (a repeated
    disconnect or reconnect).
    """
    state = conversation.state
    match event.type:
        case EventType.AGENT_ASSIGNED:
            if state is not State.OPEN or not event.agent_id:
                raise _refuse(conversation)
            return _touch(conversation, now, state=State.ACTIVE, agent_id=event.agent_id)
        case EventType.CUSTOMER_DISCONNECTED:
            if state not in (State.OPEN, State.ACTIVE):
                raise _refuse(conversation)
            if not conversation.customer_connected:
                # The first disconnect set the deadline; the window is never extended.
                return conversation
            if state is State.OPEN:
                return _end(conversation, State.CLOSED, EndReason.CUSTOMER_DISCONNECTED, now)
            if not widget.reconnect_enabled:
                return _end(conversation, State.WRAP_UP, EndReason.CUSTOMER_DISCONNECTED, now)
            return _touch(
                conversation,
                now,
                customer_connected=False,
                disconnected_at=now,
                reconnect_deadline=now + widget.time_limit,
                disconnected_from=conversation.agent_id,
            )
        case EventType.CUSTOMER_RECONNECTED:
            # Same as the widget's continue, so it applies wherever a continue would.
            if state not in (State.OPEN, State.ACTIVE):
                raise _refuse(conversation)
            if conversation.customer_connected:
                return conversation
            if not within_deadline(conversation, now):
                raise _refuse(conversation)
            return continue_conversation(conversation, now)
        case EventType.AGENT_ENDED:
            if state is not State.ACTIVE:
                raise _refuse(conversation)
            return _end(conversation, State.WRAP_UP, EndReason.AGENT_ENDED, now)
        case EventType.CUSTOMER_ENDED:
            if state is State.OPEN:
                return _end(conversation, State.CLOSED, EndReason.CUSTOMER_ENDED, now)
            if state is State.ACTIVE:
                return _end(conversation, State.WRAP_UP, EndReason.CUSTOMER_ENDED, now)
            raise _refuse(conversation)
        case EventType.AGENT_CLOSED:
            if state is State.ACTIVE:
                # Re-queued: the customer keeps any reconnect window, but not this agent.
                return _touch(conversation, now, state=State.OPEN, agent_id=None)
            if state is State.WRAP_UP:
                return _end(conversation, State.CLOSED, EndReason.AGENT_CLOSED, now)
            raise _refuse(conversation)


def remember_event(conversation: Conversation, event_id: str | None) -> Conversation:
    """The conversation with `event_id` recorded as applied (oldest ids forgotten first)."""
    if event_id is None or event_id in conversation.event_ids:
        return conversation
    kept = (*conversation.event_ids, event_id)[-EVENT_ID_MEMORY:]
    return dataclasses.replace(conversation, event_ids=kept)


def due_at(conversation: Conversation, auto_close_after: timedelta) -> datetime | None:
    """When the timer must next look at this conversation, or None if never."""
    if conversation.state in (State.ACTIVE, State.OPEN) and not conversation.customer_connected:
        return conversation.reconnect_deadline
    if conversation.state is State.WRAP_UP and conversation.wrap_up_at is not None:
        return conversation.wrap_up_at + auto_close_after
    return None


def enforce(
    conversation: Conversation, now: datetime, auto_close_after: timedelta
) -> Conversation | None:
    """The timer's outcome for a conversation at `now`, or None when nothing is due yet."""
    due = due_at(conversation, auto_close_after)
    if due is None or now < due:
        return None
    if conversation.state is State.ACTIVE:
        return _end(conversation, State.WRAP_UP, EndReason.RECONNECT_TIMEOUT, now)
    if conversation.state is State.OPEN:
        return _end(conversation, State.CLOSED, EndReason.RECONNECT_TIMEOUT, now)
    return _end(conversation, State.CLOSED, EndReason.AUTO_CLOSED, now)
