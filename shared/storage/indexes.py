"""The index rows around conversations: `due` (with snapshots), `capacity`, `customers`,
and the timer's own table (its checkpoint and capacity-check notes).

Indexes are written *before* the conversation change that needs them, removed *after* it,
verified by every reader, and repaired by the timer (`shared.services.writes`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import UpdateMode

from shared.domain.conversation import Conversation
from shared.storage import table_wire
from shared.storage.entities import (
    SNAPSHOT_ETAG,
    CapacityCheck,
    DueRow,
    conversation_to_entity,
    customer_partition,
    customer_row,
    due_bucket,
    due_row_from_entity,
    etag_of,
)
from shared.storage.table_wire import MAX_OPERATIONS, Operation, TransactionRefused, quoted
from shared.storage.tables import TableBase, translate_errors

CHECKPOINT_KEY = ("checkpoint", "due")
# Capacity checks live in the timer's own table, one partition per minute bucket:
# "capacity-yyyyMMddHHmm" sorts apart from the checkpoint's partition.
CAPACITY_CHECKS = "capacity-"


class IndexTables(TableBase):
    """The due, capacity and customer index rows, the timer's checkpoint and its notes."""

    @translate_errors
    def put_due(self, moment: datetime, conversation_id: str) -> None:
        """Upsert a plain index row (no snapshot: a REPLACE drops any older snapshot)."""
        self._table("due").upsert_entity(
            {"PartitionKey": due_bucket(moment), "RowKey": conversation_id},
            mode=UpdateMode.REPLACE,
        )

    @translate_errors
    def put_due_snapshot(self, moment: datetime, conversation: Conversation, etag: str) -> None:
        """Upsert the index row of `moment` with `conversation` as stored under `etag`.

        Called only after the write that returned `etag` succeeded, so the snapshot is the
        conversation as it was then; by the time the timer reads it, it may be outdated,
        which the timer's write conditional on `etag` detects.
        """
        entity = conversation_to_entity(conversation)
        entity.update(
            {
                "PartitionKey": due_bucket(moment),
                "RowKey": conversation.conversation_id,
                SNAPSHOT_ETAG: etag,
            }
        )
        self._table("due").upsert_entity(entity, mode=UpdateMode.REPLACE)

    @translate_errors
    def due_rows(self, first_bucket: str, last_bucket: str) -> list[DueRow]:
        """Index rows in buckets first..last, in bucket order, with their snapshots if any
        (one range query, paged)."""
        entities = table_wire.query(
            self._table("due"),
            f"PartitionKey ge {quoted(first_bucket)} and PartitionKey le {quoted(last_bucket)}",
        )
        # Read every page here, so a failure mid-way is translated like any other.
        return [due_row_from_entity(entity) for entity in entities]

    @translate_errors
    def delete_due(self, rows: Iterable[DueRow]) -> list[DueRow]:
        """Delete index rows, each only if unchanged since read (its ETag), batched per
        bucket; the rows kept because a writer put them again meanwhile.

        A row judged done may have been renewed by a writer between the timer's read and
        this delete (its due row put, then its conversation written): deleting that version
        would hide the conversation from the timer for good, so it stays to be judged again.
        """
        by_bucket: dict[str, list[DueRow]] = {}
        for row in rows:
            by_bucket.setdefault(row.bucket, []).append(row)
        kept: list[DueRow] = []
        for bucket, bucket_rows in by_bucket.items():
            by_key = {row.conversation_id: row for row in bucket_rows}
            changed = self._delete_rows(
                "due", bucket, [(row.conversation_id, row.etag) for row in bucket_rows]
            )
            kept.extend(by_key[key] for key in changed)
        return kept

    @translate_errors
    def put_due_rows(self, rows: Iterable[tuple[datetime, str]]) -> dict[tuple[str, str], str]:
        """Create plain (moment, conversationId) index rows, at most MAX_OPERATIONS per transaction.

        Creates, not upserts: a transaction fails if one of its rows exists already, and its
        rows are then left out of the answer. The answer maps (bucket, conversationId) of each
        row this call created to its ETag, so that `delete_due_if_unchanged` can later remove
        a row that only this caller ever wanted (anyone else who needs it upserts it, which
        changes the ETag, or had it before, which made the create fail).
        """
        by_bucket: dict[str, list[str]] = {}
        for moment, conversation_id in rows:
            by_bucket.setdefault(due_bucket(moment), []).append(conversation_id)
        client = self._table("due")
        created: dict[tuple[str, str], str] = {}
        for bucket, row_keys in by_bucket.items():
            for start in range(0, len(row_keys), MAX_OPERATIONS):
                chunk = row_keys[start : start + MAX_OPERATIONS]
                try:
                    etags = table_wire.submit(
                        client, [Operation("create", bucket, key) for key in chunk]
                    )
                except TransactionRefused:
                    continue
                for key, etag in zip(chunk, etags, strict=True):
                    if etag is not None:
                        created[(bucket, key)] = etag
        return created

    @translate_errors
    def delete_due_if_unchanged(self, bucket: str, conversation_id: str, etag: str) -> None:
        """Delete one index row unless it changed (or went) since it had `etag`."""
        with contextlib.suppress(ResourceModifiedError, ResourceNotFoundError):
            self._table("due").delete_entity(
                bucket, conversation_id, etag=etag, match_condition=MatchConditions.IfNotModified
            )

    @translate_errors
    def put_capacity(self, agent_id: str, conversation_id: str) -> None:
        self._table("capacity").upsert_entity({"PartitionKey": agent_id, "RowKey": conversation_id})

    @translate_errors
    def delete_capacity(self, agent_id: str, conversation_ids: Iterable[str]) -> None:
        self._delete_rows("capacity", agent_id, [(key, None) for key in conversation_ids])

    @translate_errors
    def capacity_rows(self, agent_id: str) -> list[str]:
        """Conversation ids the capacity index lists for an agent (hints: verify them)."""
        entities = self._table("capacity").query_entities(
            "PartitionKey eq @agent", parameters={"agent": agent_id}, select=["RowKey"]
        )
        return [entity["RowKey"] for entity in entities]

    @translate_errors
    def put_customer(self, conversation: Conversation) -> None:
        assert conversation.customer_key is not None
        self._table("customers").upsert_entity(
            {
                "PartitionKey": customer_partition(
                    conversation.widget_id, conversation.customer_key
                ),
                "RowKey": customer_row(conversation),
                "conversationId": conversation.conversation_id,
            }
        )

    @translate_errors
    def delete_customer(self, conversation: Conversation) -> None:
        if conversation.customer_key is None:
            return
        partition = customer_partition(conversation.widget_id, conversation.customer_key)
        self._delete_rows("customers", partition, [(customer_row(conversation), None)])

    @translate_errors
    def customer_conversations(
        self, widget_id: str, customer_key: str, page_size: int, continuation: Any | None
    ) -> tuple[list[str], Any | None]:
        """One page of a customer's conversation ids on a widget, newest created first, and
        the token of the next page (None at the end). Hints: verify them.

        Storage may answer fewer rows than `page_size`, even none, with a token: only a
        None token means there are no more.
        """
        pages = (
            self._table("customers")
            .query_entities(
                "PartitionKey eq @partition",
                parameters={"partition": customer_partition(widget_id, customer_key)},
                select=["conversationId"],
                results_per_page=page_size,
            )
            .by_page(continuation_token=continuation)
        )
        page: list[Any] = list(next(pages, []))
        ids = [str(entity["conversationId"]) for entity in page]
        return ids, pages.continuation_token  # type: ignore[attr-defined]

    # --- timer checkpoint ---------------------------------------------------------------

    @translate_errors
    def get_checkpoint(self) -> str | None:
        try:
            entity = self._table("enforcer").get_entity(*CHECKPOINT_KEY)
        except ResourceNotFoundError:
            return None
        return str(entity["bucket"])

    @translate_errors
    def set_checkpoint(self, bucket: str) -> None:
        partition, row = CHECKPOINT_KEY
        self._table("enforcer").upsert_entity(
            {"PartitionKey": partition, "RowKey": row, "bucket": bucket}
        )

    # --- capacity checks ----------------------------------------------------------------

    @translate_errors
    def put_capacity_check(self, moment: datetime, conversation_id: str, agent_id: str) -> None:
        check = CapacityCheck(due_bucket(moment), conversation_id, agent_id)
        self._table("enforcer").upsert_entity(
            {"PartitionKey": CAPACITY_CHECKS + check.bucket, "RowKey": check.row_key}
        )

    @translate_errors
    def capacity_checks(self, last_bucket: str) -> list[CapacityCheck]:
        """Every check noted for a bucket up to `last_bucket` (done ones are deleted)."""
        entities = self._table("enforcer").query_entities(
            "PartitionKey ge @first and PartitionKey le @last",
            parameters={"first": CAPACITY_CHECKS, "last": CAPACITY_CHECKS + last_bucket},
            select=["PartitionKey", "RowKey"],
        )
        checks = []
        for entity in entities:
            conversation_id, _, agent_id = str(entity["RowKey"]).partition("~")
            bucket = str(entity["PartitionKey"]).removeprefix(CAPACITY_CHECKS)
            checks.append(
                CapacityCheck(bucket, conversation_id, agent_id, etag_of(entity.metadata))
            )
        return checks

    @translate_errors
    def delete_capacity_checks(self, checks: Iterable[CapacityCheck]) -> None:
        """Delete done checks, each only as read: a writer that moved the agent's capacity
        again meanwhile noted the check again, and its check must still run."""
        by_bucket: dict[str, list[tuple[str, str | None]]] = {}
        for check in checks:
            by_bucket.setdefault(check.bucket, []).append((check.row_key, check.etag))
        for bucket, rows in by_bucket.items():
            self._delete_rows("enforcer", CAPACITY_CHECKS + bucket, rows)
