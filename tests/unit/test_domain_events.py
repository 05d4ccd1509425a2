"""The domain's events as a pure state machine (`shared/domain/conversation.py`:
`new_conversation`, `apply_event`): every event row of contract §2.2, the full refused
(state, event) matrix, the capacity rule of §2.4 and the endReason of 2.2.1.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import timedelta

import pytest

from shared.domain.conversation import (
    Conversation,
    EndReason,
    EventType,
    State,
    apply_event,
    can_continue,
    continue_conversation,
    due_at,
    enforce,
)
from shared.domain.errors import ChatReconnectError, InvalidTransition
from shared.domain.settings import WidgetSettings
from tests.unit.conversations import (
    AGENT,
    AUTO_CLOSE,
    DEADLINE,
    DISABLED,
    DISCONNECT_AT,
    ENABLED,
    LIMIT_MINUTES,
    MATRIX_NOW,
    SECOND,
    T0,
    active,
    closed,
    disconnected,
    ev,
    queued,
    requeued_connected,
    requeued_disconnected,
    waiting,
    wrapped_up,
)

# --- new_conversation and the capacity rule (contract §2.4) -----------------------------------


def test_new_conversation_without_agent_is_open_and_holds_no_capacity() -> None:
    conversation = queued()
    assert conversation.state is State.OPEN
    assert conversation.agent_id is None
    assert conversation.customer_connected is True
    assert conversation.disconnected_at is None
    assert conversation.reconnect_deadline is None
    assert conversation.end_reason is None
    assert conversation.link_epoch == 0
    assert conversation.created_at == conversation.updated_at == T0
    assert conversation.event_ids == ()
    assert conversation.holds_capacity is False


def test_new_conversation_with_agent_is_active_and_holds_capacity() -> None:
    conversation = active()
    assert conversation.state is State.ACTIVE
    assert conversation.agent_id == AGENT
    assert conversation.holds_capacity is True
    assert conversation.end_reason is None


@pytest.mark.parametrize(
    ("build", "holds"),
    [
        (queued, False),
        (active, True),
        (disconnected, True),
        (requeued_disconnected, False),
        (requeued_connected, False),
        (wrapped_up, False),
        (closed, False),
        (waiting, False),
    ],
    ids=lambda value: getattr(value, "__name__", str(value)),
)
def test_capacity_is_held_only_while_active_with_an_agent(
    build: Callable[[], Conversation], holds: bool
) -> None:
    conversation = build()
    assert conversation.holds_capacity is holds
    assert conversation.holds_capacity == (conversation.state is State.ACTIVE)


def test_wrap_up_keeps_the_agent_for_the_record_but_holds_no_capacity() -> None:
    conversation = wrapped_up()
    assert conversation.agent_id == AGENT
    assert conversation.holds_capacity is False


# --- contract §2.2: one test per row of the event table ---------------------------------------


def test_agent_assigned_moves_open_to_active_and_holds_capacity() -> None:
    at = T0 + timedelta(seconds=30)
    after = apply_event(queued(), ev(EventType.AGENT_ASSIGNED, "agent-7"), ENABLED, at)
    assert after.state is State.ACTIVE
    assert after.agent_id == "agent-7"
    assert after.holds_capacity is True
    assert after.end_reason is None
    assert after.updated_at == at


@pytest.mark.parametrize("agent_id", [None, ""])
def test_agent_assigned_without_an_agent_is_refused(agent_id: str | None) -> None:
    with pytest.raises(InvalidTransition) as refused:
        apply_event(queued(), ev(EventType.AGENT_ASSIGNED, agent_id), ENABLED, T0)
    assert refused.value.state == "open"


def test_customer_disconnected_on_active_with_reconnect_enabled_opens_the_window() -> None:
    after = apply_event(active(), ev(EventType.CUSTOMER_DISCONNECTED), ENABLED, DISCONNECT_AT)
    assert after.state is State.ACTIVE
    assert after.customer_connected is False
    assert after.disconnected_at == DISCONNECT_AT
    assert after.reconnect_deadline == DISCONNECT_AT + timedelta(minutes=LIMIT_MINUTES)
    assert after.holds_capacity is True
    assert after.agent_id == AGENT
    assert after.end_reason is None
    assert after.updated_at == DISCONNECT_AT


@pytest.mark.parametrize("minutes", [1, 7, 1440])
def test_the_deadline_is_now_plus_the_widgets_time_limit(minutes: int) -> None:
    widget = dataclasses.replace(ENABLED, time_limit_minutes=minutes)
    after = apply_event(active(), ev(EventType.CUSTOMER_DISCONNECTED), widget, DISCONNECT_AT)
    assert after.reconnect_deadline == DISCONNECT_AT + timedelta(minutes=minutes)


def test_customer_disconnected_on_active_with_reconnect_disabled_wraps_up() -> None:
    after = apply_event(active(), ev(EventType.CUSTOMER_DISCONNECTED), DISABLED, DISCONNECT_AT)
    assert after.state is State.WRAP_UP
    assert after.end_reason is EndReason.CUSTOMER_DISCONNECTED
    assert after.customer_connected is False
    assert after.reconnect_deadline is None
    assert after.holds_capacity is False
    assert after.wrap_up_at == DISCONNECT_AT


@pytest.mark.parametrize("widget", [ENABLED, DISABLED], ids=["enabled", "disabled"])
def test_customer_disconnected_on_open_closes(widget: WidgetSettings) -> None:
    after = apply_event(queued(), ev(EventType.CUSTOMER_DISCONNECTED), widget, DISCONNECT_AT)
    assert after.state is State.CLOSED
    assert after.end_reason is EndReason.CUSTOMER_DISCONNECTED
    assert after.reconnect_deadline is None
    assert after.holds_capacity is False


def test_customer_disconnected_on_open_after_agent_closed_while_connected_closes() -> None:
    at = T0 + timedelta(minutes=2)
    after = apply_event(requeued_connected(), ev(EventType.CUSTOMER_DISCONNECTED), ENABLED, at)
    assert after.state is State.CLOSED
    assert after.end_reason is EndReason.CUSTOMER_DISCONNECTED


@pytest.mark.parametrize("build", [disconnected, requeued_disconnected])
@pytest.mark.parametrize("later", [timedelta(0), timedelta(minutes=5), timedelta(hours=3)])
def test_a_second_disconnect_changes_nothing_and_never_extends_the_window(
    build: Callable[[], Conversation], later: timedelta
) -> None:
    before = build()
    # A longer limit would extend the window if the second disconnect recomputed it.
    longer = dataclasses.replace(ENABLED, time_limit_minutes=1440)
    after = apply_event(before, ev(EventType.CUSTOMER_DISCONNECTED), longer, DISCONNECT_AT + later)
    assert after is before
    assert after.reconnect_deadline == DEADLINE


def test_customer_reconnected_within_the_deadline_reconnects() -> None:
    at = DEADLINE - SECOND
    after = apply_event(disconnected(), ev(EventType.CUSTOMER_RECONNECTED), ENABLED, at)
    assert after.state is State.ACTIVE
    assert after.customer_connected is True
    assert after.disconnected_at is None
    assert after.reconnect_deadline is None
    assert after.agent_id == AGENT
    assert after.holds_capacity is True
    assert after.end_reason is None
    assert after.updated_at == at


def test_customer_reconnected_equals_the_widgets_continue() -> None:
    at = DISCONNECT_AT + timedelta(minutes=3)
    by_event = apply_event(disconnected(), ev(EventType.CUSTOMER_RECONNECTED), ENABLED, at)
    assert by_event == continue_conversation(disconnected(), at)


@pytest.mark.parametrize("build", [active, queued, requeued_connected])
def test_customer_reconnected_while_connected_changes_nothing(
    build: Callable[[], Conversation],
) -> None:
    before = build()
    after = apply_event(
        before, ev(EventType.CUSTOMER_RECONNECTED), ENABLED, T0 + timedelta(hours=1)
    )
    assert after is before


@pytest.mark.parametrize("past", [timedelta(0), SECOND, timedelta(days=1)])
@pytest.mark.parametrize("build", [disconnected, requeued_disconnected])
def test_customer_reconnected_at_or_after_the_deadline_is_refused(
    build: Callable[[], Conversation], past: timedelta
) -> None:
    before = build()
    with pytest.raises(InvalidTransition) as refused:
        apply_event(before, ev(EventType.CUSTOMER_RECONNECTED), ENABLED, DEADLINE + past)
    assert refused.value.state == before.state.value


def test_customer_reconnected_on_open_after_agent_closed_is_accepted() -> None:
    # Deliberate: the event is the platform's twin of the widget's continue, which works on
    # open after agent_closed; the customer comes back to the queue, not to the old agent.
    at = DEADLINE - SECOND
    after = apply_event(requeued_disconnected(), ev(EventType.CUSTOMER_RECONNECTED), ENABLED, at)
    assert after.state is State.OPEN
    assert after.agent_id is None
    assert after.customer_connected is True
    assert after.disconnected_at is None
    assert after.reconnect_deadline is None
    assert after.holds_capacity is False


@pytest.mark.parametrize("build", [active, disconnected])
def test_agent_ended_wraps_up_and_releases_capacity(build: Callable[[], Conversation]) -> None:
    at = DISCONNECT_AT + timedelta(minutes=2)
    after = apply_event(build(), ev(EventType.AGENT_ENDED), ENABLED, at)
    assert after.state is State.WRAP_UP
    assert after.end_reason is EndReason.AGENT_ENDED
    assert after.holds_capacity is False
    assert after.customer_connected is False
    assert after.reconnect_deadline is None
    assert after.wrap_up_at == at
    # "no reconnect from now on"
    assert can_continue(after, ENABLED, at) is False


def test_customer_ended_on_open_closes() -> None:
    after = apply_event(queued(), ev(EventType.CUSTOMER_ENDED), ENABLED, T0 + SECOND)
    assert after.state is State.CLOSED
    assert after.end_reason is EndReason.CUSTOMER_ENDED
    assert after.holds_capacity is False
    assert can_continue(after, ENABLED, T0 + SECOND) is False


@pytest.mark.parametrize("build", [active, disconnected])
def test_customer_ended_on_active_wraps_up(build: Callable[[], Conversation]) -> None:
    at = DISCONNECT_AT + timedelta(minutes=2)
    after = apply_event(build(), ev(EventType.CUSTOMER_ENDED), ENABLED, at)
    assert after.state is State.WRAP_UP
    assert after.end_reason is EndReason.CUSTOMER_ENDED
    assert after.holds_capacity is False
    assert after.reconnect_deadline is None
    assert can_continue(after, ENABLED, at) is False


def test_customer_ended_on_open_after_agent_closed_closes() -> None:
    at = DISCONNECT_AT + timedelta(minutes=3)
    after = apply_event(requeued_disconnected(), ev(EventType.CUSTOMER_ENDED), ENABLED, at)
    assert after.state is State.CLOSED
    assert after.end_reason is EndReason.CUSTOMER_ENDED
    assert after.reconnect_deadline is None


def test_agent_closed_on_active_requeues_keeping_the_deadline() -> None:
    at = DISCONNECT_AT + timedelta(minutes=2)
    after = apply_event(disconnected(), ev(EventType.AGENT_CLOSED), ENABLED, at)
    assert after.state is State.OPEN
    assert after.agent_id is None
    assert after.holds_capacity is False
    assert after.customer_connected is False
    assert after.disconnected_at == DISCONNECT_AT
    assert after.reconnect_deadline == DEADLINE
    assert after.end_reason is None
    assert after.updated_at == at
    # The customer may still reconnect within the deadline (to the queue, not the agent).
    assert can_continue(after, ENABLED, DEADLINE - SECOND) is True


def test_agent_closed_on_active_while_connected_requeues() -> None:
    after = requeued_connected()
    assert after.state is State.OPEN
    assert after.agent_id is None
    assert after.customer_connected is True
    assert after.reconnect_deadline is None
    assert after.holds_capacity is False


def test_agent_closed_on_wrap_up_closes() -> None:
    at = T0 + timedelta(minutes=4)
    before = wrapped_up()
    after = apply_event(before, ev(EventType.AGENT_CLOSED), ENABLED, at)
    assert after.state is State.CLOSED
    assert after.end_reason is EndReason.AGENT_CLOSED
    assert after.holds_capacity is False
    assert after.updated_at == at
    assert due_at(after, AUTO_CLOSE) is None


# --- Refused events: the full (state, event) matrix -------------------------------------------


STATE_BUILDERS: dict[str, Callable[[], Conversation]] = {
    "open": queued,
    "open_requeued_disconnected": requeued_disconnected,
    "open_requeued_connected": requeued_connected,
    "active": active,
    "active_disconnected": disconnected,
    "wrap_up": wrapped_up,
    "closed": closed,
    "waiting": waiting,
}


# Straight from the contract §2.2 table (plus the deliberate customer_reconnected on open).
ALLOWED_FROM: dict[EventType, frozenset[State]] = {
    EventType.AGENT_ASSIGNED: frozenset({State.OPEN}),
    EventType.CUSTOMER_DISCONNECTED: frozenset({State.OPEN, State.ACTIVE}),
    EventType.CUSTOMER_RECONNECTED: frozenset({State.OPEN, State.ACTIVE}),
    EventType.AGENT_ENDED: frozenset({State.ACTIVE}),
    EventType.CUSTOMER_ENDED: frozenset({State.OPEN, State.ACTIVE}),
    EventType.AGENT_CLOSED: frozenset({State.ACTIVE, State.WRAP_UP}),
}


MATRIX = [
    pytest.param(name, event_type, id=f"{name}-{event_type.value}")
    for name in STATE_BUILDERS
    for event_type in EventType
]


def test_the_matrix_covers_every_state_and_event() -> None:
    built = {build().state for build in STATE_BUILDERS.values()}
    assert built == set(State)
    assert set(ALLOWED_FROM) == set(EventType)


@pytest.mark.parametrize(("name", "event_type"), MATRIX)
def test_every_state_event_pair_is_applied_or_refused_as_the_table_says(
    name: str, event_type: EventType
) -> None:
    before = STATE_BUILDERS[name]()
    snapshot = dataclasses.replace(before)
    event = ev(event_type, "agent-2" if event_type is EventType.AGENT_ASSIGNED else None)
    if before.state in ALLOWED_FROM[event_type]:
        after = apply_event(before, event, ENABLED, MATRIX_NOW)
        assert isinstance(after, Conversation)
    else:
        with pytest.raises(InvalidTransition) as refused:
            apply_event(before, event, ENABLED, MATRIX_NOW)
        assert refused.value.state == before.state.value
        assert refused.value.state in refused.value.detail
    assert before == snapshot


@pytest.mark.parametrize("widget", [ENABLED, DISABLED], ids=["enabled", "disabled"])
@pytest.mark.parametrize(
    "event_type",
    [EventType.CUSTOMER_DISCONNECTED, EventType.CUSTOMER_RECONNECTED, EventType.CUSTOMER_ENDED],
)
@pytest.mark.parametrize("build", [wrapped_up, closed])
def test_customer_events_on_ended_conversations_are_refused(
    build: Callable[[], Conversation], event_type: EventType, widget: WidgetSettings
) -> None:
    before = build()
    with pytest.raises(InvalidTransition) as refused:
        apply_event(before, ev(event_type), widget, MATRIX_NOW)
    assert refused.value.state == before.state.value


def test_invalid_transition_is_a_domain_error_carrying_the_state() -> None:
    error = InvalidTransition("wrap_up")
    assert isinstance(error, ChatReconnectError)
    assert error.state == "wrap_up"
    assert "wrap_up" in error.detail
    assert str(error) == error.detail


# --- contract §2.2.1: endReason ---------------------------------------------------------------


@pytest.mark.parametrize(
    "build", [queued, active, disconnected, requeued_disconnected, requeued_connected]
)
def test_end_reason_is_null_while_open_or_active(build: Callable[[], Conversation]) -> None:
    assert build().end_reason is None


def test_end_reason_is_the_reason_of_the_latest_move() -> None:
    wrap = wrapped_up()
    assert wrap.end_reason is EndReason.AGENT_ENDED
    assert closed().end_reason is EndReason.AGENT_CLOSED
    assert wrap.wrap_up_at is not None
    auto = enforce(wrap, wrap.wrap_up_at + AUTO_CLOSE, AUTO_CLOSE)
    assert auto is not None
    assert auto.end_reason is EndReason.AUTO_CLOSED


def test_end_reason_stays_null_through_a_requeue_and_reassignment() -> None:
    at = DISCONNECT_AT + timedelta(minutes=3)
    reassigned = apply_event(
        requeued_disconnected(), ev(EventType.AGENT_ASSIGNED, "agent-2"), ENABLED, at
    )
    assert reassigned.state is State.ACTIVE
    assert reassigned.agent_id == "agent-2"
    assert reassigned.end_reason is None
    # The customer's window is the one the first disconnect opened.
    assert reassigned.reconnect_deadline == DEADLINE
    assert reassigned.holds_capacity is True
