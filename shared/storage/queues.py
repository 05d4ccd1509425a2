"""Azure Storage queues of integration events: the private outbox a change is staged in and
the public queue the platform reads. Clients are made on first use (no I/O, no SDK import at
start-up); a queue that fails is skipped for a few seconds, so an outage never slows the
requests that stage events (they fall back to outbox notes in Table storage)."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from azure.core.exceptions import (
    AzureError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
)

if TYPE_CHECKING:
    from azure.storage.queue import QueueClient

logger = logging.getLogger(__name__)

# After a failed request the queue is not tried again for this long: the callers' fallback
# (a note in Table storage) is taken at once instead of a timeout per request.
BREAKER_SECONDS = 5.0


class QueueUnavailable(Exception):
    """The queue did not take the request (down, timed out, refused, or skipped meanwhile)."""


@dataclass(frozen=True)
class Receipt:
    """What deletes a message sent to a queue."""

    message_id: str
    pop_receipt: str


class StorageQueue:
    """One queue: send (Base64 text, as given), receive and delete, behind a breaker."""

    def __init__(
        self,
        name: str,
        client_factory: Callable[[str], QueueClient],
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self._factory = client_factory
        self._client: QueueClient | None = None
        self._lock = threading.Lock()
        self._closed_until = 0.0
        self._monotonic = monotonic

    def _queue(self) -> QueueClient:
        with self._lock:
            if self._client is None:
                self._client = self._factory(self.name)
            return self._client

    def _guarded(self, action: Callable[[QueueClient], Any]) -> Any:
        if self._monotonic() < self._closed_until:
            raise QueueUnavailable(f"queue {self.name} skipped after a recent failure")
        client = self._queue()
        try:
            try:
                return action(client)
            except ResourceNotFoundError as error:
                if "QueueNotFound" not in str(error):
                    raise
                # Locally nobody made it; in Azure the Bicep did (and this is never reached).
                with contextlib.suppress(ResourceExistsError):
                    client.create_queue()
                return action(client)
        except AzureError as error:
            self._closed_until = self._monotonic() + BREAKER_SECONDS
            logger.warning("Queue %s unavailable: %s", self.name, type(error).__name__)
            raise QueueUnavailable(f"queue {self.name}: {type(error).__name__}") from None

    def send(self, text: str, *, visibility_timeout: int | None = None) -> Receipt:
        """Put one message (already encoded); its receipt."""
        sent = self._guarded(
            lambda client: client.send_message(text, visibility_timeout=visibility_timeout)
        )
        return Receipt(str(sent.id), str(sent.pop_receipt))

    def delete(self, receipt: Receipt) -> None:
        """Delete a message sent or received (gone already: nothing to do)."""

        def delete(client: QueueClient) -> None:
            try:
                client.delete_message(receipt.message_id, receipt.pop_receipt)
            except ResourceNotFoundError as error:
                if "QueueNotFound" in str(error):
                    raise
            except HttpResponseError as error:
                # Someone received the message since (the relay): it is theirs to delete, and
                # the queue answered, so this is no outage for the breaker.
                if getattr(error, "error_code", None) != "PopReceiptMismatch":
                    raise

        self._guarded(delete)

    def receive(self, limit: int, visibility_timeout: int = 30) -> list[tuple[str, Receipt]]:
        """Up to `limit` visible messages (their text as stored), hidden meanwhile."""

        def receive(client: QueueClient) -> list[tuple[str, Receipt]]:
            # One request for the whole batch: without messages_per_page the SDK pages by one.
            batch = min(limit, 32)
            messages = client.receive_messages(
                messages_per_page=batch, max_messages=batch, visibility_timeout=visibility_timeout
            )
            return [
                (str(m.content), Receipt(str(m.id), str(m.pop_receipt)))
                for m in next(messages.by_page(), [])
            ]

        received: list[tuple[str, Receipt]] = self._guarded(receive)
        return received
