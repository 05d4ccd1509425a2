"""Run queue-triggered functions as the Functions host does: poll, decode, call, delete or retry.

Each queue function gets a listener that creates its queue if missing, takes up to
``batchSize`` messages at a time (polling again at once while messages flow, backing off to
``maxPollingInterval`` when the queue is empty), Base64-decodes each (the host's default
``messageEncoding``) and calls the handler with an ``azure.functions.QueueMessage``. A
message is deleted when the handler returns; when it raises, the message becomes visible
again after ``visibilityTimeout``; a message dequeued ``maxDequeueCount`` times without
success, or one that cannot be decoded, moves to ``<queue>-poison``. The settings come from
host.json's ``extensions.queues``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from azure.core.exceptions import AzureError, ResourceExistsError
from azure.functions.queue import QueueMessage as FunctionsQueueMessage
from azure.storage.queue import QueueClient
from azure.storage.queue import QueueMessage as StorageQueueMessage

from local.azurite import DEFAULT_QUEUE_PORT, queue_connection_string
from local.errors import HostError
from local.invoke import invoke
from local.loader import QueueFunction
from local.routes import HOST_JSON, read_host_json

# How long a taken message stays invisible while its handler runs (the host's lease is
# ten minutes too); host.json's functionTimeout bounds a handler well within it.
LEASE_SECONDS = 600
# The shortest wait between polls of an empty queue; it doubles up to maxPollingInterval.
MIN_POLL_SECONDS = 0.1
# How long shutdown waits for running handlers before cancelling them.
QUEUE_STOP_TIMEOUT = 30.0
# Short timeouts and no retries (the SDK's first retry waits 15 s): a queue service that is
# down must not stall the listener, which polls again soon anyway.
CLIENT_OPTIONS: Mapping[str, Any] = {
    "connection_timeout": 2,
    "read_timeout": 10,
    "retry_total": 0,
}
DEVELOPMENT_STORAGE = "usedevelopmentstorage=true"

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class QueueSettings:
    """host.json's ``extensions.queues``, with the Functions host's defaults where absent."""

    max_polling_interval: float = 60.0
    visibility_timeout: float = 0.0
    batch_size: int = 16
    max_dequeue_count: int = 5
    message_encoding: str = "base64"


_TIMESPAN = re.compile(r"(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2}(?:\.\d+)?)")


def parse_timespan(text: str, where: str) -> float:
    """Seconds in a .NET TimeSpan such as ``00:00:01`` or ``1.00:00:00.5``; else HostError."""
    found = _TIMESPAN.fullmatch(text.strip())
    if found is None:
        raise HostError(f"{where}: {text!r} is not a time span like 00:00:01")
    days, hours, minutes, seconds = found.groups()
    return timedelta(
        days=int(days or 0), hours=int(hours), minutes=int(minutes), seconds=float(seconds)
    ).total_seconds()


def read_queue_settings(host_json: Path = HOST_JSON) -> QueueSettings:
    """The queue settings of a host.json (``extensions.queues``), or HostError if bad."""
    raw = read_host_json(host_json).get("extensions", {}).get("queues", {})
    defaults = QueueSettings()
    where = f"{host_json.name} extensions.queues"
    try:
        settings = QueueSettings(
            max_polling_interval=parse_timespan(
                str(raw.get("maxPollingInterval", "00:01:00")), f"{where}.maxPollingInterval"
            ),
            visibility_timeout=parse_timespan(
                str(raw.get("visibilityTimeout", "00:00:00")), f"{where}.visibilityTimeout"
            ),
            batch_size=int(raw.get("batchSize", defaults.batch_size)),
            max_dequeue_count=int(raw.get("maxDequeueCount", defaults.max_dequeue_count)),
            message_encoding=str(raw.get("messageEncoding", defaults.message_encoding)).lower(),
        )
    except (TypeError, ValueError) as error:
        raise HostError(f"{where}: {error}") from None
    if not 1 <= settings.batch_size <= 32:
        raise HostError(f"{where}.batchSize must be 1-32, not {settings.batch_size}")
    if settings.max_dequeue_count < 1:
        raise HostError(f"{where}.maxDequeueCount must be at least 1")
    if settings.message_encoding not in ("base64", "none"):
        raise HostError(f"{where}.messageEncoding must be base64 or none")
    return settings


def next_poll_delay(previous: float, took: int, maximum: float) -> float:
    """The wait before the next poll: none after messages, else doubling up to ``maximum``."""
    if took:
        return 0.0
    return min(max(previous * 2, MIN_POLL_SECONDS), max(maximum, MIN_POLL_SECONDS))


def queue_client(connection_string: str, queue_name: str) -> QueueClient:
    """A queue client for a connection string; ``UseDevelopmentStorage=true`` is Azurite's
    default queue endpoint, as for the Functions host."""
    if connection_string.strip().rstrip(";").lower() == DEVELOPMENT_STORAGE:
        connection_string = queue_connection_string(DEFAULT_QUEUE_PORT)
    try:
        return QueueClient.from_connection_string(connection_string, queue_name, **CLIENT_OPTIONS)
    except ValueError as error:
        raise HostError(f"queue {queue_name!r}: unusable connection string ({error})") from None


def receive_batch(
    client: QueueClient, count: int, visibility_timeout: int
) -> list[StorageQueueMessage]:
    """Up to ``count`` messages in ONE request (the SDK's pager alone would ask for one
    message per request, and once more after the last)."""
    pages = client.receive_messages(
        messages_per_page=count, max_messages=count, visibility_timeout=visibility_timeout
    ).by_page()
    return list(next(pages, []))


def decode_body(content: str, encoding: str) -> bytes:
    """A message's body as the host hands it over: Base64-decoded unless encoding is none."""
    if encoding == "none":
        return content.encode("utf-8")
    return base64.b64decode(content.encode("ascii"), validate=True)


def to_functions_message(message: StorageQueueMessage, body: bytes) -> FunctionsQueueMessage:
    """The ``azure.functions.QueueMessage`` the Python worker would pass for a message."""
    # The worker's own class (the one with dequeue count and times); it has no type hints.
    return FunctionsQueueMessage(  # type: ignore[no-untyped-call]
        id=message.id,
        body=body,
        dequeue_count=message.dequeue_count,
        expiration_time=message.expires_on,
        insertion_time=message.inserted_on,
        time_next_visible=message.next_visible_on,
        pop_receipt=message.pop_receipt,
    )


class QueueListener:
    """Takes messages from one queue and runs its function on them until stopped."""

    def __init__(
        self,
        function: QueueFunction,
        settings: QueueSettings,
        client: QueueClient | None = None,
        poison_client: QueueClient | None = None,
    ) -> None:
        self.function = function
        self.settings = settings
        self.queue = client or queue_client(function.connection_string, function.queue_name)
        self.poison = poison_client or queue_client(
            function.connection_string, f"{function.queue_name}-poison"
        )
        self._queue_ready = False
        self._failing = False

    async def run(self, stopping: asyncio.Event) -> None:
        """Poll until ``stopping`` is set; a batch being handled is finished first."""
        delay = 0.0
        while not stopping.is_set():
            took = await self.poll_once()
            delay = next_poll_delay(delay, took, self.settings.max_polling_interval)
            if delay:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), timeout=delay)

    async def poll_once(self) -> int:
        """Take one batch and handle each message of it; the number of messages taken."""
        try:
            if not self._queue_ready:
                await asyncio.to_thread(_create_if_missing, self.queue)
                self._queue_ready = True
            messages = await asyncio.to_thread(self._receive)
        except AzureError as error:
            if not self._failing:
                logger.warning(
                    "queue %r of function %r cannot be read (%s); retrying",
                    self.function.queue_name,
                    self.function.name,
                    type(error).__name__,
                )
            self._failing = True
            self._queue_ready = False  # a restarted in-memory Azurite has lost it
            return 0
        if self._failing:
            logger.info("queue %r can be read again", self.function.queue_name)
            self._failing = False
        await asyncio.gather(*(self._handle(message) for message in messages))
        return len(messages)

    def _receive(self) -> list[StorageQueueMessage]:
        return receive_batch(self.queue, self.settings.batch_size, LEASE_SECONDS)

    async def _handle(self, message: StorageQueueMessage) -> None:
        """Run the function on one message and settle it; never raises."""
        name, queue = self.function.name, self.function.queue_name
        try:
            if _dequeue_count(message) > self.settings.max_dequeue_count:
                # Taken too often without being settled (e.g. the host died meanwhile).
                await asyncio.to_thread(self._to_poison, message)
                return
            try:
                body = decode_body(str(message.content), self.settings.message_encoding)
            except (binascii.Error, ValueError):
                logger.error(
                    "message %s on queue %r is not Base64 (host.json messageEncoding): "
                    "moved to %s-poison",
                    message.id,
                    queue,
                    queue,
                )
                await asyncio.to_thread(self._to_poison, message)
                return
            try:
                await invoke(
                    self.function.handler,
                    **{self.function.arg_name: to_functions_message(message, body)},
                )
            except Exception:
                logger.exception(
                    "function %r failed on message %s (dequeue count %d)",
                    name,
                    message.id,
                    message.dequeue_count,
                )
                await asyncio.to_thread(self._after_failure, message)
                return
            await asyncio.to_thread(self.queue.delete_message, message.id, message.pop_receipt)
        except AzureError as error:
            # The message stays where it is and comes back once its lease ends.
            logger.warning(
                "message %s on queue %r could not be settled (%s)",
                message.id,
                queue,
                type(error).__name__,
            )

    def _after_failure(self, message: StorageQueueMessage) -> None:
        """Poison the message after its last allowed try, else let it reappear later."""
        if _dequeue_count(message) >= self.settings.max_dequeue_count:
            self._to_poison(message)
            return
        self.queue.update_message(
            message.id,
            message.pop_receipt,
            visibility_timeout=int(self.settings.visibility_timeout),
        )

    def _to_poison(self, message: StorageQueueMessage) -> None:
        """Copy the message, as stored, to ``<queue>-poison`` and delete it here."""
        _create_if_missing(self.poison)
        self.poison.send_message(message.content)
        self.queue.delete_message(message.id, message.pop_receipt)
        logger.error(
            "message %s moved to queue %r (dequeued %d times)",
            message.id,
            self.poison.queue_name,
            message.dequeue_count,
        )


def _dequeue_count(message: StorageQueueMessage) -> int:
    """How often the message has been taken, this time included (the service always says)."""
    return message.dequeue_count or 1


def _create_if_missing(client: QueueClient) -> None:
    with contextlib.suppress(ResourceExistsError):
        client.create_queue()


class QueueListeners:
    """Runs one listener per queue function on the event loop, stopped with the host."""

    def __init__(self, functions: Sequence[QueueFunction], settings: QueueSettings) -> None:
        self.listeners = [QueueListener(function, settings) for function in functions]
        self._stopping: asyncio.Event | None = None
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        """Start one background task per queue function on the running event loop."""
        self._stopping = asyncio.Event()
        self._tasks = [
            asyncio.create_task(
                listener.run(self._stopping), name=f"queue:{listener.function.name}"
            )
            for listener in self.listeners
        ]

    async def stop(self, timeout: float = QUEUE_STOP_TIMEOUT) -> None:
        """Stop polling, let running handlers finish (up to ``timeout``), then cancel."""
        if self._stopping is not None:
            self._stopping.set()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=timeout)
            for task in pending:
                logger.warning("%s still running at shutdown: cancelled", task.get_name())
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            self._tasks = []
        for listener in self.listeners:
            listener.queue.close()
            listener.poison.close()
