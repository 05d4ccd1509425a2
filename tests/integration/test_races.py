"""Concurrent callers over real HTTP: each conversation gets exactly one consistent outcome.

Requests race through the in-process local host (its handlers run in a thread pool), and
the timer runs in the test's threads; a barrier releases every contender at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import httpx

from shared.services.app import App
from tests.conftest import START, FakeClock

T = TypeVar("T")

WIDGET = "w"
AGENTS = ("agent-a", "agent-b", "agent-c")
CONVERSATIONS = 50
LIMIT_MINUTES = 10
# Disconnects happen half a minute in, so that a second before the deadline falls in the
# deadline's own minute bucket: the timer reads the row and must decide "not yet" itself.
DISCONNECT_AT = START + timedelta(seconds=30)
DEADLINE = DISCONNECT_AT + timedelta(minutes=LIMIT_MINUTES)


def _setup_disconnected(
    api: httpx.Client, clock: FakeClock, count: int = CONVERSATIONS
) -> dict[str, str]:
    """`count` active conversations whose customers left at DISCONNECT_AT: id -> reconnect ID."""
    response = api.put(
        f"/manage/widgets/{WIDGET}",
        json={
            "reconnectEnabled": True,
            "timeLimitMinutes": LIMIT_MINUTES,
            "portalUrl": "https://contoso.example/chat",
        },
    )
    assert response.status_code == 201, response.text
    ids = [f"race-{number:03d}" for number in range(count)]
    for number, conversation_id in enumerate(ids):
        agent = AGENTS[number % len(AGENTS)]
        response = api.put(
            f"/conversations/{conversation_id}", json={"widgetId": WIDGET, "agentId": agent}
        )
        assert response.status_code == 201, response.text
    clock.now = DISCONNECT_AT
    links = {}
    for conversation_id in ids:
        response = api.post(
            f"/conversations/{conversation_id}/events", json={"type": "customer_disconnected"}
        )
        assert response.status_code == 200, response.text
        url = response.json()["reconnectUrl"]
        links[conversation_id] = parse_qs(urlsplit(url).query)["oc.reconnectid"][0]
    return links


def _all_at_once(calls: list[Callable[[], T]]) -> list[T]:
    """Run every call in its own thread, released together by a barrier; results in order."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], T]) -> T:
        barrier.wait(timeout=60)
        return call()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, calls))


def _conversations(api: httpx.Client, ids: list[str]) -> dict[str, dict[str, Any]]:
    found = {}
    for conversation_id in ids:
        response = api.get(f"/conversations/{conversation_id}")
        assert response.status_code == 200, response.text
        found[conversation_id] = response.json()
    return found


def _assert_capacity_agrees(
    api: httpx.Client, service: App, conversations: dict[str, dict[str, Any]]
) -> None:
    """The capacity rows, and the capacity route, list exactly the conversations holding one."""
    for agent in AGENTS:
        holding = sorted(
            conversation_id
            for conversation_id, conversation in conversations.items()
            if conversation["state"] == "active" and conversation["agentId"] == agent
        )
        assert sorted(service.store.capacity_rows(agent)) == holding, agent
        response = api.get(f"/agents/{agent}/capacity")
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["held"] == len(holding), agent
        assert sorted(c["conversationId"] for c in body["conversations"]) == holding


def test_continue_racing_agent_ended_ends_every_conversation_in_wrap_up(
    api: httpx.Client, clock: FakeClock, service: App
) -> None:
    links = _setup_disconnected(api, clock)
    clock.advance(minutes=1)

    def continue_(conversation_id: str) -> Callable[[], httpx.Response]:
        return lambda: api.post(f"/widgets/{WIDGET}/reconnect/{links[conversation_id]}")

    def end(conversation_id: str) -> Callable[[], httpx.Response]:
        return lambda: api.post(
            f"/conversations/{conversation_id}/events",
            json={"type": "agent_ended", "eventId": f"end-{conversation_id}"},
        )

    ids = sorted(links)
    calls = [call for cid in ids for call in (continue_(cid), end(cid))]
    answers = _all_at_once(calls)

    server_errors = [answer.text for answer in answers if answer.status_code >= 500]
    assert not server_errors
    continued = 0
    for number, conversation_id in enumerate(ids):
        resumed, ended = answers[2 * number], answers[2 * number + 1]
        # agent_ended applies to active whether or not the customer came back first.
        assert ended.status_code == 200, ended.text
        assert ended.json()["state"] == "wrap_up"
        assert ended.json()["endReason"] == "agent_ended"
        # The continue either won (200, still active then) or found the session ended.
        assert resumed.status_code in (200, 410), resumed.text
        if resumed.status_code == 200:
            continued += 1
            assert resumed.json()["conversationId"] == conversation_id
            assert resumed.json()["state"] == "active"
            assert resumed.json()["sameAgent"] is True

    conversations = _conversations(api, ids)
    for conversation_id, conversation in conversations.items():
        assert conversation["state"] == "wrap_up", conversation_id
        assert conversation["endReason"] == "agent_ended", conversation_id
        assert conversation["customerConnected"] is False, conversation_id
        assert conversation["reconnectDeadline"] is None, conversation_id
        gone = api.post(f"/widgets/{WIDGET}/reconnect/{links[conversation_id]}")
        assert gone.status_code == 410, gone.text
    _assert_capacity_agrees(api, service, conversations)
    print(f"continue won {continued} of {len(ids)} races before agent_ended")


def test_continue_one_second_before_the_deadline_wins_over_a_concurrent_timer_run(
    api: httpx.Client, clock: FakeClock, service: App
) -> None:
    links = _setup_disconnected(api, clock)
    clock.now = DEADLINE - timedelta(seconds=1)
    ids = sorted(links)

    def continue_(conversation_id: str) -> Callable[[], Any]:
        return lambda: api.post(f"/widgets/{WIDGET}/reconnect/{links[conversation_id]}")

    calls: list[Callable[[], Any]] = [continue_(cid) for cid in ids]
    calls.append(service.timer.run)
    *answers, report = _all_at_once(calls)

    assert report.expired == 0, report
    assert report.errors == 0, report
    for conversation_id, answer in zip(ids, answers, strict=True):
        assert answer.status_code == 200, answer.text
        assert answer.json()["state"] == "active", conversation_id
    # A later run (even past the old deadline) has nothing to expire either.
    clock.now = DEADLINE + timedelta(minutes=1)
    assert service.timer.run().expired == 0
    conversations = _conversations(api, ids)
    for conversation_id, conversation in conversations.items():
        assert conversation["state"] == "active", conversation_id
        assert conversation["customerConnected"] is True, conversation_id
        assert conversation["reconnectDeadline"] is None, conversation_id
        assert conversation["endReason"] is None, conversation_id
    _assert_capacity_agrees(api, service, conversations)


def test_continue_racing_a_timer_that_sees_the_deadline_passed_gives_one_outcome_each(
    api: httpx.Client, clock: FakeClock, service: App
) -> None:
    """Customers on this side of the deadline, a timer instance already past it.

    Two instances whose clocks differ by two seconds: whichever write lands first wins,
    and the loser re-reads and re-decides, so each conversation is either continued
    (200, still active and connected) or timed out (410, wrap_up reconnect_timeout).
    """
    links = _setup_disconnected(api, clock)
    clock.now = DEADLINE - timedelta(seconds=1)
    late_timer = App(
        service.store,
        service.signer,
        auto_close_after=service.auto_close_after,
        clock=FakeClock(DEADLINE + timedelta(seconds=1)),
    )
    ids = sorted(links)

    def continue_(conversation_id: str) -> Callable[[], Any]:
        return lambda: api.post(f"/widgets/{WIDGET}/reconnect/{links[conversation_id]}")

    calls: list[Callable[[], Any]] = [continue_(cid) for cid in ids]
    calls.append(late_timer.timer.run)
    *answers, report = _all_at_once(calls)

    assert report.errors == 0, report
    conversations = _conversations(api, ids)
    timed_out = 0
    for conversation_id, answer in zip(ids, answers, strict=True):
        conversation = conversations[conversation_id]
        if answer.status_code == 200:
            assert conversation["state"] == "active", conversation_id
            assert conversation["customerConnected"] is True, conversation_id
            assert conversation["endReason"] is None, conversation_id
        else:
            assert answer.status_code == 410, answer.text
            timed_out += 1
            assert conversation["state"] == "wrap_up", conversation_id
            assert conversation["endReason"] == "reconnect_timeout", conversation_id
    assert report.expired == timed_out, (report, timed_out)
    _assert_capacity_agrees(api, service, conversations)
    print(f"timer won {timed_out} of {len(ids)} races")


def test_concurrent_duplicate_registrations_create_once(api: httpx.Client, service: App) -> None:
    response = api.put(f"/manage/widgets/{WIDGET}", json={"reconnectEnabled": False})
    assert response.status_code == 201, response.text
    ids = [f"dup-{number}" for number in range(5)]
    attempts = 10

    def register(conversation_id: str) -> Callable[[], httpx.Response]:
        return lambda: api.put(
            f"/conversations/{conversation_id}",
            json={"widgetId": WIDGET, "agentId": AGENTS[0], "customerId": "cust-1"},
        )

    answers = _all_at_once([register(cid) for cid in ids for _ in range(attempts)])

    for number, conversation_id in enumerate(ids):
        mine = answers[number * attempts : (number + 1) * attempts]
        statuses = sorted(answer.status_code for answer in mine)
        assert statuses == [200] * (attempts - 1) + [201], (conversation_id, statuses)
        bodies = [answer.json() for answer in mine]
        assert all(body == bodies[0] for body in bodies), conversation_id
        assert bodies[0]["state"] == "active"
    conversations = _conversations(api, ids)
    _assert_capacity_agrees(api, service, conversations)
