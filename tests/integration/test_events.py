"""Integration events end to end on Azurite (contract §5): every row of the §2.2 table, every
widget action and both timer outcomes emit exactly the event they should, in sequence, with
`data` equal to GET /api/conversations/{id} without `reconnectUrl`; anything that changes
nothing emits nothing. The relay runs as its queue trigger over what the writes staged."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from local.azurite import Azurite, AzuriteQueue
from shared.services.app import App
from shared.wiring import set_service
from tests.conftest import START, FakeClock, make_service
from tests.integration.events import SOURCE, EventTap, test_queues
from tests.integration.timer import AUTO_CLOSE, PORTAL, REDIRECT, reconnect_id

WIDGET = "w-events"
OFF = "w-events-off"  # reconnection disabled
AGENT = "agent-1"
LIMIT = timedelta(minutes=10)


@pytest.fixture
def app(azurite: Azurite, azurite_queue: AzuriteQueue, clock: FakeClock) -> Iterator[App]:
    built = make_service(azurite.connection_string, clock, events=test_queues(azurite_queue))
    set_service(built)
    try:
        yield built
    finally:
        set_service(None)


@pytest.fixture
def api(host_url: str, app: App, clock: FakeClock) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=host_url + "/api", timeout=30) as client:
        for widget_id, enabled in ((WIDGET, True), (OFF, False)):
            answer = client.put(
                f"/manage/widgets/{widget_id}",
                json={
                    "reconnectEnabled": enabled,
                    "timeLimitMinutes": 10,
                    "portalUrl": PORTAL,
                    "redirectUrl": REDIRECT,
                },
            )
            assert answer.status_code == 201, answer.text
        yield client


@pytest.fixture
def tap(app: App) -> EventTap:
    return EventTap(app)


def register(api: httpx.Client, cid: str, agent: str | None = AGENT, widget: str = WIDGET) -> None:
    body: dict[str, Any] = {"widgetId": widget}
    if agent:
        body["agentId"] = agent
    answer = api.put(f"/conversations/{cid}", json=body)
    assert answer.status_code in (200, 201), answer.text


def post_event(api: httpx.Client, cid: str, kind: str, status: int = 200, **extra: str) -> None:
    answer = api.post(f"/conversations/{cid}/events", json={"type": kind, **extra})
    assert answer.status_code == status, answer.text


def the_event(
    api: httpx.Client,
    tap: EventTap,
    cid: str,
    what: str,
    via: str,
    previous: str | None,
    released: str | None = None,
) -> dict[str, Any]:
    """Exactly one event was published since the last look, and it says this."""
    events = tap.drain()
    assert len(events) == 1, [e["type"] for e in events]
    (event,) = events
    view = api.get(f"/conversations/{cid}").json()
    del view["reconnectUrl"]
    assert event["type"] == "chatreconnect.conversation." + what
    assert event["data"] == {
        **view,
        "previousState": previous,
        "via": via,
        "capacityReleased": released,
    }
    assert event["subject"] == f"conversations/{cid}"
    assert event["time"] == view["updatedAt"]
    assert (event["specversion"], event["source"], event["datacontenttype"]) == (
        "1.0",
        SOURCE,
        "application/json",
    )
    assert len(event["id"]) == 22
    return event


def nothing(tap: EventTap) -> None:
    assert tap.drain() == []


def assert_in_sequence(tap: EventTap) -> None:
    """Per conversation, sequences 1, 2, ... without gaps, and every id distinct."""
    by_conversation: dict[str, list[int]] = {}
    for event in tap.seen:
        by_conversation.setdefault(event["subject"], []).append(int(event["sequence"]))
    for subject, sequences in by_conversation.items():
        assert sequences == list(range(1, len(sequences) + 1)), subject
        assert all(len(event["sequence"]) == 10 for event in tap.seen)
    assert len({event["id"] for event in tap.seen}) == len(tap.seen)


# --- the platform's events: every row of contract §2.2 ------------------------------------


def test_register_open_then_agent_assigned(api: httpx.Client, tap: EventTap) -> None:
    register(api, "c1", agent=None)
    event = the_event(api, tap, "c1", "registered", "platform", None)
    assert event["sequence"] == "0000000001"
    post_event(api, "c1", "agent_assigned", agentId=AGENT)
    assert the_event(api, tap, "c1", "agent_assigned", "platform", "open")["sequence"] == (
        "0000000002"
    )
    assert_in_sequence(tap)


def test_a_repeated_registration_emits_nothing(api: httpx.Client, tap: EventTap) -> None:
    register(api, "c1")
    the_event(api, tap, "c1", "registered", "platform", None)
    register(api, "c1")
    answer = api.put("/conversations/c1", json={"widgetId": OFF})
    assert answer.status_code == 409
    nothing(tap)


def test_disconnect_with_reconnect_enabled_then_reconnected(
    api: httpx.Client, tap: EventTap, clock: FakeClock
) -> None:
    register(api, "c1")
    tap.drain()
    clock.advance(seconds=30)
    post_event(api, "c1", "customer_disconnected")
    the_event(api, tap, "c1", "customer_disconnected", "platform", "active")
    post_event(api, "c1", "customer_disconnected")  # a second disconnect: no-op
    nothing(tap)
    clock.advance(seconds=30)
    post_event(api, "c1", "customer_reconnected")
    the_event(api, tap, "c1", "customer_reconnected", "platform", "active")
    post_event(api, "c1", "customer_reconnected")  # while connected: no-op
    nothing(tap)
    assert_in_sequence(tap)


def test_disconnect_with_reconnect_disabled_releases_the_agent(
    api: httpx.Client, tap: EventTap
) -> None:
    register(api, "c1", widget=OFF)
    tap.drain()
    post_event(api, "c1", "customer_disconnected")
    the_event(api, tap, "c1", "customer_disconnected", "platform", "active", AGENT)


def test_disconnect_while_open_closes(api: httpx.Client, tap: EventTap) -> None:
    register(api, "c1", agent=None)
    tap.drain()
    post_event(api, "c1", "customer_disconnected")
    the_event(api, tap, "c1", "customer_disconnected", "platform", "open")


def test_agent_ended_then_agent_closed_the_wrap_up(api: httpx.Client, tap: EventTap) -> None:
    register(api, "c1")
    tap.drain()
    post_event(api, "c1", "agent_ended")
    the_event(api, tap, "c1", "agent_ended", "platform", "active", AGENT)
    post_event(api, "c1", "agent_ended", status=409)  # refused: nothing
    post_event(api, "c1", "customer_disconnected", status=409)
    nothing(tap)
    post_event(api, "c1", "agent_closed")
    the_event(api, tap, "c1", "agent_closed", "platform", "wrap_up")
    assert_in_sequence(tap)


@pytest.mark.parametrize(
    ("agent", "previous", "released"), [(None, "open", None), (AGENT, "active", AGENT)]
)
def test_customer_ended(
    api: httpx.Client, tap: EventTap, agent: str | None, previous: str, released: str | None
) -> None:
    register(api, "c1", agent=agent)
    tap.drain()
    post_event(api, "c1", "customer_ended")
    the_event(api, tap, "c1", "customer_ended", "platform", previous, released)


def test_agent_closed_an_active_conversation_requeues_it(api: httpx.Client, tap: EventTap) -> None:
    register(api, "c1")
    tap.drain()
    post_event(api, "c1", "agent_closed")
    event = the_event(api, tap, "c1", "agent_closed", "platform", "active", AGENT)
    assert (event["data"]["state"], event["data"]["agentId"]) == ("open", None)


def test_a_retried_event_id_emits_nothing(api: httpx.Client, tap: EventTap) -> None:
    register(api, "c1")
    tap.drain()
    post_event(api, "c1", "customer_disconnected", eventId="e-1")
    the_event(api, tap, "c1", "customer_disconnected", "platform", "active")
    post_event(api, "c1", "customer_disconnected", eventId="e-1")
    # A new eventId for a no-op is remembered (a write) but is no change to report.
    post_event(api, "c1", "customer_disconnected", eventId="e-2")
    nothing(tap)


def test_a_revoke_emits_link_revoked(api: httpx.Client, tap: EventTap) -> None:
    register(api, "c1")
    tap.drain()
    assert api.post("/conversations/c1/reconnect-link/revoke").status_code == 200
    the_event(api, tap, "c1", "link_revoked", "platform", "active")


# --- the widget -----------------------------------------------------------------------------


def disconnected(api: httpx.Client, tap: EventTap, clock: FakeClock, cid: str = "c1") -> str:
    register(api, cid)
    clock.advance(seconds=30)
    post_event(api, cid, "customer_disconnected")
    tap.drain()
    return reconnect_id(api, cid)


def test_continue_and_a_repeated_continue(
    api: httpx.Client, tap: EventTap, clock: FakeClock
) -> None:
    link = disconnected(api, tap, clock)
    clock.advance(minutes=1)
    assert api.post(f"/widgets/{WIDGET}/reconnect/{link}").status_code == 200
    event = the_event(api, tap, "c1", "customer_reconnected", "widget", "active")
    assert event["sequence"] == "0000000003"
    assert api.post(f"/widgets/{WIDGET}/reconnect/{link}").status_code == 200
    nothing(tap)
    assert_in_sequence(tap)


def test_decline_and_a_decline_on_an_unusable_link(
    api: httpx.Client, tap: EventTap, clock: FakeClock
) -> None:
    link = disconnected(api, tap, clock)
    assert api.post(f"/widgets/{WIDGET}/reconnect/{link}/decline").status_code == 204
    the_event(api, tap, "c1", "customer_declined", "widget", "active", AGENT)
    assert api.post(f"/widgets/{WIDGET}/reconnect/{link}/decline").status_code == 204
    assert api.post(f"/widgets/{WIDGET}/reconnect/not-a-link/decline").status_code == 204
    nothing(tap)


def test_decline_of_a_requeued_conversation_closes_it(
    api: httpx.Client, tap: EventTap, clock: FakeClock
) -> None:
    link = disconnected(api, tap, clock)
    post_event(api, "c1", "agent_closed")
    the_event(api, tap, "c1", "agent_closed", "platform", "active", AGENT)
    assert api.post(f"/widgets/{WIDGET}/reconnect/{link}/decline").status_code == 204
    event = the_event(api, tap, "c1", "customer_declined", "widget", "open")
    assert event["data"]["state"] == "closed"


# --- the timer ------------------------------------------------------------------------------


def test_the_timers_two_outcomes(
    api: httpx.Client, tap: EventTap, clock: FakeClock, app: App
) -> None:
    clock.now = START
    disconnected(api, tap, clock, "c1")
    disconnected(api, tap, clock, "c2")
    post_event(api, "c2", "agent_closed")  # re-queued, customer still away
    tap.drain()
    clock.advance(minutes=10, seconds=1)
    report = app.timer.run()
    assert (report.expired, report.closed) == (1, 1)
    events = {e["subject"]: e for e in tap.drain()}
    assert set(events) == {"conversations/c1", "conversations/c2"}
    for cid, state in (("c1", "wrap_up"), ("c2", "closed")):
        event = events[f"conversations/{cid}"]
        view = api.get(f"/conversations/{cid}").json()
        del view["reconnectUrl"]
        assert event["type"] == "chatreconnect.conversation.reconnect_timeout"
        assert event["data"]["state"] == state
        assert {k: v for k, v in event["data"].items() if k in view} == view
    assert events["conversations/c1"]["data"]["capacityReleased"] == AGENT
    assert events["conversations/c2"]["data"]["capacityReleased"] is None
    assert events["conversations/c1"]["data"]["via"] == "timer"
    assert events["conversations/c1"]["data"]["previousState"] == "active"
    assert events["conversations/c2"]["data"]["previousState"] == "open"
    clock.advance(seconds=AUTO_CLOSE.total_seconds())
    app.timer.run()
    the_event(api, tap, "c1", "auto_closed", "timer", "wrap_up")
    app.timer.run()
    nothing(tap)
    assert_in_sequence(tap)


def test_events_off_stage_nothing_but_keep_the_sequence(
    azurite: Azurite, clock: FakeClock, host_url: str
) -> None:
    app = make_service(azurite.connection_string, clock)
    assert app.relay is None
    set_service(app)
    try:
        with httpx.Client(base_url=host_url + "/api", timeout=30) as client:
            client.put(f"/manage/widgets/{WIDGET}", json={"reconnectEnabled": False})
            register(client, "c1")
            post_event(client, "c1", "agent_ended")
    finally:
        set_service(None)
    stored = app.store.get_conversation("c1")
    assert stored is not None
    assert stored.value.sequence == 2
    assert len(stored.value.change_ids) == 2
