"""What the integration-event tests share: queues of a test's own on the session's Azurite
queue service, and a tap that runs the relay over what is staged and reads the public queue
as a platform would (Base64 of UTF-8 JSON)."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import azure.functions as func

from local.azurite import AzuriteQueue
from shared.config import load_settings
from shared.services.app import App
from shared.services.outbox import EventQueues
from shared.storage.queues import StorageQueue
from shared.wiring import event_queues

SOURCE = "/chat-reconnect"


def test_queues(azurite_queue: AzuriteQueue, **client_options: Any) -> EventQueues:
    """Fresh outbox and public queues, wired as the app wires them (shared.wiring)."""
    name = "t" + uuid.uuid4().hex[:12]
    settings = load_settings(
        {
            "RECONNECT_SIGNING_KEY": "k" * 40,
            "QUEUES_CONNECTION_STRING": azurite_queue.connection_string,
            "EVENTS_QUEUE": f"{name}-events",
            "EVENTS_OUTBOX_QUEUE": f"{name}-outbox",
        }
    )
    queues = event_queues(settings, **client_options)
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

    def relay_staged(self) -> int:
        """Call the trigger function on every visible staged message; how many there were."""
        from shared.api.events import relay_events

        relay = self.app.relay
        assert relay is not None
        count = 0
        while batch := relay.outbox.queue.receive(32):
            for text, receipt in batch:
                count += 1
                # The host Base64-decodes the message before the function sees it.
                relay_events(
                    func.QueueMessage(
                        id=receipt.message_id,
                        body=base64.b64decode(text),
                        pop_receipt=receipt.pop_receipt,
                    )
                )
                relay.outbox.queue.delete(receipt)
        return count

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
