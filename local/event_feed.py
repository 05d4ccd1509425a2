"""The demo's chat platform: takes integration events off the public events queue and keeps
the latest in memory, numbered by a cursor, for the agent console to show as they arrive.

It consumes the queue as a platform would (each message Base64 of a CloudEvent's UTF-8
JSON, deleted once read), so in `make dev` nothing else should consume ``EVENTS_QUEUE``.
The queue is drained when the console asks (``GET /dev/events?after=<cursor>``, every
second), so no background task is needed and nothing is taken while no console is open.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from azure.core.exceptions import AzureError, ResourceExistsError
from azure.storage.queue import QueueClient

from local.errors import HostError
from local.queues import queue_client, receive_batch

DEFAULT_EVENTS_QUEUE = "conversation-events"
DEFAULT_CONNECTION = "UseDevelopmentStorage=true"
# What the console can scroll back through; older events are dropped from memory.
KEEP = 200
# Messages taken per request at most (32 per call, the service's limit), so one request
# stays short even after a burst.
MAX_PER_DRAIN = 256
# Long enough to decode and delete a batch; a message left behind reappears after it.
LEASE_SECONDS = 30

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Received:
    """One message as the console shows it: the CloudEvent, or why it could not be read."""

    cursor: int
    received_at: str
    event: Mapping[str, Any] | None
    error: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "cursor": self.cursor,
            "receivedAt": self.received_at,
            "event": self.event,
            "error": self.error,
        }


def read_event(content: str) -> tuple[Mapping[str, Any] | None, str | None]:
    """A message's CloudEvent (Base64 of UTF-8 JSON), or None and what is wrong with it."""
    try:
        event = json.loads(base64.b64decode(content.encode("ascii"), validate=True))
    except (binascii.Error, ValueError):
        return None, "not Base64 of UTF-8 JSON"
    if not isinstance(event, dict) or not isinstance(event.get("type"), str):
        return None, "not a CloudEvent (no type)"
    return event, None


def _order(event: Mapping[str, Any] | None) -> tuple[str, str]:
    """Within one drained batch: by the change's time, then its per-conversation sequence."""
    if event is None:
        return ("", "")
    return (str(event.get("time", "")), str(event.get("sequence", "")))


class EventFeed:
    """The events queue's consumer for the demo; ``client`` None means events are off."""

    def __init__(self, client: QueueClient | None, keep: int = KEEP) -> None:
        self.client = client
        self._received: deque[Received] = deque(maxlen=keep)
        self._cursor = 0
        self._lock = asyncio.Lock()
        self._queue_ready = False

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> EventFeed:
        """The feed of ``EVENTS_QUEUE`` (empty: off) on ``QUEUES_CONNECTION_STRING``, with the
        app's defaults (``conversation-events`` on Azurite)."""
        name = environ.get("EVENTS_QUEUE", DEFAULT_EVENTS_QUEUE).strip()
        if not name:
            return cls.off()
        connection = environ.get("QUEUES_CONNECTION_STRING") or DEFAULT_CONNECTION
        try:
            return cls(queue_client(connection, name))
        except HostError as error:
            logger.warning("the demo's event stream is off: %s", error)
            return cls.off()

    @classmethod
    def off(cls) -> EventFeed:
        """A feed that never has events (events off, or not wanted in a test)."""
        return cls(None)

    @property
    def queue_name(self) -> str | None:
        return self.client.queue_name if self.client is not None else None

    async def since(self, after: int) -> dict[str, Any]:
        """Take what is waiting on the queue, then answer every kept event after ``after``."""
        error: str | None = None
        if self.client is not None:
            async with self._lock:
                try:
                    await asyncio.to_thread(self._drain, self.client)
                except AzureError as failure:
                    error = f"the events queue cannot be read ({type(failure).__name__})"
                    self._queue_ready = False
        return {
            "queue": self.queue_name,
            "cursor": self._cursor,
            "error": error,
            "events": [item.to_json() for item in self._received if item.cursor > after],
        }

    def _drain(self, client: QueueClient) -> None:
        """Read, keep and delete up to MAX_PER_DRAIN waiting messages, batch by batch."""
        if not self._queue_ready:
            with contextlib.suppress(ResourceExistsError):
                client.create_queue()
            self._queue_ready = True
        taken = 0
        while taken < MAX_PER_DRAIN:
            batch = receive_batch(client, 32, LEASE_SECONDS)
            if not batch:
                return
            taken += len(batch)
            read = [(message, *read_event(str(message.content))) for message in batch]
            now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
            for message, event, problem in sorted(read, key=lambda item: _order(item[1])):
                self._cursor += 1
                self._received.append(Received(self._cursor, now, event, problem))
                client.delete_message(message.id, message.pop_receipt)
