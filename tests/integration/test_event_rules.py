"""The precise rules of contract §2.2.1 about platform events, through the App's use cases over
a real Azurite: refusals change nothing (P1), eventIds make retries safe (P2, P14) and
repeats change nothing (P5). Storage left unchanged means the same stored version (ETag).

The HTTP answers of these rules (409 with `state`, 200 with the conversation) are pinned once
in tests/e2e/test_platform_events_http.py; the decisions on pure values in
tests/unit/test_domain_events.py and test_domain_event_ids.py.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from shared.domain.conversation import EVENT_ID_MEMORY, EndReason, State
from shared.services.app import App
from tests.conftest import FakeClock
from tests.integration.use_cases import (
    AGENT,
    LIMIT,
    capacity_index,
    disconnected,
    held,
    link_of,
    put_widget,
    refused,
    register,
    resume,
    send,
    stored,
)

# --- P1: an event that does not apply is refused with the state and changes nothing ----------


def _open(app: App) -> None:
    register(app, "c1", agent=None)


def _active(app: App) -> None:
    register(app, "c1")


def _wrap_up(app: App) -> None:
    register(app, "c1")
    send(app, "c1", "agent_ended")


def _closed(app: App) -> None:
    _wrap_up(app)
    send(app, "c1", "agent_closed")


_REFUSED = [
    ("open", _open, "agent_ended"),
    ("open", _open, "agent_closed"),
    ("active", _active, "agent_assigned"),
    ("wrap_up", _wrap_up, "agent_assigned"),
    ("wrap_up", _wrap_up, "customer_disconnected"),
    ("wrap_up", _wrap_up, "customer_reconnected"),
    ("wrap_up", _wrap_up, "agent_ended"),
    ("wrap_up", _wrap_up, "customer_ended"),
    ("closed", _closed, "agent_assigned"),
    ("closed", _closed, "customer_disconnected"),
    ("closed", _closed, "customer_reconnected"),
    ("closed", _closed, "agent_ended"),
    ("closed", _closed, "customer_ended"),
    ("closed", _closed, "agent_closed"),
]


@pytest.mark.parametrize(
    ("state", "reach", "event_type"),
    _REFUSED,
    ids=[f"{event}-on-{state}" for state, _, event in _REFUSED],
)
def test_p1_an_event_that_does_not_apply_is_refused_with_the_state_and_changes_nothing(
    service: App,
    clock: FakeClock,
    state: str,
    reach: Callable[[App], None],
    event_type: str,
) -> None:
    put_widget(service)
    reach(service)
    before = stored(service, "c1")
    capacity_before = held(service)
    index_before = capacity_index(service)
    clock.advance(minutes=1)

    assert refused(service, "c1", event_type, agent_id="agent-2", event_id="e-1") == state

    assert stored(service, "c1") == before
    assert "e-1" not in stored(service, "c1").value.event_ids
    assert held(service) == capacity_before
    assert capacity_index(service) == index_before
    assert held(service, "agent-2") == []
    assert capacity_index(service, "agent-2") == []


# --- P2: eventIds --------------------------------------------------------------------------------


def test_p2_a_repeated_disconnect_event_id_after_a_reconnect_does_not_disconnect_again(
    service: App, clock: FakeClock
) -> None:
    put_widget(service)
    register(service, "c1")
    send(service, "c1", "customer_disconnected", event_id="drop-1")
    clock.advance(minutes=1)
    resume(service, link_of(service, "c1"))
    reconnected = stored(service, "c1")
    clock.advance(minutes=1)

    retried = send(service, "c1", "customer_disconnected", event_id="drop-1")

    assert retried == reconnected.value
    assert retried.customer_connected is True
    assert retried.reconnect_deadline is None
    assert stored(service, "c1") == reconnected
    # A new disconnect (another eventId) still applies.
    fresh = send(service, "c1", "customer_disconnected", event_id="drop-2")
    assert fresh.customer_connected is False
    assert fresh.reconnect_deadline == clock.now + LIMIT


def test_p2_a_repeated_assignment_event_id_after_agent_closed_does_not_reassign(
    service: App, clock: FakeClock
) -> None:
    put_widget(service)
    register(service, "c1", agent=None)
    send(service, "c1", "agent_assigned", agent_id=AGENT, event_id="assign-1")
    requeued = send(service, "c1", "agent_closed", event_id="close-1")
    before = stored(service, "c1")
    clock.advance(minutes=1)

    again = send(service, "c1", "agent_assigned", agent_id=AGENT, event_id="assign-1")
    assert again == requeued
    assert send(service, "c1", "agent_closed", event_id="close-1") == requeued
    assert stored(service, "c1") == before
    assert held(service) == []


def test_p2_a_refused_event_id_leaves_no_trace_and_is_judged_again(service: App) -> None:
    put_widget(service)
    register(service, "c1", agent=None)
    assert refused(service, "c1", "agent_ended", event_id="end-1") == "open"
    send(service, "c1", "agent_assigned", agent_id=AGENT)

    result = send(service, "c1", "agent_ended", event_id="end-1")

    assert result.state is State.WRAP_UP
    assert result.end_reason is EndReason.AGENT_ENDED
    assert stored(service, "c1").value == result
    assert held(service) == []


def test_p2_event_ids_are_scoped_to_the_conversation(service: App) -> None:
    put_widget(service)
    register(service, "c1")
    register(service, "c2")

    assert send(service, "c1", "agent_ended", event_id="same").state is State.WRAP_UP
    assert send(service, "c2", "agent_ended", event_id="same").state is State.WRAP_UP
    assert stored(service, "c2").value.state is State.WRAP_UP
    assert held(service) == []


# --- P14: the most recent EVENT_ID_MEMORY eventIds are remembered -----------------------------


@pytest.mark.parametrize(
    ("later_events", "retry_recognised"),
    [(EVENT_ID_MEMORY - 1, True), (EVENT_ID_MEMORY, False)],
    ids=["within-the-memory", "beyond-the-memory"],
)
def test_p14_a_retry_is_recognised_within_the_last_64_applied_event_ids(
    service: App, later_events: int, retry_recognised: bool
) -> None:
    put_widget(service)
    register(service, "c1", agent=None)
    send(service, "c1", "agent_assigned", agent_id=AGENT, event_id="assign-0")
    for n in range(later_events - 1):  # applied, changing nothing but the memory
        send(service, "c1", "customer_reconnected", event_id=f"noop-{n}")
    send(service, "c1", "agent_closed", event_id="close")

    retried = send(service, "c1", "agent_assigned", agent_id=AGENT, event_id="assign-0")

    assert (retried.state is State.OPEN) is retry_recognised
    assert stored(service, "c1").value == retried
    assert len(retried.event_ids) <= EVENT_ID_MEMORY


# --- P5: repeats that change nothing -------------------------------------------------------------


def test_p5_a_second_disconnect_changes_nothing_and_never_extends_the_window(
    service: App, clock: FakeClock
) -> None:
    put_widget(service)
    first = disconnected(service, "c1")
    before = stored(service, "c1")
    clock.advance(minutes=3)

    again = send(service, "c1", "customer_disconnected")

    assert again == first
    assert stored(service, "c1") == before
    assert first.disconnected_at is not None
    assert before.value.reconnect_deadline == first.disconnected_at + LIMIT


def test_p5_reconnected_while_connected_changes_nothing(service: App, clock: FakeClock) -> None:
    put_widget(service)
    registered = register(service, "c1")
    before = stored(service, "c1")
    clock.advance(minutes=1)

    again = send(service, "c1", "customer_reconnected")

    assert again == registered
    assert stored(service, "c1") == before


def test_p5_reconnected_on_a_just_registered_open_conversation_changes_nothing(
    service: App, clock: FakeClock
) -> None:
    put_widget(service)
    registered = register(service, "c1", agent=None)
    before = stored(service, "c1")
    clock.advance(minutes=1)

    assert send(service, "c1", "customer_reconnected") == registered
    assert stored(service, "c1") == before
    assert before.value.reconnect_deadline is None
