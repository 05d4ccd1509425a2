"""The conversation lifecycle and reconnect links, end to end through the local host.

Every row of the contract §2.2 table, the precise rules of 2.2.1, the links of 2.3, capacity
of 2.4 and every answer of the contract §3 "Widget" and "Platform" routes, over real HTTP.
The clock is the test's FakeClock; the timer is run by calling the service directly.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.conftest import START, FakeClock

WIDGET = "w"
AGENT = "agent-1"
LIMIT_MINUTES = 7
PORTAL = "https://contoso.example/chat?lang=en"
REDIRECT = "https://contoso.example/new-chat"
SLUG = "{ReconnectUrl{ReconnectID}}"
PROBLEM = "application/problem+json"
ISSUER = "https://login.contoso.example/"
UNKNOWN_LINK = "nobody-here.0." + "A" * 38
UNAVAILABLE_KEYS = {"isReconnectAvailable", "reconnectId", "conversationId", "expiresAt"}


# --- helpers ------------------------------------------------------------------------------


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def put_widget(api: httpx.Client, widget_id: str = WIDGET, **settings: Any) -> dict[str, Any]:
    body = {
        "reconnectEnabled": True,
        "timeLimitMinutes": LIMIT_MINUTES,
        "portalUrl": PORTAL,
        **settings,
    }
    response = api.put(f"/manage/widgets/{widget_id}", json=body)
    assert response.status_code in (200, 201), response.text
    return response.json()


def register(
    api: httpx.Client,
    conversation_id: str,
    *,
    widget: str = WIDGET,
    agent: str | None = AGENT,
    customer: str | None = None,
    expect: int = 201,
) -> dict[str, Any]:
    body: dict[str, Any] = {"widgetId": widget}
    if agent is not None:
        body["agentId"] = agent
    if customer is not None:
        body["customerId"] = customer
    response = api.put(f"/conversations/{conversation_id}", json=body)
    assert response.status_code == expect, response.text
    return response.json()


def send(
    api: httpx.Client, conversation_id: str, event_type: str, *, expect: int = 200, **extra: Any
) -> dict[str, Any]:
    response = api.post(
        f"/conversations/{conversation_id}/events", json={"type": event_type, **extra}
    )
    assert response.status_code == expect, response.text
    if expect >= 400:
        assert response.headers["content-type"].startswith(PROBLEM)
    return response.json()


def get(api: httpx.Client, conversation_id: str) -> dict[str, Any]:
    response = api.get(f"/conversations/{conversation_id}")
    assert response.status_code == 200, response.text
    return response.json()


def held(api: httpx.Client, agent: str = AGENT) -> int:
    response = api.get(f"/agents/{agent}/capacity")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["held"] == len(body["conversations"])
    return int(body["held"])


def link_of(conversation: dict[str, Any]) -> str:
    """The reconnect ID inside a conversation's reconnectUrl."""
    url = conversation["reconnectUrl"]
    assert url is not None
    return parse_qs(urlsplit(url).query)["oc.reconnectid"][0]


def context(api: httpx.Client, reconnect_id: str, widget: str = WIDGET, **kw: Any) -> Any:
    response = api.get(f"/widgets/{widget}/reconnect/{reconnect_id}", **kw)
    assert response.status_code == 200, response.text
    return response.json()


def resume(api: httpx.Client, reconnect_id: str, widget: str = WIDGET, **kw: Any) -> httpx.Response:
    return api.post(f"/widgets/{widget}/reconnect/{reconnect_id}", **kw)


def decline(
    api: httpx.Client, reconnect_id: str, widget: str = WIDGET, **kw: Any
) -> httpx.Response:
    return api.post(f"/widgets/{widget}/reconnect/{reconnect_id}/decline", **kw)


def unavailable(redirect: str | None) -> dict[str, Any]:
    return {
        "isReconnectAvailable": False,
        "reconnectId": None,
        "conversationId": None,
        "expiresAt": None,
        "redirectUrl": redirect,
    }


def assert_gone(response: httpx.Response, redirect: str | None) -> dict[str, Any]:
    """A 410 'reconnect unavailable' problem carrying `redirectUrl`."""
    assert response.status_code == 410, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["status"] == 410
    assert body["type"]
    assert body["title"]
    assert body["detail"]
    assert "redirectUrl" in body
    assert body["redirectUrl"] == redirect
    return body


def disconnected(api: httpx.Client, conversation_id: str, **register_kw: Any) -> dict[str, Any]:
    """A registered active conversation whose customer just disconnected."""
    register(api, conversation_id, **register_kw)
    return send(api, conversation_id, "customer_disconnected")


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


def test_timer_wraps_up_an_expired_active_conversation_only(
    api: httpx.Client, clock: FakeClock, service: Any
) -> None:
    put_widget(api)
    disconnected(api, "expires")
    disconnected(api, "came-back")
    send(api, "came-back", "customer_reconnected")
    clock.advance(seconds=30)
    # Its deadline falls in the same minute the timer runs in: the row is read, not yet due.
    disconnected(api, "still-waiting")
    assert held(api) == 3

    clock.now = START + timedelta(minutes=LIMIT_MINUTES, seconds=1)
    service.timer.run()

    expired = get(api, "expires")
    assert expired["state"] == "wrap_up"
    assert expired["endReason"] == "reconnect_timeout"
    assert expired["customerConnected"] is False
    assert expired["reconnectDeadline"] is None
    assert expired["agentId"] == AGENT
    waiting = get(api, "still-waiting")
    assert waiting["state"] == "active"
    assert waiting["customerConnected"] is False
    assert waiting["reconnectDeadline"] == iso(START + timedelta(minutes=LIMIT_MINUTES, seconds=30))
    back = get(api, "came-back")
    assert back["state"] == "active"
    assert back["customerConnected"] is True
    assert held(api) == 2


def test_timer_closes_a_requeued_conversation_after_the_deadline(
    api: httpx.Client, clock: FakeClock, service: Any
) -> None:
    put_widget(api)
    disconnected(api, "c1")
    send(api, "c1", "agent_closed")

    clock.advance(minutes=LIMIT_MINUTES, seconds=1)
    service.timer.run()

    result = get(api, "c1")
    assert result["state"] == "closed"
    assert result["endReason"] == "reconnect_timeout"
    assert result["customerConnected"] is False
    assert result["reconnectDeadline"] is None
    assert held(api) == 0


def test_timer_auto_closes_a_wrap_up_after_fifteen_minutes(
    api: httpx.Client, clock: FakeClock, service: Any
) -> None:
    put_widget(api)
    register(api, "c1")
    clock.advance(seconds=30)  # the auto-close moment is mid-minute, like the check below
    send(api, "c1", "agent_ended")

    clock.advance(minutes=15, seconds=-1)
    service.timer.run()
    assert get(api, "c1")["state"] == "wrap_up"

    clock.advance(seconds=2)
    service.timer.run()
    result = get(api, "c1")
    assert result["state"] == "closed"
    assert result["endReason"] == "auto_closed"
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


# --- register ------------------------------------------------------------------------------


def test_register_is_201_then_an_identical_repeat_is_200_with_the_same_body(
    api: httpx.Client, clock: FakeClock
) -> None:
    put_widget(api)
    created = register(api, "c1", customer="cust-1")
    assert created["conversationId"] == "c1"
    assert created["widgetId"] == WIDGET
    assert created["state"] == "active"
    assert created["customerConnected"] is True
    assert created["createdAt"] == iso(START)
    assert created["reconnectUrl"].startswith(PORTAL + "&oc.reconnectid=")
    clock.advance(minutes=1)

    repeated = register(api, "c1", customer="cust-1", expect=200)

    assert repeated == created
    assert get(api, "c1") == created
    assert held(api) == 1


@pytest.mark.parametrize(
    "change",
    [{"widget": "w2"}, {"agent": "agent-2"}, {"customer": "cust-2"}],
    ids=["other-widget", "other-agent", "other-customer"],
)
def test_register_again_with_another_widget_agent_or_customer_is_409(
    api: httpx.Client, change: dict[str, str]
) -> None:
    put_widget(api)
    put_widget(api, "w2")
    created = register(api, "c1", customer="cust-1")

    kwargs: dict[str, Any] = {"customer": "cust-1", **change}
    response = api.put(
        "/conversations/c1",
        json={
            "widgetId": kwargs.get("widget", WIDGET),
            "agentId": kwargs.get("agent", AGENT),
            "customerId": kwargs["customer"],
        },
    )

    assert response.status_code == 409, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    assert response.json()["state"] == "active"  # every 409 names the current state
    assert get(api, "c1") == created
    assert held(api, "agent-2") == 0


def test_register_on_an_unknown_widget_is_404(api: httpx.Client) -> None:
    response = api.put("/conversations/c1", json={"widgetId": "ghost", "agentId": AGENT})

    assert response.status_code == 404, response.text
    assert api.get("/conversations/c1").status_code == 404


def test_register_on_an_authenticated_widget_needs_a_customer_id(
    api: httpx.Client, customer_keys: CustomerKeys
) -> None:
    put_widget(api, authentication=customer_keys.authentication)

    response = api.put("/conversations/c1", json={"widgetId": WIDGET, "agentId": AGENT})
    assert response.status_code == 422, response.text
    assert [error["field"] for error in response.json()["errors"]] == ["customerId"]
    assert api.get("/conversations/c1").status_code == 404

    assert register(api, "c1", customer="cust-1")["state"] == "active"


@pytest.mark.parametrize("bad_id", ["-starts-with-dash", "x" * 129, "has%20space"])
def test_a_bad_conversation_id_is_400(api: httpx.Client, bad_id: str) -> None:
    put_widget(api)
    for response in (
        api.put(f"/conversations/{bad_id}", json={"widgetId": WIDGET}),
        api.get(f"/conversations/{bad_id}"),
        api.post(f"/conversations/{bad_id}/events", json={"type": "agent_ended"}),
    ):
        assert response.status_code == 400, response.text
        assert response.headers["content-type"].startswith(PROBLEM)


# --- links: reconnectUrl, quick reply, revoke ------------------------------------------------


def test_reconnect_url_is_null_while_the_widget_has_reconnection_disabled(
    api: httpx.Client,
) -> None:
    put_widget(api, reconnectEnabled=False)
    assert register(api, "c1")["reconnectUrl"] is None

    put_widget(api)
    url = get(api, "c1")["reconnectUrl"]
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == "https://contoso.example/chat"
    query = parse_qs(parts.query)
    assert query["lang"] == ["en"]
    assert len(query["oc.reconnectid"]) == 1

    put_widget(api, reconnectEnabled=False)
    assert get(api, "c1")["reconnectUrl"] is None


def test_quick_reply_renders_the_slug_to_the_link(api: httpx.Client) -> None:
    put_widget(api)
    url = register(api, "c1")["reconnectUrl"]

    rendered = api.post(
        "/conversations/c1/quick-reply", json={"text": f"Come back here: {SLUG} (or {SLUG})"}
    )
    plain = api.post("/conversations/c1/quick-reply", json={"text": "No link {here}."})

    assert rendered.status_code == 200, rendered.text
    assert rendered.json() == {"text": f"Come back here: {url} (or {url})"}
    assert plain.status_code == 200, plain.text
    assert plain.json() == {"text": "No link {here}."}


def test_quick_reply_while_reconnection_is_off(api: httpx.Client) -> None:
    put_widget(api, reconnectEnabled=False)
    register(api, "c1")

    plain = api.post("/conversations/c1/quick-reply", json={"text": "Thanks for waiting."})
    with_slug = api.post("/conversations/c1/quick-reply", json={"text": f"Link: {SLUG}"})

    assert plain.status_code == 200, plain.text
    assert plain.json() == {"text": "Thanks for waiting."}
    assert with_slug.status_code == 409, with_slug.text
    assert with_slug.json()["state"] == "active"


def test_revoke_issues_a_new_link_and_the_old_one_stops_at_once(
    api: httpx.Client, clock: FakeClock
) -> None:
    put_widget(api, redirectUrl=REDIRECT)
    conversation = disconnected(api, "c1")
    old = link_of(conversation)
    assert context(api, old)["isReconnectAvailable"] is True

    response = api.post("/conversations/c1/reconnect-link/revoke")

    assert response.status_code == 200, response.text
    new_url = response.json()["reconnectUrl"]
    assert new_url != conversation["reconnectUrl"]
    assert get(api, "c1")["reconnectUrl"] == new_url
    new = parse_qs(urlsplit(new_url).query)["oc.reconnectid"][0]
    assert context(api, old) == unavailable(REDIRECT)
    assert_gone(resume(api, old), REDIRECT)
    assert context(api, new)["isReconnectAvailable"] is True
    answer = resume(api, new)
    assert answer.status_code == 200, answer.text
    assert answer.json()["sameAgent"] is True
    # The quick reply now renders the new link.
    reply = api.post("/conversations/c1/quick-reply", json={"text": SLUG})
    assert reply.json() == {"text": new_url}


# --- widget routes: context, continue -----------------------------------------------------------


def test_context_of_a_usable_link(api: httpx.Client, clock: FakeClock) -> None:
    put_widget(api, redirectUrl=REDIRECT)
    conversation = disconnected(api, "c1")
    reconnect_id = link_of(conversation)
    clock.advance(minutes=2)

    assert context(api, reconnect_id) == {
        "isReconnectAvailable": True,
        "reconnectId": reconnect_id,
        "conversationId": "c1",
        "expiresAt": conversation["reconnectDeadline"],
        "redirectUrl": None,
    }


def test_continue_reconnects_to_the_same_agent_and_is_idempotent(
    api: httpx.Client, clock: FakeClock
) -> None:
    put_widget(api)
    reconnect_id = link_of(disconnected(api, "c1"))
    clock.advance(minutes=3)
    reconnected_at = clock.now

    first = resume(api, reconnect_id)

    assert first.status_code == 200, first.text
    assert first.json() == {
        "conversationId": "c1",
        "state": "active",
        "agentId": AGENT,
        "sameAgent": True,
        "reconnectedAt": iso(reconnected_at),
    }
    after = get(api, "c1")
    assert after["state"] == "active"
    assert after["customerConnected"] is True
    assert after["disconnectedAt"] is None
    assert after["reconnectDeadline"] is None
    assert after["updatedAt"] == iso(reconnected_at)
    assert held(api) == 1

    clock.advance(seconds=20)
    second = resume(api, reconnect_id)
    assert second.status_code == 200, second.text
    body = second.json()
    assert {k: body[k] for k in ("conversationId", "state", "agentId", "sameAgent")} == {
        "conversationId": "c1",
        "state": "active",
        "agentId": AGENT,
        "sameAgent": True,
    }
    assert get(api, "c1") == after
    assert held(api) == 1


def test_page_refresh_while_still_connected_is_a_valid_continue(
    api: httpx.Client, clock: FakeClock
) -> None:
    put_widget(api)
    registered = register(api, "c1")
    reconnect_id = link_of(registered)
    clock.advance(minutes=1)

    assert context(api, reconnect_id) == {
        "isReconnectAvailable": True,
        "reconnectId": reconnect_id,
        "conversationId": "c1",
        "expiresAt": None,
        "redirectUrl": None,
    }
    answer = resume(api, reconnect_id)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "conversationId": "c1",
        "state": "active",
        "agentId": AGENT,
        "sameAgent": True,
        "reconnectedAt": iso(clock.now),
    }
    assert get(api, "c1") == registered


def test_continue_after_agent_closed_reaches_the_queue_not_the_agent(
    api: httpx.Client, clock: FakeClock
) -> None:
    put_widget(api)
    reconnect_id = link_of(register(api, "c1"))
    send(api, "c1", "agent_closed")
    clock.advance(seconds=5)

    answer = resume(api, reconnect_id)

    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "conversationId": "c1",
        "state": "open",
        "agentId": None,
        "sameAgent": False,
        "reconnectedAt": iso(clock.now),
    }
    assert held(api) == 0


def test_continue_after_requeue_to_another_agent_is_not_the_same_agent(
    api: httpx.Client, clock: FakeClock
) -> None:
    put_widget(api)
    reconnect_id = link_of(register(api, "c1"))
    send(api, "c1", "customer_disconnected")
    send(api, "c1", "agent_closed")
    send(api, "c1", "agent_assigned", agentId="agent-2")
    clock.advance(seconds=5)

    answer = resume(api, reconnect_id)

    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["state"], body["agentId"], body["sameAgent"]) == ("active", "agent-2", False)


def test_the_deadline_is_checked_at_request_time_to_the_second(
    api: httpx.Client, clock: FakeClock
) -> None:
    put_widget(api, redirectUrl=REDIRECT)
    early = link_of(disconnected(api, "early"))
    late = link_of(disconnected(api, "late"))
    deadline = START + timedelta(minutes=LIMIT_MINUTES)

    clock.now = deadline - timedelta(seconds=1)
    assert context(api, early)["expiresAt"] == iso(deadline)
    assert context(api, late)["isReconnectAvailable"] is True
    answer = resume(api, early)
    assert answer.status_code == 200, answer.text

    clock.now = deadline
    assert context(api, late) == unavailable(REDIRECT)
    assert_gone(resume(api, late), REDIRECT)

    clock.now = deadline + timedelta(seconds=1)
    assert context(api, late) == unavailable(REDIRECT)
    assert_gone(resume(api, late), REDIRECT)
    # The timer has not run: the conversation itself has not moved yet.
    assert get(api, "late")["state"] == "active"
    assert get(api, "early")["customerConnected"] is True


# --- every unavailable case looks the same ----------------------------------------------------


def _unknown(api: httpx.Client, clock: FakeClock, service: Any) -> tuple[str, str | None]:
    return UNKNOWN_LINK, None


def _malformed(api: httpx.Client, clock: FakeClock, service: Any) -> tuple[str, str | None]:
    disconnected(api, "c1")
    return "not-a-reconnect-link", "c1"


def _tampered(api: httpx.Client, clock: FakeClock, service: Any) -> tuple[str, str | None]:
    reconnect_id = link_of(disconnected(api, "c1"))
    flipped = "B" if reconnect_id[-1] != "B" else "C"
    return reconnect_id[:-1] + flipped, "c1"


def _other_epoch(api: httpx.Client, clock: FakeClock, service: Any) -> tuple[str, str | None]:
    reconnect_id = link_of(disconnected(api, "c1"))
    conversation_id, epoch, tail = reconnect_id.split(".")
    return f"{conversation_id}.{int(epoch) + 1}.{tail}", "c1"


def _expired(api: httpx.Client, clock: FakeClock, service: Any) -> tuple[str, str | None]:
    reconnect_id = link_of(disconnected(api, "c1"))
    clock.advance(minutes=LIMIT_MINUTES, seconds=1)  # the timer has not run
    return reconnect_id, "c1"


def _timed_out(api: httpx.Client, clock: FakeClock, service: Any) -> tuple[str, str | None]:
    reconnect_id = link_of(disconnected(api, "c1"))
    clock.advance(minutes=LIMIT_MINUTES, seconds=1)
    service.timer.run()
    return reconnect_id, "c1"


def _agent_ended(api: httpx.Client, clock: FakeClock, service: Any) -> tuple[str, str | None]:
    reconnect_id = link_of(disconnected(api, "c1"))
    send(api, "c1", "agent_ended")
    return reconnect_id, "c1"


def _customer_ended(api: httpx.Client, clock: FakeClock, service: Any) -> tuple[str, str | None]:
    reconnect_id = link_of(register(api, "c1"))
    send(api, "c1", "customer_ended")
    return reconnect_id, "c1"


def _revoked(api: httpx.Client, clock: FakeClock, service: Any) -> tuple[str, str | None]:
    reconnect_id = link_of(disconnected(api, "c1"))
    assert api.post("/conversations/c1/reconnect-link/revoke").status_code == 200
    return reconnect_id, "c1"


def _other_widget(api: httpx.Client, clock: FakeClock, service: Any) -> tuple[str, str | None]:
    put_widget(api, "widget-a", redirectUrl=REDIRECT)
    reconnect_id = link_of(disconnected(api, "c1", widget="widget-a"))
    assert context(api, reconnect_id, "widget-a")["isReconnectAvailable"] is True
    return reconnect_id, "c1"


def _disabled_after_disconnect(
    api: httpx.Client, clock: FakeClock, service: Any
) -> tuple[str, str | None]:
    reconnect_id = link_of(disconnected(api, "c1"))
    put_widget(api, reconnectEnabled=False, redirectUrl=REDIRECT)
    return reconnect_id, "c1"


_UNAVAILABLE_CASES = {
    "unknown": _unknown,
    "malformed": _malformed,
    "tampered": _tampered,
    "forged-epoch": _other_epoch,
    "expired-before-timer": _expired,
    "timed-out": _timed_out,
    "agent-ended": _agent_ended,
    "customer-ended": _customer_ended,
    "revoked": _revoked,
    "link-of-another-widget": _other_widget,
    "reconnect-disabled-after-disconnect": _disabled_after_disconnect,
}

Case = Callable[[httpx.Client, FakeClock, Any], tuple[str, str | None]]


@pytest.mark.parametrize("case", _UNAVAILABLE_CASES.values(), ids=_UNAVAILABLE_CASES.keys())
def test_every_unavailable_link_gets_the_same_answer_and_decline_changes_nothing(
    api: httpx.Client, clock: FakeClock, service: Any, case: Case
) -> None:
    put_widget(api, redirectUrl=REDIRECT)
    reconnect_id, conversation_id = case(api, clock, service)
    before = get(api, conversation_id) if conversation_id else None
    capacity_before = held(api)
    reference_get = context(api, UNKNOWN_LINK)
    reference_post = resume(api, UNKNOWN_LINK)

    got = context(api, reconnect_id)
    posted = resume(api, reconnect_id)
    declined = decline(api, reconnect_id)

    assert got == unavailable(REDIRECT)
    assert got == reference_get
    assert assert_gone(posted, REDIRECT) == assert_gone(reference_post, REDIRECT)
    assert declined.status_code == 204, declined.text
    assert declined.content == b""
    if conversation_id:
        assert get(api, conversation_id) == before
    assert held(api) == capacity_before


def test_all_410_problems_share_type_and_title_with_and_without_redirect(
    api: httpx.Client,
) -> None:
    put_widget(api, redirectUrl=REDIRECT)
    put_widget(api, "plain")

    with_redirect = assert_gone(resume(api, UNKNOWN_LINK), REDIRECT)
    without = assert_gone(resume(api, UNKNOWN_LINK, "plain"), None)

    assert with_redirect["type"] == without["type"]
    assert with_redirect["title"] == without["title"]
    assert with_redirect["detail"] == without["detail"]


def test_without_a_configured_redirect_the_unavailable_answers_carry_null(
    api: httpx.Client, clock: FakeClock
) -> None:
    put_widget(api)  # no redirectUrl
    reconnect_id = link_of(disconnected(api, "c1"))
    clock.advance(minutes=LIMIT_MINUTES, seconds=1)

    assert context(api, reconnect_id) == unavailable(None)
    assert assert_gone(resume(api, reconnect_id), None)["redirectUrl"] is None
    assert context(api, UNKNOWN_LINK) == unavailable(None)

    # An admin clearing the field with "" also means none.
    put_widget(api, redirectUrl="")
    assert context(api, reconnect_id) == unavailable(None)
    assert_gone(resume(api, reconnect_id), None)


def test_an_unknown_widget_is_404_on_every_link_route(api: httpx.Client) -> None:
    put_widget(api)
    reconnect_id = link_of(disconnected(api, "c1"))
    before = get(api, "c1")

    for response in (
        api.get(f"/widgets/ghost/reconnect/{reconnect_id}"),
        resume(api, reconnect_id, "ghost"),
        decline(api, reconnect_id, "ghost"),
    ):
        assert response.status_code == 404, response.text
        assert response.headers["content-type"].startswith(PROBLEM)
    assert get(api, "c1") == before
    assert api.get(f"/widgets/bad!id/reconnect/{reconnect_id}").status_code == 400


# --- decline -------------------------------------------------------------------------------------


def test_decline_of_an_active_conversation_wraps_it_up_and_is_idempotent(
    api: httpx.Client, clock: FakeClock
) -> None:
    put_widget(api)
    reconnect_id = link_of(disconnected(api, "c1"))
    clock.advance(minutes=1)

    first = decline(api, reconnect_id)

    assert first.status_code == 204, first.text
    ended = get(api, "c1")
    assert ended["state"] == "wrap_up"
    assert ended["endReason"] == "customer_declined"
    assert ended["customerConnected"] is False
    assert ended["reconnectDeadline"] is None
    assert held(api) == 0
    assert context(api, reconnect_id) == unavailable(None)

    clock.advance(minutes=1)
    second = decline(api, reconnect_id)
    assert second.status_code == 204, second.text
    assert get(api, "c1") == ended
    assert held(api) == 0


def test_decline_of_an_open_conversation_closes_it(api: httpx.Client, clock: FakeClock) -> None:
    put_widget(api)
    reconnect_id = link_of(register(api, "c1", agent=None))

    assert decline(api, reconnect_id).status_code == 204
    ended = get(api, "c1")
    assert ended["state"] == "closed"
    assert ended["endReason"] == "customer_declined"

    clock.advance(minutes=1)
    assert decline(api, reconnect_id).status_code == 204
    assert get(api, "c1") == ended


# --- authenticated widgets: a link works only for its customer -----------------------------------


class CustomerKeys:
    """An RSA key pair standing in for the customer identity provider."""

    def __init__(self) -> None:
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.private_pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        public_pem = private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.authentication = {
            "issuer": ISSUER,
            "audience": None,
            "publicKeys": [{"kid": "k1", "pem": public_pem.decode()}],
        }

    def bearer(self, customer_id: str) -> dict[str, str]:
        # Token lifetimes are checked against real time by PyJWT, not the service clock.
        now = int(time.time())
        claims = {"iss": ISSUER, "sub": customer_id, "iat": now, "exp": now + 600}
        token = jwt.encode(claims, self.private_pem, algorithm="RS256", headers={"kid": "k1"})
        return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def customer_keys() -> CustomerKeys:
    return CustomerKeys()


def test_on_an_authenticated_widget_a_link_works_only_for_its_customer(
    api: httpx.Client, customer_keys: CustomerKeys
) -> None:
    put_widget(api, redirectUrl=REDIRECT, authentication=customer_keys.authentication)
    reconnect_id = link_of(disconnected(api, "c1", customer="alice"))
    alice, mallory = customer_keys.bearer("alice"), customer_keys.bearer("mallory")
    before = get(api, "c1")

    assert api.get(f"/widgets/{WIDGET}/reconnect/{reconnect_id}").status_code == 401
    assert resume(api, reconnect_id).status_code == 401
    assert decline(api, reconnect_id).status_code == 401
    assert context(api, reconnect_id, headers=mallory) == unavailable(REDIRECT)
    assert context(api, reconnect_id, headers=mallory) == context(
        api, UNKNOWN_LINK, headers=mallory
    )
    assert_gone(resume(api, reconnect_id, headers=mallory), REDIRECT)
    assert decline(api, reconnect_id, headers=mallory).status_code == 204
    assert get(api, "c1") == before

    assert context(api, reconnect_id, headers=alice)["conversationId"] == "c1"
    answer = resume(api, reconnect_id, headers=alice)
    assert answer.status_code == 200, answer.text
    assert answer.json()["sameAgent"] is True
