"""What the integration-event tests share: queues of a test's own on the session's Azurite
queue service, and a tap that runs the relay over what is staged and reads the public queue
as a platform would (Base64 of UTF-8 JSON)."""

from __future__ import annotations

import base64
import json
import socket
import uuid
from typing import Any

import azure.functions as func

from local.azurite import AzuriteQueue, queue_connection_string
from shared.config import load_settings
from shared.services.app import App
from shared.services.outbox import EventQueues
from shared.storage.queues import Receipt, StorageQueue
from shared.wiring import event_queues

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
        self.seen.extend(fresh)
        return fresh

    def drain(self) -> list[dict[str, Any]]:
        """Relay what is staged, then the events published since the last call."""
        self.relay_staged()
        return self.published()
