"""The widget's side of the domain (`shared/domain/conversation.py`: `can_continue`,
`continue_conversation`, `decline`, `returns_to_same_agent`): when a reconnect succeeds
(contract §2.2.1) and what continue and decline do.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import timedelta

import pytest

from shared.domain.conversation import (
    Conversation,
    EndReason,
    Event,
    EventType,
    State,
    apply_event,
    can_continue,
    continue_conversation,
    decline,
    enforce,
    returns_to_same_agent,
)
from shared.domain.errors import InvalidTransition
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

# --- can_continue: "A reconnect succeeds only if all hold" ------------------------------------


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


# --- continue_conversation and decline --------------------------------------------------------


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


# --- returns_to_same_agent --------------------------------------------------------------------


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
