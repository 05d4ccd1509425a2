"""Staging a change's integration events before its write (contract §5): in the private
outbox queue, or, while that queue is down, as outbox notes in Table storage. Either way the
event exists before the change is stored, and the relay sends it only once the stored
conversation proves the change (shared.services.relay)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.domain.conversation import Conversation
from shared.domain.events import Happened
from shared.services.clock import Clock
from shared.storage.queues import QueueUnavailable, Receipt, StorageQueue
from shared.storage.store import TableStore
from shared.wire.events import cloud_event, outbox_messages

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Staged:
    """What a staging left on the outbox queue (deleted again if the write loses its race)."""

    receipts: tuple[Receipt, ...] = ()


NOTHING_STAGED = Staged()


@dataclass(frozen=True)
class EventQueues:
    """Where integration events go: the private outbox queue a change's events are staged
    in, the public queue the platform reads, and the events' `source`."""

    outbox: StorageQueue
    public: StorageQueue
    source: str


class EventOutbox:
    """Stages events: one request to the outbox queue per message, a note each when it is down."""

    def __init__(self, queue: StorageQueue, store: TableStore, source: str, clock: Clock) -> None:
        self.queue = queue
        self.store = store
        self.source = source
        self.clock = clock

    def stage(self, changes: Sequence[tuple[Conversation, Happened]]) -> Staged:
        """Stage the events of changes about to be written; StorageUnavailable only if neither
        the queue nor Table storage takes them (then nothing may be written)."""
        events = [
            cloud_event(conversation, happened, self.source) for conversation, happened in changes
        ]
        return self.stage_events(events, self.clock())

    def stage_events(
        self, events: Sequence[dict[str, Any]], staged_at: datetime, *, delay: int | None = None
    ) -> Staged:
        """Stage built events as staged at `staged_at`, visible after `delay` seconds."""
        receipts: list[Receipt] = []
        done = 0
        for batch, text in outbox_messages(events, staged_at):
            try:
                receipts.append(self.queue.send(text, visibility_timeout=delay))
            except QueueUnavailable:
                self.store.put_outbox_notes(staged_at, events[done:])
                break
            done += len(batch)
        return Staged(tuple(receipts))

    def withdraw(self, staged: Staged) -> None:
        """Best effort: delete what a write that lost its race staged (the relay would drop it)."""
        for receipt in staged.receipts:
            with contextlib.suppress(QueueUnavailable):
                self.queue.delete(receipt)
