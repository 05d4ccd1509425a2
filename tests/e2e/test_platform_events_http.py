"""The platform's event route end to end through the local host (`shared/api/platform.py`).

Every event row of the contract §2.2 table (R1 to R9) and the precise rules of 2.2.1
(repeats, refusals, eventIds), with the capacity of 2.4, over real HTTP. The clock is the
test's FakeClock. The timer's rows (R10 to R12) have no route of their own: they are in
tests/integration/test_enforcement_rows.py.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import httpx
import pytest

from tests.conftest import FakeClock
from tests.e2e.lifecycle import (
    AGENT,
    LIMIT_MINUTES,
    PROBLEM,
    assert_gone,
    context,
    disconnected,
    get,
    held,
    iso,
    link_of,
    put_widget,
    register,
    resume,
    send,
    unavailable,
)

# --- contract §2.2: one test per row of the table --------------------------------------------


def test_agent_assigned_moves_open_to_active_and_holds_capacity(
    api: httpx.Client, clock: FakeClock
) -> None:
    put_widget(api)
    opened = register(api, "c1", agent=None)
    assert opened["state"] == "open"
    assert opened["agentId"] is None
    assert held(api) == 0

    clock.advance(seconds=30)
    assigned = send(api, "c1", "agent_assigned", agentId=AGENT)

    assert assigned["state"] == "active"
    assert assigned["agentId"] == AGENT
    assert assigned["customerConnected"] is True
    assert assigned["disconnectedAt"] is None
    assert assigned["reconnectDeadline"] is None
    assert assigned["endReason"] is None
    assert assigned["updatedAt"] == iso(clock.now)
    assert get(api, "c1") == assigned
    assert held(api) == 1


def test_disconnect_with_reconnect_enabled_keeps_active_and_sets_the_deadline(
    api: httpx.Client, clock: FakeClock
) -> None:
    put_widget(api)
    register(api, "c1")
    clock.advance(minutes=2, seconds=13)
    left_at = clock.now

    result = send(api, "c1", "customer_disconnected")

    deadline = iso(left_at + timedelta(minutes=LIMIT_MINUTES))
    assert result["state"] == "active"
    assert result["agentId"] == AGENT
    assert result["customerConnected"] is False
    assert result["disconnectedAt"] == iso(left_at)
    assert result["reconnectDeadline"] == deadline
    assert result["reconnectDeadline"].endswith("Z")
    assert result["endReason"] is None
    assert get(api, "c1") == result
    capacity = api.get(f"/agents/{AGENT}/capacity").json()
    assert capacity == {
        "agentId": AGENT,
        "held": 1,
        "conversations": [
            {"conversationId": "c1", "customerConnected": False, "reconnectDeadline": deadline}
        ],
    }


def test_disconnect_with_reconnect_disabled_wraps_up_and_releases_capacity(
    api: httpx.Client,
) -> None:
    put_widget(api, reconnectEnabled=False)
    register(api, "c1")
    assert held(api) == 1

    result = send(api, "c1", "customer_disconnected")

    assert result["state"] == "wrap_up"
    assert result["endReason"] == "customer_disconnected"
    assert result["customerConnected"] is False
    assert result["reconnectDeadline"] is None
    assert result["reconnectUrl"] is None
    assert held(api) == 0


def test_disconnect_while_open_closes(api: httpx.Client) -> None:
    put_widget(api)
    register(api, "c1", agent=None)

    result = send(api, "c1", "customer_disconnected")

    assert result["state"] == "closed"
    assert result["endReason"] == "customer_disconnected"
    assert result["customerConnected"] is False
    assert result["reconnectDeadline"] is None
    assert result["agentId"] is None


def test_customer_reconnected_within_the_deadline_clears_it(
    api: httpx.Client, clock: FakeClock
) -> None:
    put_widget(api)
    disconnected(api, "c1")
    clock.advance(minutes=LIMIT_MINUTES, seconds=-1)

    result = send(api, "c1", "customer_reconnected")

    assert result["state"] == "active"
    assert result["agentId"] == AGENT
    assert result["customerConnected"] is True
    assert result["disconnectedAt"] is None
    assert result["reconnectDeadline"] is None
    assert result["endReason"] is None
    assert held(api) == 1
    assert get(api, "c1") == result


def test_customer_reconnected_after_the_deadline_is_refused_even_before_the_timer(
    api: httpx.Client, clock: FakeClock
) -> None:
    put_widget(api)
    disconnected(api, "c1")
    clock.advance(minutes=LIMIT_MINUTES)  # exactly at the deadline: now < deadline fails
    before = get(api, "c1")

    problem = send(api, "c1", "customer_reconnected", expect=409)

    assert problem["state"] == "active"
    assert get(api, "c1") == before


def test_agent_ended_wraps_up_releases_capacity_and_ends_reconnect(
    api: httpx.Client, clock: FakeClock
) -> None:
    put_widget(api)
    conversation = disconnected(api, "c1")
    reconnect_id = link_of(conversation)
    clock.advance(minutes=1)

    result = send(api, "c1", "agent_ended")

    assert result["state"] == "wrap_up"
    assert result["endReason"] == "agent_ended"
    assert result["customerConnected"] is False
    assert result["reconnectDeadline"] is None
    assert held(api) == 0
    assert context(api, reconnect_id) == unavailable(None)
    assert_gone(resume(api, reconnect_id), None)


@pytest.mark.parametrize(
    ("agent", "expected_state"), [(None, "closed"), (AGENT, "wrap_up")], ids=["open", "active"]
)
def test_customer_ended(api: httpx.Client, agent: str | None, expected_state: str) -> None:
    put_widget(api)
    reconnect_id = link_of(register(api, "c1", agent=agent))

    result = send(api, "c1", "customer_ended")

    assert result["state"] == expected_state
    assert result["endReason"] == "customer_ended"
    assert result["customerConnected"] is False
    assert result["reconnectDeadline"] is None
    assert held(api) == 0
    assert context(api, reconnect_id) == unavailable(None)
    assert_gone(resume(api, reconnect_id), None)


def test_agent_closed_requeues_releases_capacity_and_keeps_the_window(
    api: httpx.Client, clock: FakeClock
) -> None:
    put_widget(api)
    left = disconnected(api, "c1")
    clock.advance(minutes=1)

    result = send(api, "c1", "agent_closed")

    assert result["state"] == "open"
    assert result["agentId"] is None
    assert result["endReason"] is None
    assert result["customerConnected"] is False
    assert result["disconnectedAt"] == left["disconnectedAt"]
    assert result["reconnectDeadline"] == left["reconnectDeadline"]
    assert held(api) == 0

    clock.advance(minutes=2)
    answer = resume(api, link_of(result))
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "conversationId": "c1",
        "state": "open",
        "agentId": None,
        "sameAgent": False,
        "reconnectedAt": iso(clock.now),
    }
    back = get(api, "c1")
    assert back["state"] == "open"
    assert back["customerConnected"] is True
    assert back["reconnectDeadline"] is None
    assert held(api) == 0


def test_agent_closed_on_wrap_up_closes(api: httpx.Client) -> None:
    put_widget(api)
    register(api, "c1")
    send(api, "c1", "agent_ended")

    result = send(api, "c1", "agent_closed")

    assert result["state"] == "closed"
    assert result["endReason"] == "agent_closed"
    assert held(api) == 0


# --- contract §2.2.1: repeats that change nothing, refusals, eventIds ------------------------


def test_second_disconnect_never_extends_the_window(api: httpx.Client, clock: FakeClock) -> None:
    put_widget(api)
    first = disconnected(api, "c1")
    clock.advance(minutes=3)

    again = send(api, "c1", "customer_disconnected")

    assert again == first
    assert get(api, "c1") == first


def test_reconnected_while_connected_changes_nothing(api: httpx.Client, clock: FakeClock) -> None:
    put_widget(api)
    registered = register(api, "c1")
    clock.advance(minutes=1)

    again = send(api, "c1", "customer_reconnected")

    assert again == registered
    assert get(api, "c1") == registered


def _open(api: httpx.Client) -> None:
    register(api, "c1", agent=None)


def _active(api: httpx.Client) -> None:
    register(api, "c1")


def _wrap_up(api: httpx.Client) -> None:
    register(api, "c1")
    send(api, "c1", "agent_ended")


def _closed(api: httpx.Client) -> None:
    _wrap_up(api)
    send(api, "c1", "agent_closed")


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
def test_an_event_that_does_not_apply_is_409_with_the_state_and_changes_nothing(
    api: httpx.Client,
    clock: FakeClock,
    state: str,
    reach: Callable[[httpx.Client], None],
    event_type: str,
) -> None:
    put_widget(api)
    reach(api)
    before = get(api, "c1")
    capacity_before = held(api)
    clock.advance(minutes=1)

    problem = send(api, "c1", event_type, expect=409, agentId="agent-2", eventId="e-1")

    assert problem["status"] == 409
    assert problem["state"] == state
    assert get(api, "c1") == before
    assert held(api) == capacity_before
    assert held(api, "agent-2") == 0


def test_a_repeated_disconnect_event_id_after_a_reconnect_does_not_disconnect_again(
    api: httpx.Client, clock: FakeClock
) -> None:
    put_widget(api)
    register(api, "c1")
    left = send(api, "c1", "customer_disconnected", eventId="drop-1")
    clock.advance(minutes=1)
    answer = resume(api, link_of(left))
    assert answer.status_code == 200, answer.text
    reconnected = get(api, "c1")
    clock.advance(minutes=1)

    retried = send(api, "c1", "customer_disconnected", eventId="drop-1")

    assert retried == reconnected
    assert retried["customerConnected"] is True
    assert retried["reconnectDeadline"] is None
    assert get(api, "c1") == reconnected
    # A new disconnect (another eventId) still applies.
    fresh = send(api, "c1", "customer_disconnected", eventId="drop-2")
    assert fresh["customerConnected"] is False
    assert fresh["reconnectDeadline"] == iso(clock.now + timedelta(minutes=LIMIT_MINUTES))


def test_a_repeated_assignment_event_id_after_agent_closed_does_not_reassign(
    api: httpx.Client, clock: FakeClock
) -> None:
    put_widget(api)
    register(api, "c1", agent=None)
    send(api, "c1", "agent_assigned", agentId=AGENT, eventId="assign-1")
    requeued = send(api, "c1", "agent_closed", eventId="close-1")
    clock.advance(minutes=1)

    assert send(api, "c1", "agent_assigned", agentId=AGENT, eventId="assign-1") == requeued
    assert send(api, "c1", "agent_closed", eventId="close-1") == requeued
    assert get(api, "c1") == requeued
    assert held(api) == 0


def test_a_refused_event_id_is_judged_again(api: httpx.Client) -> None:
    put_widget(api)
    register(api, "c1", agent=None)
    send(api, "c1", "agent_ended", eventId="end-1", expect=409)
    send(api, "c1", "agent_assigned", agentId=AGENT)

    result = send(api, "c1", "agent_ended", eventId="end-1")

    assert result["state"] == "wrap_up"
    assert result["endReason"] == "agent_ended"
    assert held(api) == 0


def test_event_ids_are_scoped_to_the_conversation(api: httpx.Client) -> None:
    put_widget(api)
    register(api, "c1")
    register(api, "c2")

    assert send(api, "c1", "agent_ended", eventId="same")["state"] == "wrap_up"
    assert send(api, "c2", "agent_ended", eventId="same")["state"] == "wrap_up"
    assert held(api) == 0


def test_unknown_event_type_is_422_and_changes_nothing(api: httpx.Client) -> None:
    put_widget(api)
    before = register(api, "c1")

    problem = send(api, "c1", "agent_vanished", expect=422)

    assert problem["status"] == 422
    assert [error["field"] for error in problem["errors"]] == ["type"]
    assert get(api, "c1") == before


def test_agent_assigned_without_agent_id_is_422(api: httpx.Client) -> None:
    put_widget(api)
    before = register(api, "c1", agent=None)

    problem = send(api, "c1", "agent_assigned", expect=422)

    assert [error["field"] for error in problem["errors"]] == ["agentId"]
    assert get(api, "c1") == before


def test_unknown_conversation_is_404(api: httpx.Client) -> None:
    put_widget(api)
    for response in (
        api.get("/conversations/nobody"),
        api.post("/conversations/nobody/events", json={"type": "agent_ended"}),
        api.post("/conversations/nobody/quick-reply", json={"text": "hi"}),
        api.post("/conversations/nobody/reconnect-link/revoke"),
    ):
        assert response.status_code == 404, response.text
        assert response.headers["content-type"].startswith(PROBLEM)
