"""Integration events are never lost once their change is stored and never invented for a
change that was not (contract §5 "Guarantees"), on Azurite: lost races, a write still under
way, a relay that fails before or after sending, and the queue service down."""

from __future__ import annotations

import dataclasses
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from azure.core.credentials import AzureNamedKeyCredential
from azure.core.pipeline import PipelineRequest
from azure.data.tables import TableServiceClient

from local.azurite import DEV_ACCOUNT, DEV_KEY, Azurite, AzuriteQueue
from shared.domain import conversation as domain
from shared.domain.events import MAX_WRITE_SECONDS, Via, record_change, what_happened
from shared.services.app import App
from shared.storage.queues import BREAKER_SECONDS, QueueUnavailable, StorageQueue
from shared.storage.store import TableStore
from shared.wire.events import encode_message
from shared.wiring import set_service
from tests.conftest import FakeClock, make_service
from tests.integration.events import EventTap, down_queues, receive_all, test_queues
from tests.integration.timer import PORTAL, reconnect_id

WIDGET = "w-faults"
AGENT = "agent-1"


@pytest.fixture
def app(azurite: Azurite, azurite_queue: AzuriteQueue, clock: FakeClock) -> Iterator[App]:
    built = make_service(azurite.connection_string, clock, events=test_queues(azurite_queue))
    set_service(built)
    try:
        yield built
    finally:
        set_service(None)


@pytest.fixture
def api(host_url: str, app: App) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=host_url + "/api", timeout=30) as client:
        answer = client.put(
            f"/manage/widgets/{WIDGET}",
            json={"reconnectEnabled": True, "timeLimitMinutes": 10, "portalUrl": PORTAL},
        )
        assert answer.status_code == 201, answer.text
        yield client


@pytest.fixture
def tap(app: App) -> EventTap:
    return EventTap(app)


def register(api: httpx.Client, cid: str) -> None:
    answer = api.put(f"/conversations/{cid}", json={"widgetId": WIDGET, "agentId": AGENT})
    assert answer.status_code == 201, answer.text


def event(api: httpx.Client, cid: str, kind: str) -> int:
    return api.post(f"/conversations/{cid}/events", json={"type": kind}).status_code


def types(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"].rsplit(".", 1)[1] for e in events]


def test_the_loser_of_a_race_gets_no_event_and_its_staged_message_is_deleted(
    api: httpx.Client, tap: EventTap, app: App, clock: FakeClock
) -> None:
    register(api, "c1")
    tap.drain()
    found = app.writer.read("c1")
    ended = domain.apply_event(
        found.value, domain.Event(domain.EventType.AGENT_ENDED), _widget(app), clock()
    )
    closed = domain.apply_event(
        found.value, domain.Event(domain.EventType.AGENT_CLOSED), _widget(app), clock()
    )
    assert app.writer.write(found, ended) is True
    assert app.writer.write(found, closed) is False  # same version: lost
    assert tap.relay_staged() == 1  # the loser's staged message was deleted
    assert types(tap.published()) == ["agent_ended"]


def test_a_staged_event_of_a_lost_write_is_dropped(
    api: httpx.Client, tap: EventTap, app: App, clock: FakeClock
) -> None:
    """The loser's delete failed (or it died first): the relay sees its id is not the one
    stored at that sequence and drops it."""
    register(api, "c1")
    tap.drain()
    found = app.writer.read("c1")
    lost = record_change(found.value, dataclasses.replace(found.value, link_epoch=9), "L" * 22)
    happened = what_happened(found.value, lost, Via.PLATFORM)
    assert happened is not None
    assert app.writer.outbox is not None
    app.writer.outbox.stage([(lost, happened)])
    assert event(api, "c1", "agent_ended") == 200  # the winner, same sequence
    assert types(tap.drain()) == ["agent_ended"]


def test_an_event_waits_for_its_write_and_is_dropped_if_it_never_comes(
    api: httpx.Client, tap: EventTap, app: App, clock: FakeClock
) -> None:
    register(api, "c1")
    tap.drain()
    assert app.relay is not None
    assert app.writer.outbox is not None
    app.relay.wait_delay = 0
    found = app.writer.read("c1")
    pending = record_change(found.value, dataclasses.replace(found.value, link_epoch=1), "P" * 22)
    never = record_change(pending, dataclasses.replace(pending, link_epoch=2), "N" * 22)
    for change in (pending, never):
        happened = what_happened(found.value, change, Via.PLATFORM)
        assert happened is not None
        app.writer.outbox.stage([(change, happened)])
    assert tap.drain() == []  # both wait: neither change is stored yet
    app.store.replace_conversation(pending, found.etag)  # the write under way lands
    assert [e["id"] for e in tap.drain()] == ["P" * 22]
    clock.advance(seconds=MAX_WRITE_SECONDS)
    assert tap.drain() == []  # no write can still be under way: dropped
    assert receive_all(app.relay.outbox.queue) == []


def test_a_write_that_lands_during_the_relays_second_look_is_sent_at_once(
    api: httpx.Client, tap: EventTap, app: App
) -> None:
    """The relay takes a message before its write has landed (the usual case when it polls
    the moment a change is staged): it looks once more and sends, without staging again."""
    register(api, "c1")
    tap.drain()
    assert app.relay is not None
    assert app.writer.outbox is not None
    found = app.writer.read("c1")
    revoked = record_change(found.value, dataclasses.replace(found.value, link_epoch=1), "S" * 22)
    happened = what_happened(found.value, revoked, Via.PLATFORM)
    assert happened is not None
    app.writer.outbox.stage([(revoked, happened)])
    # The write lands while the relay pauses for its second look.
    landing = threading.Timer(
        app.relay.second_look / 4, app.store.replace_conversation, (revoked, found.etag)
    )
    landing.start()
    try:
        assert tap.relay_staged() == 1
    finally:
        landing.join()
    assert [e["id"] for e in tap.published()] == ["S" * 22]
    assert receive_all(app.relay.outbox.queue) == []  # nothing staged again


def test_a_relay_that_cannot_send_leaves_the_events_to_the_timer(
    api: httpx.Client, tap: EventTap, app: App
) -> None:
    """The public queue is down when the relay runs: the proven events become outbox notes
    (the host would give up on a message that keeps failing), and the timer sends them."""
    assert app.relay is not None
    public = app.relay.public
    app.relay.public = down_queues().public
    register(api, "c1")
    assert event(api, "c1", "agent_ended") == 200
    assert tap.relay_staged() == 2
    assert tap.failures == 0
    app.relay.public = public
    assert tap.published() == []
    report = app.timer.run()
    assert (report.events_sent, report.events_deferred) == (2, 0)
    assert types(tap.published()) == ["registered", "agent_ended"]


def test_a_relay_that_fails_is_retried_by_the_host(
    api: httpx.Client, tap: EventTap, app: App
) -> None:
    """Table storage fails under the relay before it sends: the trigger raises, the message
    stays, and the retry sends the event."""
    assert app.relay is not None
    register(api, "c1")
    store = app.relay.store
    app.relay.store = make_broken_store(store)
    assert tap.relay_staged() == 0
    assert tap.failures == 1
    app.relay.store = store
    assert types(tap.drain()) == ["registered"]


def test_a_relay_that_fails_after_sending_sends_a_duplicate_with_the_same_id(
    api: httpx.Client, tap: EventTap, app: App
) -> None:
    assert app.relay is not None
    register(api, "c1")
    ((text, receipt),) = app.relay.outbox.queue.receive(1)
    from shared.wire.events import decode_message

    app.relay.relay(decode_message(text))  # sent, then "crashed": message not deleted
    app.relay.outbox.queue._queue().update_message(
        receipt.message_id, receipt.pop_receipt, visibility_timeout=0
    )
    events = tap.drain()
    assert types(events) == ["registered", "registered"]
    assert events[0]["id"] == events[1]["id"]


def test_queue_down_requests_answer_and_the_timer_delivers_every_stored_change_later(
    azurite: Azurite, azurite_queue: AzuriteQueue, clock: FakeClock, host_url: str
) -> None:
    down = make_service(azurite.connection_string, clock, events=down_queues())
    set_service(down)
    try:
        with httpx.Client(base_url=host_url + "/api", timeout=30) as api:
            answer = api.put(
                f"/manage/widgets/{WIDGET}",
                json={"reconnectEnabled": True, "timeLimitMinutes": 10, "portalUrl": PORTAL},
            )
            assert answer.status_code == 201
            for number in range(10):
                register(api, f"c{number}")
                assert event(api, f"c{number}", "customer_disconnected") == 200
            link = reconnect_id(api, "c0")
            assert api.post(f"/widgets/{WIDGET}/reconnect/{link}").status_code == 200
            assert event(api, "c1", "agent_ended") == 200
            assert event(api, "c1", "agent_ended") == 409  # refused: nothing
    finally:
        set_service(None)
    # Nothing reached a queue; a lost race's note (none here) would be dropped.
    assert down.relay is not None
    report = down.timer.run()
    assert (report.events_deferred, report.events_sent) == (22, 0)
    # The queue is back (the same tables, reachable queues): one timer run delivers all.
    back = App(
        down.store,
        down.signer,
        clock=clock,
        events=dataclasses.replace(test_queues(azurite_queue), source="/chat-reconnect"),
    )
    report = back.timer.run()
    assert (report.events_sent, report.events_dropped, report.events_waiting) == (22, 0, 0)
    tap = EventTap(back)
    events = tap.published()
    by_subject: dict[str, list[str]] = {}
    for item in events:
        by_subject.setdefault(item["subject"], []).append(item["type"].rsplit(".", 1)[1])
    assert by_subject["conversations/c0"] == [
        "registered",
        "customer_disconnected",
        "customer_reconnected",
    ]
    assert by_subject["conversations/c1"] == ["registered", "customer_disconnected", "agent_ended"]
    for number in range(2, 10):
        assert by_subject[f"conversations/c{number}"] == ["registered", "customer_disconnected"]
    assert back.timer.run().events_sent == 0  # notes deleted: nothing twice


def test_the_breaker_skips_a_failed_queue_for_a_few_seconds() -> None:
    requests: list[str] = []

    def hook(request: PipelineRequest) -> None:  # type: ignore[type-arg]
        requests.append(request.http_request.method)

    now = [100.0]
    make = down_queues(raw_request_hook=hook).outbox._factory
    queue = StorageQueue("breaker-test", make, monotonic=lambda: now[0])
    for _ in range(3):
        with pytest.raises(QueueUnavailable):
            queue.send(encode_message({}))
    assert len(requests) == 2  # one attempt and one immediate retry; then skipped
    now[0] += BREAKER_SECONDS
    with pytest.raises(QueueUnavailable):
        queue.send(encode_message({}))
    assert len(requests) == 4


def test_fifty_way_races_emit_the_final_states_events_in_sequence(
    api: httpx.Client, tap: EventTap, clock: FakeClock
) -> None:
    """Continues against agent_ended, and revokes among them: the events are exactly the
    stored changes, in sequence without gaps, none for the losers."""
    register(api, "c1")
    assert event(api, "c1", "customer_disconnected") == 200
    link = reconnect_id(api, "c1")
    clock.advance(minutes=1)

    def one(number: int) -> int:
        if number % 2:
            return api.post(f"/widgets/{WIDGET}/reconnect/{link}").status_code
        return event(api, "c1", "agent_ended")

    with ThreadPoolExecutor(max_workers=16) as pool:
        statuses = list(pool.map(one, range(50)))
    events = tap.drain()
    sequences = [int(e["sequence"]) for e in events]
    assert sorted(sequences) == list(range(1, len(events) + 1))
    final = api.get("/conversations/c1").json()
    assert events[-1]["data"]["state"] == final["state"] == "wrap_up"
    assert types(events).count("agent_ended") == 1
    assert types(events).count("customer_reconnected") <= 1
    assert statuses.count(200) >= 1


def make_broken_store(store: TableStore) -> TableStore:
    """The same tables through a client whose every request fails (a closed port)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = TableServiceClient(
        endpoint=f"http://127.0.0.1:{port}/devstoreaccount1",
        credential=AzureNamedKeyCredential(DEV_ACCOUNT, DEV_KEY),
        retry_total=0,
    )
    broken = TableStore(client, store.table_names[0].removesuffix("widgets"))
    broken._tables_ready = True
    return broken


def _widget(app: App) -> Any:
    return app.widgets.or_default(WIDGET)
