"""Outbox notes: a change's events kept in Table storage when the outbox queue is down,
written before the change and flushed by the timer (shared.services.relay)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from azure.data.tables import UpdateMode

from shared.storage.entities import due_bucket, etag_of, utc
from shared.storage.table_wire import MAX_OPERATIONS
from shared.storage.tables import TableBase, translate_errors


@dataclass(frozen=True)
class OutboxNote:
    """One staged event kept as a row: partition = the UTC minute it was staged in."""

    bucket: str
    row_key: str
    event: dict[str, Any]
    staged_at: datetime
    etag: str | None = field(default=None, compare=False)


def note_row_key(event: dict[str, Any]) -> str:
    """`<conversationId>~<sequence>~<eventId>`: ids never hold `~` (ID_PATTERN, base64url)."""
    conversation_id = str(event["subject"]).partition("/")[2]
    return f"{conversation_id}~{event['sequence']}~{event['id']}"


class OutboxNoteTable(TableBase):
    """The `outbox` table: put notes, read the oldest, delete those done (as read)."""

    @translate_errors
    def put_outbox_notes(self, staged_at: datetime, events: Sequence[dict[str, Any]]) -> None:
        """Upsert one note per event, in transactions of at most MAX_OPERATIONS."""
        bucket = due_bucket(staged_at)
        client = self._table("outbox")
        for start in range(0, len(events), MAX_OPERATIONS):
            chunk = events[start : start + MAX_OPERATIONS]
            entities = [
                {
                    "PartitionKey": bucket,
                    "RowKey": note_row_key(event),
                    "event": json.dumps(event, ensure_ascii=False, separators=(",", ":")),
                    "stagedAt": staged_at,
                }
                for event in chunk
            ]
            if len(entities) == 1:
                client.upsert_entity(entities[0], mode=UpdateMode.REPLACE)
            else:
                client.submit_transaction([("upsert", entity) for entity in entities])

    @translate_errors
    def outbox_notes(self, limit: int) -> list[OutboxNote]:
        """The oldest notes (by staging minute, then key), at most `limit`."""
        notes: list[OutboxNote] = []
        for entity in self._table("outbox").list_entities(results_per_page=min(limit, 1000)):
            notes.append(
                OutboxNote(
                    str(entity["PartitionKey"]),
                    str(entity["RowKey"]),
                    json.loads(entity["event"]),
                    utc(entity["stagedAt"]),
                    etag_of(entity.metadata),
                )
            )
            if len(notes) >= limit:
                break
        return notes

    @translate_errors
    def delete_outbox_notes(self, notes: Iterable[OutboxNote]) -> None:
        """Delete notes, each only as read, batched per partition."""
        by_bucket: dict[str, list[tuple[str, str | None]]] = {}
        for note in notes:
            by_bucket.setdefault(note.bucket, []).append((note.row_key, note.etag))
        for bucket, rows in by_bucket.items():
            self._delete_rows("outbox", bucket, rows)
