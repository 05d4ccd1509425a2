"""What the integration-event tests share: queues of a test's own on the session's Azurite
queue service, and a tap that runs the relay over what is staged and reads the public queue
as a platform would (Base64 of UTF-8 JSON)."""

from __future__ import annotations

import base64
import json
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import azure.functions as func
import httpx

from local.azurite import AzuriteQueue, queue_connection_string
from shared.config import load_settings
from shared.services.app import App
from shared.services.outbox import EventQueues
from shared.storage.queues import QueueUnavailable, Receipt, StorageQueue
from shared.wiring import event_queues, queue_client_factory
from tests.events import validate_event

SOURCE = "/chat-reconnect"
TEST_TIMEOUTS = {"connection_timeout": 5, "read_timeout": 30}


def test_queues(azurite_queue: AzuriteQueue, **client_options: Any) -> EventQueues:
    """Fresh outbox and public queues, wired as the app wires them (shared.wiring)."""
    return queues_at(azurite_queue.connection_string, **client_options)


def down_queues(**client_options: Any) -> EventQueues:
    """Queues on a port nothing listens on: the queue service is down."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return queues_at(queue_connection_string(port), **client_options)


def queues_at(connection_string: str, **client_options: Any) -> EventQueues:
    name = "t" + uuid.uuid4().hex[:12]
    settings = load_settings(
        {
            "RECONNECT_SIGNING_KEY": "k" * 40,
            "QUEUES_CONNECTION_STRING": connection_string,
            "EVENTS_QUEUE": f"{name}-events",
            "EVENTS_OUTBOX_QUEUE": f"{name}-outbox",
        }
    )
    # Generous timeouts: the tests share a loaded machine, and a timeout is an outage.
    queues = event_queues(settings, TEST_TIMEOUTS, **client_options)
    assert queues is not None
    return queues


test_queues.__test__ = False  # type: ignore[attr-defined]


def receive_all(queue: StorageQueue) -> list[str]:
    """Every message visible on a queue, deleted as read (their text as stored)."""
    texts: list[str] = []
    while batch := queue.receive(32):
        for text, receipt in batch:
            texts.append(text)
            queue.delete(receipt)
    return texts


class EventTap:
    """Runs the relay's queue trigger over every staged message, as the Functions host
    would, and collects what reaches the public queue."""

    def __init__(self, app: App) -> None:
        assert app.relay is not None, "events are off"
        self.app = app
        self.seen: list[dict[str, Any]] = []
        self.failures = 0

    def relay_staged(self) -> int:
        """Call the trigger function on every visible staged message; how many there were.
        Stops at the first that fails (it is made visible again, as the host would retry)."""
        from shared.api.events import relay_events

        relay = self.app.relay
        assert relay is not None
        # One pass over what is staged now: events the relay stages again (WAIT) come back
        # as new messages, for the next pass.
        staged: list[tuple[str, Receipt]] = []
        while batch := relay.outbox.queue.receive(32):
            staged.extend(batch)
        for count, (text, receipt) in enumerate(staged):
            # The host Base64-decodes the message before the function sees it.
            message = func.QueueMessage(
                id=receipt.message_id,
                body=base64.b64decode(text),
                pop_receipt=receipt.pop_receipt,
            )
            try:
                relay_events(message)
            except Exception:
                # As the host does: the message stays and comes back (here at once).
                self.failures += 1
                for _, left in staged[count:]:
                    relay.outbox.queue._queue().update_message(
                        left.message_id, left.pop_receipt, visibility_timeout=0
                    )
                return count
            relay.outbox.queue.delete(receipt)
        return len(staged)

    def published(self) -> list[dict[str, Any]]:
        """The events that reached the public queue since the last call, decoded."""
        relay = self.app.relay
        assert relay is not None
        fresh = [json.loads(base64.b64decode(text)) for text in receive_all(relay.public)]
        # Every event a test sees is valid by the served JSON Schema (contract §5).
        check_schema(fresh)
        self.seen.extend(fresh)
        return fresh

    def drain(self) -> list[dict[str, Any]]:
        """Relay what is staged, then the events published since the last call."""
        self.relay_staged()
        return self.published()


# --- what the fault and race tests share (test_events_faults.py, test_events_races.py) -------


def breaker_queues_at(
    connection_string: str, monotonic: Callable[[], float], name: str | None = None
) -> EventQueues:
    """Outbox and public queues (fresh unless `name` is given) on a queue service, wired as
    the app wires them but with their breakers on `monotonic`: a test moves its clock past
    the breaker instead of sleeping."""
    name = name or "t" + uuid.uuid4().hex[:12]
    settings = load_settings(
        {
            "RECONNECT_SIGNING_KEY": "k" * 40,
            "QUEUES_CONNECTION_STRING": connection_string,
            "EVENTS_QUEUE": f"{name}-events",
            "EVENTS_OUTBOX_QUEUE": f"{name}-outbox",
        }
    )
    make = queue_client_factory(settings)
    assert settings.events_queue is not None
    return EventQueues(
        outbox=StorageQueue(settings.events_outbox_queue, make, monotonic=monotonic),
        public=StorageQueue(settings.events_queue, make, monotonic=monotonic),
        source=settings.events_source,
    )


def waiting_messages(queue: StorageQueue) -> int:
    """How many messages a queue holds, visible or not (Azurite counts them exactly)."""
    count = queue._queue().get_queue_properties().approximate_message_count
    assert count is not None
    return int(count)


def relay_until_empty(tap: EventTap, rounds: int = 120) -> list[dict[str, Any]]:
    """Relay until the outbox queue is empty, waiting for staged-again messages to become
    visible (and for a tripped breaker to close); the events published meanwhile. Fails if
    it never empties (bounded, so that a relay that keeps staging again fails the test
    instead of hanging it)."""
    relay = tap.app.relay
    assert relay is not None
    for _ in range(rounds):
        try:
            tap.relay_staged()
        except QueueUnavailable:
            pass  # skipped by the breaker after a failure: the relay tries again later
        else:
            if waiting_messages(relay.outbox.queue) == 0:
                return tap.published()
        time.sleep(0.5)
    raise AssertionError("the outbox queue never emptied")


def check_schema(events: Iterable[dict[str, Any]]) -> None:
    """Validate events against the served JSON Schema (tests/events.py)."""
    for event in events:
        validate_event(event)


def assert_history(
    api: httpx.Client, app: App, events: Sequence[dict[str, Any]], conversation_ids: Iterable[str]
) -> int:
    """The events seen are exactly the stored changes of these conversations: per
    conversation sequence 1..n (n as stored) without gaps, their ids the stored change ids,
    each `previousState` the state the event before left, the last one's `data` equal to
    GET /api/conversations/{id} without `reconnectUrl`; none for anything else. A redelivery
    (same id) must be the same event; returns how many redeliveries there were."""
    check_schema(events)
    unique: dict[str, dict[str, Any]] = {}
    duplicates = 0
    for event in events:
        if event["id"] in unique:
            assert unique[event["id"]] == event, "a redelivery differs from the first delivery"
            duplicates += 1
        else:
            unique[event["id"]] = event
    by_subject: dict[str, list[dict[str, Any]]] = {}
    for event in unique.values():
        by_subject.setdefault(event["subject"], []).append(event)
    ids = list(conversation_ids)
    assert set(by_subject) <= {f"conversations/{cid}" for cid in ids}, "events of strangers"
    for cid in ids:
        found = app.store.get_conversation(cid)
        assert found is not None, cid
        stored = found.value
        history = sorted(by_subject.get(f"conversations/{cid}", []), key=lambda e: e["sequence"])
        assert [int(e["sequence"]) for e in history] == list(range(1, stored.sequence + 1)), (
            cid,
            [(e["sequence"], e["type"]) for e in history],
        )
        assert all(len(e["sequence"]) == 10 for e in history)
        ring = list(stored.change_ids)
        assert [e["id"] for e in history][-len(ring) :] == ring, cid
        previous: str | None = None
        for event in history:
            assert event["data"]["previousState"] == previous, (cid, event["sequence"])
            previous = event["data"]["state"]
        answer = api.get(f"/conversations/{cid}")
        assert answer.status_code == 200, answer.text
        view = answer.json()
        del view["reconnectUrl"]
        last = history[-1]
        extra = {k: last["data"][k] for k in ("previousState", "via", "capacityReleased")}
        assert last["data"] == {**view, **extra}, cid
        assert last["time"] == view["updatedAt"]
    return duplicates
