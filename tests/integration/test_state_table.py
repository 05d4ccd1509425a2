"""Every row of the contract §2.2 state table (R1 to R12) through the App's use cases over a
real Azurite, with a movable clock: the stored conversation, the agent's capacity (§2.4), the
reconnect deadline and what the link allows afterwards.

One test per row, named after it, so a row's other effects (integration events, ...) have one
obvious place to be added. The same rows are pinned on pure values in
tests/unit/test_domain_events.py and test_domain_timer.py, and over HTTP (answer shapes only)
in tests/e2e/test_platform_events_http.py and tests/e2e/test_timer_rows_http.py.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from shared.domain.conversation import EndReason, Event, EventType, State
from shared.services.app import App
from tests.conftest import FakeClock
from tests.integration.use_cases import (
    AGENT,
    LIMIT,
    LIMIT_MINUTES,
    capacity_index,
    context,
    disconnected,
    gone,
    held,
    link_of,
    put_widget,
    refused,
    register,
    resume,
    send,
    stored,
    unavailable,
)

# --- the platform's events (R1 to R9) ---------------------------------------------------------


def test_r1_agent_assigned_moves_open_to_active_and_takes_capacity(
    service: App, clock: FakeClock
) -> None:
    put_widget(service)
    opened = register(service, "c1", agent=None)
    assert opened.state is State.OPEN
    assert opened.agent_id is None
    assert held(service) == []

    clock.advance(seconds=30)
    assigned = send(service, "c1", "agent_assigned", agent_id=AGENT)

    kept = stored(service, "c1").value
    assert kept == assigned
    assert kept.state is State.ACTIVE
    assert kept.agent_id == AGENT
    assert kept.customer_connected is True
    assert kept.disconnected_at is None
    assert kept.reconnect_deadline is None
    assert kept.end_reason is None
    assert kept.updated_at == clock.now
    assert held(service) == ["c1"]
    assert capacity_index(service) == ["c1"]


def test_r2_disconnect_with_reconnection_on_keeps_active_and_sets_the_deadline(
    service: App, clock: FakeClock
) -> None:
    put_widget(service)
    register(service, "c1")
    clock.advance(minutes=2, seconds=13)
    left_at = clock.now

    result = send(service, "c1", "customer_disconnected")

    kept = stored(service, "c1").value
    assert kept == result
    assert kept.state is State.ACTIVE
    assert kept.agent_id == AGENT
    assert kept.customer_connected is False
    assert kept.disconnected_at == left_at
    assert kept.reconnect_deadline == left_at + LIMIT
    assert kept.end_reason is None
    (holding,) = service.conversations.agent_capacity(AGENT)
    assert holding.conversation_id == "c1"
    assert holding.customer_connected is False
    assert holding.reconnect_deadline == left_at + LIMIT
    assert capacity_index(service) == ["c1"]


def test_r3_disconnect_with_reconnection_off_wraps_up_and_gives_capacity_back(
    service: App,
) -> None:
    put_widget(service, reconnect_enabled=False)
    register(service, "c1")
    assert held(service) == ["c1"]

    result = service.conversations.apply_event("c1", Event(EventType.CUSTOMER_DISCONNECTED), None)

    kept = stored(service, "c1").value
    assert kept == result.conversation
    assert kept.state is State.WRAP_UP
    assert kept.end_reason is EndReason.CUSTOMER_DISCONNECTED
    assert kept.customer_connected is False
    assert kept.reconnect_deadline is None
    assert result.reconnect_url is None
    assert held(service) == []
    assert capacity_index(service) == []


def test_r4_disconnect_while_open_closes(service: App) -> None:
    put_widget(service)
    register(service, "c1", agent=None)

    send(service, "c1", "customer_disconnected")

    kept = stored(service, "c1").value
    assert kept.state is State.CLOSED
    assert kept.end_reason is EndReason.CUSTOMER_DISCONNECTED
    assert kept.customer_connected is False
    assert kept.reconnect_deadline is None
    assert kept.agent_id is None


def test_r5_customer_reconnected_before_the_deadline_clears_it(
    service: App, clock: FakeClock
) -> None:
    put_widget(service)
    disconnected(service, "c1")
    clock.advance(minutes=LIMIT_MINUTES, seconds=-1)

    result = send(service, "c1", "customer_reconnected")

    kept = stored(service, "c1").value
    assert kept == result
    assert kept.state is State.ACTIVE
    assert kept.agent_id == AGENT
    assert kept.customer_connected is True
    assert kept.disconnected_at is None
    assert kept.reconnect_deadline is None
    assert kept.end_reason is None
    assert held(service) == ["c1"]


def test_r5_customer_reconnected_at_the_deadline_is_refused_even_before_the_timer(
    service: App, clock: FakeClock
) -> None:
    put_widget(service)
    disconnected(service, "c1")
    clock.advance(minutes=LIMIT_MINUTES)  # exactly at the deadline: now < deadline fails
    before = stored(service, "c1")

    assert refused(service, "c1", "customer_reconnected") == "active"

    assert stored(service, "c1") == before


def test_r6_agent_ended_wraps_up_gives_capacity_back_and_ends_reconnect(
    service: App, clock: FakeClock
) -> None:
    put_widget(service)
    disconnected(service, "c1")
    reconnect_id = link_of(service, "c1")
    clock.advance(minutes=1)

    send(service, "c1", "agent_ended")

    kept = stored(service, "c1").value
    assert kept.state is State.WRAP_UP
    assert kept.end_reason is EndReason.AGENT_ENDED
    assert kept.customer_connected is False
    assert kept.reconnect_deadline is None
    assert held(service) == []
    assert capacity_index(service) == []
    assert context(service, reconnect_id) == unavailable(None)
    assert gone(service, reconnect_id) is None


@pytest.mark.parametrize(
    ("agent", "expected_state"),
    [(None, State.CLOSED), (AGENT, State.WRAP_UP)],
    ids=["open", "active"],
)
def test_r7_customer_ended_closes_an_open_and_wraps_up_an_active_conversation(
    service: App, agent: str | None, expected_state: State
) -> None:
    put_widget(service)
    register(service, "c1", agent=agent)
    reconnect_id = link_of(service, "c1")

    send(service, "c1", "customer_ended")

    kept = stored(service, "c1").value
    assert kept.state is expected_state
    assert kept.end_reason is EndReason.CUSTOMER_ENDED
    assert kept.customer_connected is False
    assert kept.reconnect_deadline is None
    assert held(service) == []
    assert context(service, reconnect_id) == unavailable(None)
    assert gone(service, reconnect_id) is None


def test_r8_agent_closed_requeues_gives_capacity_back_and_keeps_the_window(
    service: App, clock: FakeClock
) -> None:
    put_widget(service)
    left = disconnected(service, "c1")
    clock.advance(minutes=1)

    send(service, "c1", "agent_closed")

    kept = stored(service, "c1").value
    assert kept.state is State.OPEN
    assert kept.agent_id is None
    assert kept.end_reason is None
    assert kept.customer_connected is False
    assert kept.disconnected_at == left.disconnected_at
    assert kept.reconnect_deadline == left.reconnect_deadline
    assert held(service) == []
    assert capacity_index(service) == []

    # The customer may still come back before the deadline, but to the queue (P7).
    clock.advance(minutes=2)
    answer = resume(service, link_of(service, "c1"))
    assert answer.conversation.conversation_id == "c1"
    assert answer.conversation.state is State.OPEN
    assert answer.conversation.agent_id is None
    assert answer.same_agent is False
    assert answer.reconnected_at == clock.now
    back = stored(service, "c1").value
    assert back.state is State.OPEN
    assert back.customer_connected is True
    assert back.reconnect_deadline is None
    assert held(service) == []


def test_r9_agent_closed_on_wrap_up_closes(service: App) -> None:
    put_widget(service)
    register(service, "c1")
    send(service, "c1", "agent_ended")

    send(service, "c1", "agent_closed")

    kept = stored(service, "c1").value
    assert kept.state is State.CLOSED
    assert kept.end_reason is EndReason.AGENT_CLOSED
    assert held(service) == []


# --- the timer (R10 to R12): `app.timer.run` ----------------------------------------------------


def test_r10_timer_wraps_up_an_active_conversation_past_its_deadline(
    service: App, clock: FakeClock
) -> None:
    put_widget(service)
    clock.advance(seconds=30)  # mid-minute, like the timer's one-second checks below
    left = disconnected(service, "c1")
    assert left.reconnect_deadline is not None
    clock.now = left.reconnect_deadline - timedelta(seconds=1)
    service.timer.run()
    assert stored(service, "c1").value == left

    clock.now = left.reconnect_deadline + timedelta(seconds=1)
    report = service.timer.run()

    assert (report.expired, report.closed, report.capacity_released) == (1, 0, 1)
    kept = stored(service, "c1").value
    assert kept.state is State.WRAP_UP
    assert kept.end_reason is EndReason.RECONNECT_TIMEOUT
    assert kept.customer_connected is False
    assert kept.reconnect_deadline is None
    assert kept.agent_id == AGENT
    assert kept.updated_at == clock.now
    assert held(service) == []
    assert capacity_index(service) == []


def test_r11_timer_closes_an_open_conversation_past_its_deadline_after_agent_closed(
    service: App, clock: FakeClock
) -> None:
    put_widget(service)
    left = disconnected(service, "c1")
    send(service, "c1", "agent_closed")
    assert left.reconnect_deadline is not None

    clock.now = left.reconnect_deadline + timedelta(seconds=1)
    report = service.timer.run()

    assert (report.expired, report.closed) == (0, 1)
    kept = stored(service, "c1").value
    assert kept.state is State.CLOSED
    assert kept.end_reason is EndReason.RECONNECT_TIMEOUT
    assert kept.customer_connected is False
    assert kept.reconnect_deadline is None
    assert held(service) == []


def test_r12_timer_auto_closes_a_wrap_up_after_fifteen_minutes(
    service: App, clock: FakeClock
) -> None:
    put_widget(service)
    register(service, "c1")
    clock.advance(seconds=30)
    ended = send(service, "c1", "agent_ended")

    clock.advance(minutes=15, seconds=-1)
    service.timer.run()
    assert stored(service, "c1").value == ended

    clock.advance(seconds=2)
    report = service.timer.run()

    assert report.closed == 1
    kept = stored(service, "c1").value
    assert kept.state is State.CLOSED
    assert kept.end_reason is EndReason.AUTO_CLOSED
    assert held(service) == []
