"""The timer's rows of contract §2.2 as pure functions (`shared/domain/conversation.py`:
`enforce`, `due_at`): expiry, the requeued deadline and auto-close, to the second.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest

from shared.domain.conversation import (
    Conversation,
    EndReason,
    State,
    continue_conversation,
    due_at,
    enforce,
)
from tests.unit.conversations import (
    AUTO_CLOSE,
    DEADLINE,
    SECOND,
    T0,
    active,
    closed,
    disconnected,
    queued,
    requeued_connected,
    requeued_disconnected,
    waiting,
    wrapped_up,
)

# --- contract §2.2 timer rows: enforce / due_at -----------------------------------------------


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
