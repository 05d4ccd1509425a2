"""The platform's event route as a thin HTTP contract through the local host
(`shared/api/platform.py`): for each row of the contract §2.2 table (R1 to R9) one
representative request, checking status, media type, the conversation's members and the
values the row changes as they travel on the wire; one 409 problem with `state` (P1), one
repeat answered 200 (P2, P5); and the route's 404 and 422 answers.

What each row does to the stored conversation, the capacity and the link — and every
refusal, eventId and repeat case — is pinned once, through the App's use cases, in
tests/integration/test_state_table.py and test_event_rules.py. The timer's rows (R10 to
R12) have no route of their own: tests/e2e/test_timer_rows_http.py.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest

from tests.conftest import FakeClock
from tests.e2e.lifecycle import (
    AGENT,
    LIMIT_MINUTES,
    PROBLEM,
    disconnected,
    get,
    iso,
    put_widget,
    register,
    send,
)

JSON = "application/json"


CONVERSATION_MEMBERS = {
    "conversationId",
    "widgetId",
    "state",
    "agentId",
    "customerConnected",
    "disconnectedAt",
    "reconnectDeadline",
    "endReason",
    "reconnectUrl",
    "createdAt",
    "updatedAt",
}


def event(api: httpx.Client, conversation_id: str, event_type: str, **extra: Any) -> dict[str, Any]:
    """POST an event that applies: 200, JSON, a conversation with exactly its members."""
    response = api.post(
        f"/conversations/{conversation_id}/events", json={"type": event_type, **extra}
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].split(";")[0] == JSON
    body: dict[str, Any] = response.json()
    assert set(body) == CONVERSATION_MEMBERS
    return body


# --- contract §2.2: one representative answer per row of the table ----------------------------


def test_agent_assigned_moves_open_to_active_and_holds_capacity(
    api: httpx.Client, clock: FakeClock
) -> None:
    put_widget(api)
    opened = register(api, "c1", agent=None)
    assert opened["state"] == "open"
    assert opened["agentId"] is None

    clock.advance(seconds=30)
    assigned = event(api, "c1", "agent_assigned", agentId=AGENT)

    assert assigned["state"] == "active"
    assert assigned["agentId"] == AGENT
    assert assigned["updatedAt"] == iso(clock.now)
    assert get(api, "c1") == assigned


def test_disconnect_with_reconnect_enabled_keeps_active_and_sets_the_deadline(
    api: httpx.Client, clock: FakeClock
) -> None:
    put_widget(api)
    register(api, "c1")
    clock.advance(minutes=2, seconds=13)
    left_at = clock.now

    result = event(api, "c1", "customer_disconnected")

    deadline = iso(left_at + timedelta(minutes=LIMIT_MINUTES))
    assert result["state"] == "active"
    assert result["customerConnected"] is False
    assert result["disconnectedAt"] == iso(left_at)
    assert result["reconnectDeadline"] == deadline
    assert result["reconnectDeadline"].endswith("Z")
    capacity = api.get(f"/agents/{AGENT}/capacity")
    assert capacity.headers["content-type"].split(";")[0] == JSON
    assert capacity.json() == {
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

    result = event(api, "c1", "customer_disconnected")

    assert result["state"] == "wrap_up"
    assert result["endReason"] == "customer_disconnected"
    assert result["reconnectUrl"] is None


def test_disconnect_while_open_closes(api: httpx.Client) -> None:
    put_widget(api)
    register(api, "c1", agent=None)

    result = event(api, "c1", "customer_disconnected")

    assert result["state"] == "closed"
    assert result["endReason"] == "customer_disconnected"


def test_customer_reconnected_within_the_deadline_clears_it(
    api: httpx.Client, clock: FakeClock
) -> None:
    put_widget(api)
    disconnected(api, "c1")
    clock.advance(minutes=LIMIT_MINUTES, seconds=-1)

    result = event(api, "c1", "customer_reconnected")

    assert result["state"] == "active"
    assert result["customerConnected"] is True
    assert result["disconnectedAt"] is None
    assert result["reconnectDeadline"] is None


def test_customer_reconnected_after_the_deadline_is_refused_even_before_the_timer(
    api: httpx.Client, clock: FakeClock
) -> None:
    put_widget(api)
    disconnected(api, "c1")
    clock.advance(minutes=LIMIT_MINUTES)  # exactly at the deadline: now < deadline fails

    problem = send(api, "c1", "customer_reconnected", expect=409)

    assert problem["state"] == "active"


def test_agent_ended_wraps_up_releases_capacity_and_ends_reconnect(
    api: httpx.Client, clock: FakeClock
) -> None:
    put_widget(api)
    disconnected(api, "c1")
    clock.advance(minutes=1)

    result = event(api, "c1", "agent_ended")

    assert result["state"] == "wrap_up"
    assert result["endReason"] == "agent_ended"


@pytest.mark.parametrize(
    ("agent", "expected_state"), [(None, "closed"), (AGENT, "wrap_up")], ids=["open", "active"]
)
def test_customer_ended(api: httpx.Client, agent: str | None, expected_state: str) -> None:
    put_widget(api)
    register(api, "c1", agent=agent)

    result = event(api, "c1", "customer_ended")

    assert result["state"] == expected_state
    assert result["endReason"] == "customer_ended"


def test_agent_closed_requeues_releases_capacity_and_keeps_the_window(
    api: httpx.Client, clock: FakeClock
) -> None:
    put_widget(api)
    left = disconnected(api, "c1")
    clock.advance(minutes=1)

    result = event(api, "c1", "agent_closed")

    assert result["state"] == "open"
    assert result["agentId"] is None
    assert result["reconnectDeadline"] == left["reconnectDeadline"]


def test_agent_closed_on_wrap_up_closes(api: httpx.Client) -> None:
    put_widget(api)
    register(api, "c1")
    send(api, "c1", "agent_ended")

    result = event(api, "c1", "agent_closed")

    assert result["state"] == "closed"
    assert result["endReason"] == "agent_closed"


# --- contract §2.2.1: the answers of a refusal and of a repeat -----------------------------------


def test_an_event_that_does_not_apply_is_409_with_the_state(api: httpx.Client) -> None:
    put_widget(api)
    register(api, "c1")
    send(api, "c1", "agent_ended")

    response = api.post("/conversations/c1/events", json={"type": "customer_reconnected"})

    assert response.status_code == 409, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    problem = response.json()
    assert {"type", "title", "status", "detail", "state"} <= set(problem)
    assert problem["status"] == 409
    assert problem["state"] == "wrap_up"


def test_a_repeated_event_id_answers_200_with_the_conversation_as_it_is_now(
    api: httpx.Client, clock: FakeClock
) -> None:
    put_widget(api)
    register(api, "c1")
    ended = event(api, "c1", "agent_ended", eventId="end-1")
    clock.advance(minutes=1)

    assert event(api, "c1", "agent_ended", eventId="end-1") == ended
    assert get(api, "c1") == ended


def test_reconnected_while_connected_changes_nothing(api: httpx.Client, clock: FakeClock) -> None:
    put_widget(api)
    registered = register(api, "c1")
    clock.advance(minutes=1)

    again = event(api, "c1", "customer_reconnected")

    assert again == registered
    assert get(api, "c1") == registered


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
