"""The domain as a pure state machine: every row of contract §2.2 and every rule of 2.2.1."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from shared.domain.conversation import (
    EVENT_ID_MEMORY,
    Conversation,
    EndReason,
    Event,
    EventType,
    State,
    apply_event,
    can_continue,
    continue_conversation,
    decline,
    due_at,
    enforce,
    new_conversation,
    remember_event,
    returns_to_same_agent,
)
from shared.domain.errors import ChatReconnectError, InvalidTransition
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


def ev(event_type: EventType, agent_id: str | None = None) -> Event:
    return Event(type=event_type, agent_id=agent_id)


# --- conversations in each state, built through the domain itself --------------------------


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


# ------------------------------------------------------------------------------------------
# new_conversation and the capacity rule (contract §2.4)
# ------------------------------------------------------------------------------------------


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


# ------------------------------------------------------------------------------------------
# contract §2.2: one test per row of the event table
# ------------------------------------------------------------------------------------------


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


# ------------------------------------------------------------------------------------------
# contract §2.2 timer rows: enforce / due_at
# ------------------------------------------------------------------------------------------


def test_timer_wraps_up_an_active_conversation_past_its_deadline() -> None:
    now = DEADLINE + timedelta(seconds=40)
    after = enforce(disconnected(), now, AUTO_CLOSE)
    assert after is not None
    assert after.state is State.WRAP_UP
    assert after.end_reason is EndReason.RECONNECT_TIMEOUT
    assert after.holds_capacity is False
    assert after.reconnect_deadline is None
    assert after.wrap_up_at == now
    assert after.updated_at == now


def test_timer_closes_an_open_conversation_past_its_deadline_after_agent_closed() -> None:
    now = DEADLINE + timedelta(seconds=40)
    after = enforce(requeued_disconnected(), now, AUTO_CLOSE)
    assert after is not None
    assert after.state is State.CLOSED
    assert after.end_reason is EndReason.RECONNECT_TIMEOUT
    assert after.reconnect_deadline is None


def test_timer_auto_closes_an_old_wrap_up() -> None:
    before = wrapped_up()
    assert before.wrap_up_at is not None
    now = before.wrap_up_at + AUTO_CLOSE + SECOND
    after = enforce(before, now, AUTO_CLOSE)
    assert after is not None
    assert after.state is State.CLOSED
    assert after.end_reason is EndReason.AUTO_CLOSED
    assert after.updated_at == now


def test_timer_auto_close_uses_the_configured_duration() -> None:
    before = wrapped_up()
    assert before.wrap_up_at is not None
    five = timedelta(minutes=5)
    assert enforce(before, before.wrap_up_at + five - SECOND, five) is None
    after = enforce(before, before.wrap_up_at + five, five)
    assert after is not None
    assert after.end_reason is EndReason.AUTO_CLOSED


def test_auto_close_counts_from_the_move_into_wrap_up_not_from_the_disconnect() -> None:
    wrap_at = DEADLINE + timedelta(minutes=1)
    before = enforce(disconnected(), wrap_at, AUTO_CLOSE)
    assert before is not None
    assert due_at(before, AUTO_CLOSE) == wrap_at + AUTO_CLOSE
    assert enforce(before, wrap_at + AUTO_CLOSE - SECOND, AUTO_CLOSE) is None


@pytest.mark.parametrize("build", [disconnected, requeued_disconnected])
def test_timer_does_nothing_one_second_before_the_deadline_and_acts_exactly_at_it(
    build: Callable[[], Conversation],
) -> None:
    before = build()
    assert due_at(before, AUTO_CLOSE) == DEADLINE
    assert enforce(before, DEADLINE - SECOND, AUTO_CLOSE) is None
    at_deadline = enforce(before, DEADLINE, AUTO_CLOSE)
    assert at_deadline is not None
    assert at_deadline.end_reason is EndReason.RECONNECT_TIMEOUT


def test_timer_acts_exactly_when_the_wrap_up_is_due() -> None:
    before = wrapped_up()
    assert before.wrap_up_at is not None
    due = before.wrap_up_at + AUTO_CLOSE
    assert due_at(before, AUTO_CLOSE) == due
    assert enforce(before, due - SECOND, AUTO_CLOSE) is None
    assert enforce(before, due, AUTO_CLOSE) is not None


@pytest.mark.parametrize("build", [queued, active, requeued_connected, closed, waiting])
def test_timer_never_touches_connected_closed_or_waiting_conversations(
    build: Callable[[], Conversation],
) -> None:
    before = build()
    assert due_at(before, AUTO_CLOSE) is None
    assert enforce(before, T0 + timedelta(days=365), AUTO_CLOSE) is None


def test_timer_is_safe_to_run_twice() -> None:
    now = DEADLINE + timedelta(minutes=1)
    once = enforce(disconnected(), now, AUTO_CLOSE)
    assert once is not None
    # The second run finds a fresh wrap-up, not yet due for auto-close.
    assert enforce(once, now, AUTO_CLOSE) is None
    assert enforce(once, now + timedelta(minutes=1), AUTO_CLOSE) is None


def test_timer_after_a_reconnect_has_nothing_to_do() -> None:
    back = continue_conversation(disconnected(), DEADLINE - SECOND)
    assert due_at(back, AUTO_CLOSE) is None
    assert enforce(back, DEADLINE + timedelta(hours=1), AUTO_CLOSE) is None


# ------------------------------------------------------------------------------------------
# Refused events: the full (state, event) matrix
# ------------------------------------------------------------------------------------------

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

# Inside the reconnect window of every disconnected builder, so reconnects are allowed.
MATRIX_NOW = DISCONNECT_AT + timedelta(minutes=5)

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


# ------------------------------------------------------------------------------------------
# can_continue: "A reconnect succeeds only if all hold"
# ------------------------------------------------------------------------------------------


def test_can_continue_within_the_window() -> None:
    assert can_continue(disconnected(), ENABLED, DISCONNECT_AT) is True
    assert can_continue(disconnected(), ENABLED, DEADLINE - SECOND) is True


def test_can_continue_is_checked_to_the_second_at_the_deadline() -> None:
    conversation = disconnected()
    assert can_continue(conversation, ENABLED, DEADLINE - SECOND) is True
    assert can_continue(conversation, ENABLED, DEADLINE - timedelta(microseconds=1)) is True
    assert can_continue(conversation, ENABLED, DEADLINE) is False
    assert can_continue(conversation, ENABLED, DEADLINE + SECOND) is False


def test_can_continue_refuses_when_the_widget_has_reconnect_disabled() -> None:
    assert can_continue(disconnected(), DISABLED, DISCONNECT_AT + SECOND) is False
    assert can_continue(active(), DISABLED, T0) is False


def test_can_continue_refuses_on_another_widget() -> None:
    other = dataclasses.replace(ENABLED, widget_id="widget-2")
    assert can_continue(disconnected(), other, DISCONNECT_AT + SECOND) is False
    assert can_continue(active(), other, T0) is False


@pytest.mark.parametrize("build", [wrapped_up, closed, waiting])
def test_can_continue_refuses_ended_or_waiting_conversations(
    build: Callable[[], Conversation],
) -> None:
    assert can_continue(build(), ENABLED, DISCONNECT_AT + SECOND) is False


def test_can_continue_refuses_an_ended_conversation_even_if_it_was_in_its_window() -> None:
    ended = apply_event(disconnected(), ev(EventType.CUSTOMER_ENDED), ENABLED, DISCONNECT_AT)
    assert can_continue(ended, ENABLED, DISCONNECT_AT + SECOND) is False


@pytest.mark.parametrize("build", [active, queued, requeued_connected])
def test_can_continue_a_page_refresh_while_still_connected(
    build: Callable[[], Conversation],
) -> None:
    assert can_continue(build(), ENABLED, T0 + timedelta(days=2)) is True


def test_can_continue_after_agent_closed_within_the_deadline_only() -> None:
    conversation = requeued_disconnected()
    assert can_continue(conversation, ENABLED, DEADLINE - SECOND) is True
    assert can_continue(conversation, ENABLED, DEADLINE) is False


def test_the_timer_and_can_continue_agree_on_the_boundary() -> None:
    # The timer finalises, it does not decide: one instant is either continuable or due.
    conversation = disconnected()
    for now in (DEADLINE - SECOND, DEADLINE, DEADLINE + SECOND):
        assert can_continue(conversation, ENABLED, now) is (
            enforce(conversation, now, AUTO_CLOSE) is None
        )


# ------------------------------------------------------------------------------------------
# continue_conversation and decline
# ------------------------------------------------------------------------------------------


def test_a_successful_reconnect_clears_disconnected_at_and_the_deadline() -> None:
    at = DISCONNECT_AT + timedelta(minutes=4)
    after = continue_conversation(disconnected(), at)
    assert after.customer_connected is True
    assert after.disconnected_at is None
    assert after.reconnect_deadline is None
    assert after.state is State.ACTIVE
    assert after.agent_id == AGENT
    assert after.updated_at == at


def test_continue_after_agent_closed_stays_open_without_an_agent() -> None:
    after = continue_conversation(requeued_disconnected(), DEADLINE - SECOND)
    assert after.state is State.OPEN
    assert after.agent_id is None
    assert after.customer_connected is True
    assert after.reconnect_deadline is None


def test_continue_is_idempotent_while_connected() -> None:
    before = active()
    assert continue_conversation(before, T0 + timedelta(hours=1)) is before
    once = continue_conversation(disconnected(), DISCONNECT_AT + SECOND)
    assert continue_conversation(once, DISCONNECT_AT + 2 * SECOND) is once


def test_after_a_reconnect_a_new_disconnect_opens_a_fresh_window() -> None:
    back = continue_conversation(disconnected(), DISCONNECT_AT + timedelta(minutes=8))
    again_at = DISCONNECT_AT + timedelta(minutes=9)
    again = apply_event(back, ev(EventType.CUSTOMER_DISCONNECTED), ENABLED, again_at)
    assert again.disconnected_at == again_at
    assert again.reconnect_deadline == again_at + timedelta(minutes=LIMIT_MINUTES)


@pytest.mark.parametrize("build", [active, disconnected])
def test_decline_wraps_up_an_active_conversation(build: Callable[[], Conversation]) -> None:
    at = DISCONNECT_AT + timedelta(minutes=1)
    after = decline(build(), at)
    assert after.state is State.WRAP_UP
    assert after.end_reason is EndReason.CUSTOMER_DECLINED
    assert after.holds_capacity is False
    assert after.reconnect_deadline is None
    assert after.customer_connected is False
    assert after.wrap_up_at == at
    assert after.updated_at == at


@pytest.mark.parametrize("build", [queued, requeued_disconnected, requeued_connected])
def test_decline_closes_an_open_conversation(build: Callable[[], Conversation]) -> None:
    at = DISCONNECT_AT + timedelta(minutes=3)
    after = decline(build(), at)
    assert after.state is State.CLOSED
    assert after.end_reason is EndReason.CUSTOMER_DECLINED
    assert after.reconnect_deadline is None


@pytest.mark.parametrize("build", [wrapped_up, closed, waiting])
def test_decline_is_refused_on_a_conversation_that_cannot_continue(
    build: Callable[[], Conversation],
) -> None:
    before = build()
    with pytest.raises(InvalidTransition) as refused:
        decline(before, MATRIX_NOW)
    assert refused.value.state == before.state.value


# ------------------------------------------------------------------------------------------
# contract §2.2.1: endReason
# ------------------------------------------------------------------------------------------


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


# ------------------------------------------------------------------------------------------
# remember_event: eventId idempotency memory
# ------------------------------------------------------------------------------------------


def test_remember_event_records_an_id_once() -> None:
    conversation = remember_event(active(), "evt-1")
    assert conversation.event_ids == ("evt-1",)
    assert remember_event(conversation, "evt-1") is conversation


def test_remember_event_without_an_id_changes_nothing() -> None:
    conversation = active()
    assert remember_event(conversation, None) is conversation


def test_remember_event_does_not_touch_the_state_or_updated_at() -> None:
    before = disconnected()
    after = remember_event(before, "evt-1")
    assert dataclasses.replace(after, event_ids=()) == before


def test_remember_event_keeps_only_the_most_recent_ids() -> None:
    conversation = active()
    for number in range(EVENT_ID_MEMORY + 5):
        conversation = remember_event(conversation, f"evt-{number}")
    assert len(conversation.event_ids) == EVENT_ID_MEMORY
    assert conversation.event_ids[0] == "evt-5"
    assert conversation.event_ids[-1] == f"evt-{EVENT_ID_MEMORY + 4}"
    assert "evt-4" not in conversation.event_ids
    # A forgotten id is treated as new again (judged afresh by the caller).
    again = remember_event(conversation, "evt-0")
    assert again.event_ids[-1] == "evt-0"
    assert len(again.event_ids) == EVENT_ID_MEMORY


def test_remember_event_at_exactly_the_bound_keeps_everything() -> None:
    conversation = active()
    for number in range(EVENT_ID_MEMORY):
        conversation = remember_event(conversation, f"evt-{number}")
    assert conversation.event_ids == tuple(f"evt-{n}" for n in range(EVENT_ID_MEMORY))


def test_same_agent_is_the_agent_the_customer_left_still_holding_the_conversation() -> None:
    connected = active()
    away = apply_event(connected, Event(EventType.CUSTOMER_DISCONNECTED), ENABLED, T0)
    requeued = apply_event(away, Event(EventType.AGENT_CLOSED), ENABLED, T0)
    reassigned = apply_event(
        requeued, Event(EventType.AGENT_ASSIGNED, agent_id="agent-2"), ENABLED, T0
    )

    assert away.disconnected_from == AGENT
    assert returns_to_same_agent(connected)  # a page refresh: the customer never left
    assert returns_to_same_agent(away)
    assert not returns_to_same_agent(requeued)  # open: nobody holds it
    assert not returns_to_same_agent(reassigned)  # held, but by someone else
    assert continue_conversation(away, T0).disconnected_from is None
