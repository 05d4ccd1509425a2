"""Table storage adapter: entities <-> domain values, ETag-conditional writes, batched index upkeep.

The conversation entity is the source of truth. The `due`, `capacity` and `customers`
tables are indexes: written *before* the conversation change that needs them, removed
*after* it, verified by every reader, and repaired by the timer.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, ParamSpec, TypeVar

from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import TableClient, TableServiceClient, UpdateMode

from shared import table_wire
from shared.domain import (
    Authentication,
    Conversation,
    EndReason,
    PublicKey,
    State,
    WidgetSettings,
)
from shared.errors import FieldError, StorageRefused, StorageUnavailable, TooLargeToStore
from shared.table_wire import MAX_OPERATIONS, Operation, TransactionRefused, quoted

logger = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")

SETTINGS_ROW = "settings"
CONVERSATION_ROW = "c"
CHECKPOINT_KEY = ("checkpoint", "due")
# Capacity checks live in the timer's own table, one partition per minute bucket:
# "capacity-yyyyMMddHHmm" sorts apart from the checkpoint's partition.
CAPACITY_CHECKS = "capacity-"
# A due row may carry a snapshot of its conversation: the conversation's properties plus
# the ETag the conversation had when the snapshot was taken, under this name.
SNAPSHOT_ETAG = "snapshotEtag"
TABLE_NAMES = ("widgets", "conversations", "due", "customers", "capacity", "enforcer")
# Inverted-time row keys sort newest first; this bound is far beyond any real date.
_INVERT_BASE = 10**13


# Azure Table storage refuses a string property over 64 KiB, counted in UTF-16 code units
# of 2 bytes (Azurite enforces the same bound). JSON held in a property is checked against
# it before a write, so an oversized value is refused up front, naming its field.
MAX_STRING_UNITS = 32 * 1024
# Error codes with which storage refuses a value for its size (SPEC 3 "Limits").
_TOO_LARGE_CODES = frozenset(
    {
        "PropertyValueTooLarge",
        "EntityTooLarge",
        "TooManyProperties",
        "PropertyNameTooLong",
        "KeyValueTooLarge",
        "RequestBodyTooLarge",
    }
)


# How many times a use case decides again after its conditional write lost a race; past
# this many the caller gets 503 (ConcurrencyExhausted) and may retry shortly.
MAX_WRITE_ATTEMPTS = 8
# Rows found already gone (or changed since read) that a delete transaction is re-sent
# without, before the rest of its rows are deleted one by one.
MISSING_ROWS_RESENT = 3


class ConcurrencyConflict(Exception):
    """The entity changed since it was read (ETag mismatch) or appeared meanwhile."""


def due_bucket(moment: datetime) -> str:
    """The partition of the `due` table for a moment: its UTC minute, `yyyyMMddHHmm`."""
    return moment.astimezone(UTC).strftime("%Y%m%d%H%M")


def customer_partition(widget_id: str, customer_key: str) -> str:
    return f"{widget_id}~{customer_key}"


def customer_row(conversation: Conversation) -> str:
    inverted = _INVERT_BASE - int(conversation.created_at.timestamp() * 1000)
    return f"{inverted:013d}~{conversation.conversation_id}"


def _table_missing(error: ResourceNotFoundError) -> bool:
    # The SDK sets error_code on some operations only; the message always names the code.
    return getattr(error, "error_code", None) == "TableNotFound" or "TableNotFound" in str(error)


def utf16_units(text: str) -> int:
    """How many UTF-16 code units `text` takes: the unit of Table storage's string limits."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _json_property(value: Any, field: str) -> str:
    """`value` as compact JSON for one string property, or TooLargeToStore naming `field`.

    Not ASCII-escaped: an escape costs 6 units a character (12 for a surrogate pair),
    where the character itself costs 1 or 2.
    """
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    units = utf16_units(text)
    if units > MAX_STRING_UNITS:
        raise TooLargeToStore(
            f"'{field}' takes {units} UTF-16 code units as stored; at most {MAX_STRING_UNITS}.",
            (
                FieldError(
                    field, f"is too large to store (at most {MAX_STRING_UNITS} UTF-16 units)"
                ),
            ),
        )
    return text


def _error_code(error: HttpResponseError) -> str:
    """The storage error code of a refusal ("" when it has none)."""
    code = getattr(error, "error_code", None) or getattr(error, "code", None)
    if code is None:
        code = getattr(error.response, "headers", {}).get("x-ms-error-code")
    return str(getattr(code, "value", code) or "")


def refusal(error: HttpResponseError) -> TooLargeToStore | StorageRefused | None:
    """The application error a storage refusal of a write (400, 413) means, else None."""
    if error.status_code not in (400, 413):
        return None
    code = _error_code(error)
    if error.status_code == 413 or code in _TOO_LARGE_CODES:
        return TooLargeToStore(f"Table storage refused the value as too large ({code or 413}).")
    return StorageRefused(f"Table storage refused the value ({code or 'no code'}).")


def _translate_errors(function: Callable[P, R]) -> Callable[P, R]:
    """Turn transport failures and server errors into StorageUnavailable (answered with 503),
    and a refused value into TooLargeToStore (413) or StorageRefused (422), never a 500.

    A table found missing (e.g. an in-memory Azurite restarted under a running app) is
    created again and the operation retried once, instead of failing until the app restarts.
    """

    @functools.wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            try:
                return function(*args, **kwargs)
            except ResourceNotFoundError as error:
                store = args[0] if args else None
                if not (isinstance(store, TableStore) and _table_missing(error)):
                    raise
                logger.warning("A table is missing; creating the tables again")
                store._tables_ready = False
                return function(*args, **kwargs)
        except (ResourceModifiedError, ResourceNotFoundError, ResourceExistsError):
            raise
        except HttpResponseError as error:
            refused = refusal(error)
            if refused is not None:
                logger.warning("Table storage refused a value: %s", refused.detail)
                raise refused from None
            if error.status_code is not None and error.status_code < 500:
                raise
            logger.warning("Table storage answered %s", error.status_code)
            raise StorageUnavailable("Table storage is not available right now.") from None
        except AzureError as error:
            logger.warning("Table storage unreachable: %s", type(error).__name__)
            raise StorageUnavailable("Table storage is not available right now.") from None

    return wrapper


@dataclass(frozen=True)
class Versioned(Generic[T]):
    """A value read from storage with the ETag a conditional write must match."""

    value: T
    etag: str


def _utc(value: Any) -> datetime | None:
    if value is None:
        return None
    moment: datetime = value
    return datetime(
        moment.year,
        moment.month,
        moment.day,
        moment.hour,
        moment.minute,
        moment.second,
        moment.microsecond,
        tzinfo=UTC,
    )


def _without_none(entity: dict[str, Any]) -> dict[str, Any]:
    # Table storage has no null; an absent property reads back as None.
    return {key: value for key, value in entity.items() if value is not None}


def _widget_to_entity(widget: WidgetSettings) -> dict[str, Any]:
    authentication = None
    if widget.authentication is not None:
        authentication = _json_property(
            {
                "issuer": widget.authentication.issuer,
                "audience": widget.authentication.audience,
                "publicKeys": [
                    {"kid": key.kid, "pem": key.pem} for key in widget.authentication.public_keys
                ],
            },
            "authentication",
        )
    return _without_none(
        {
            "PartitionKey": widget.widget_id,
            "RowKey": SETTINGS_ROW,
            "reconnectEnabled": widget.reconnect_enabled,
            "timeLimitMinutes": widget.time_limit_minutes,
            "portalUrl": widget.portal_url,
            "redirectUrl": widget.redirect_url,
            "authentication": authentication,
            "updatedAt": widget.updated_at,
        }
    )


def _widget_from_entity(entity: dict[str, Any]) -> WidgetSettings:
    authentication = None
    if entity.get("authentication"):
        data = json.loads(entity["authentication"])
        authentication = Authentication(
            issuer=data["issuer"],
            audience=data.get("audience"),
            public_keys=tuple(PublicKey(kid=k["kid"], pem=k["pem"]) for k in data["publicKeys"]),
        )
    return WidgetSettings(
        widget_id=entity["PartitionKey"],
        reconnect_enabled=bool(entity.get("reconnectEnabled", False)),
        time_limit_minutes=int(entity.get("timeLimitMinutes", 10)),
        portal_url=entity.get("portalUrl"),
        redirect_url=entity.get("redirectUrl"),
        authentication=authentication,
        updated_at=_utc(entity.get("updatedAt")),
    )


def _conversation_to_entity(conversation: Conversation) -> dict[str, Any]:
    return _without_none(
        {
            "PartitionKey": conversation.conversation_id,
            "RowKey": CONVERSATION_ROW,
            "widgetId": conversation.widget_id,
            "state": conversation.state.value,
            "agentId": conversation.agent_id,
            "customerKey": conversation.customer_key,
            "customerConnected": conversation.customer_connected,
            "disconnectedAt": conversation.disconnected_at,
            "disconnectedFrom": conversation.disconnected_from,
            "reconnectDeadline": conversation.reconnect_deadline,
            "endReason": conversation.end_reason.value if conversation.end_reason else None,
            "wrapUpAt": conversation.wrap_up_at,
            "linkEpoch": conversation.link_epoch,
            "createdAt": conversation.created_at,
            "updatedAt": conversation.updated_at,
            "eventIds": _json_property(list(conversation.event_ids), "eventId")
            if conversation.event_ids
            else None,
        }
    )


def _conversation_from_entity(entity: dict[str, Any]) -> Conversation:
    end_reason = entity.get("endReason")
    created_at = _utc(entity["createdAt"])
    updated_at = _utc(entity["updatedAt"])
    assert created_at is not None
    assert updated_at is not None
    return Conversation(
        conversation_id=entity["PartitionKey"],
        widget_id=entity["widgetId"],
        state=State(entity["state"]),
        agent_id=entity.get("agentId"),
        customer_key=entity.get("customerKey"),
        customer_connected=bool(entity.get("customerConnected", False)),
        disconnected_at=_utc(entity.get("disconnectedAt")),
        reconnect_deadline=_utc(entity.get("reconnectDeadline")),
        end_reason=EndReason(end_reason) if end_reason else None,
        wrap_up_at=_utc(entity.get("wrapUpAt")),
        link_epoch=int(entity.get("linkEpoch", 0)),
        created_at=created_at,
        updated_at=updated_at,
        event_ids=tuple(json.loads(entity["eventIds"])) if entity.get("eventIds") else (),
        disconnected_from=entity.get("disconnectedFrom"),
    )


def _etag(metadata: Mapping[str, Any]) -> str:
    return str(metadata["etag"])


@dataclass(frozen=True)
class DueRow:
    """One `due` index row: look at this conversation in this minute bucket.

    `snapshot`, when present, is the conversation as it was right after the write that set
    this due time, with that write's ETag: a write conditional on that ETag succeeds only
    while the conversation is still exactly the snapshot (see `put_due_snapshot`). `etag`
    is the row's own, as read: the timer deletes only the version it judged (`delete_due`).
    """

    bucket: str
    conversation_id: str
    snapshot: Versioned[Conversation] | None = field(default=None, compare=False)
    etag: str | None = field(default=None, compare=False)


def _due_row_from_entity(entity: Mapping[str, Any]) -> DueRow:
    bucket, conversation_id = str(entity["PartitionKey"]), str(entity["RowKey"])
    snapshot = None
    if entity.get(SNAPSHOT_ETAG):
        value = _conversation_from_entity({**entity, "PartitionKey": conversation_id})
        snapshot = Versioned(value, str(entity[SNAPSHOT_ETAG]))
    etag = entity.get(table_wire.ETAG)
    return DueRow(bucket, conversation_id, snapshot, None if etag is None else str(etag))


@dataclass(frozen=True)
class CapacityCheck:
    """A note for the timer: from this minute on, make the agent's capacity row for this
    conversation agree with the conversation (see ReconnectService._note_capacity_change);
    `etag`: the note's as read, so that a note written again meanwhile is not deleted."""

    bucket: str
    conversation_id: str
    agent_id: str
    etag: str | None = field(default=None, compare=False)

    @property
    def row_key(self) -> str:
        # Ids never hold "~" (ID_PATTERN), so the pair stays unambiguous.
        return f"{self.conversation_id}~{self.agent_id}"


class TableStore:
    """All storage the app uses, on one Table service account."""

    def __init__(self, service: TableServiceClient, table_prefix: str = "") -> None:
        self._service = service
        self._prefix = table_prefix
        self._tables: dict[str, TableClient] = {
            name: service.get_table_client(table_prefix + name) for name in TABLE_NAMES
        }
        self._tables_ready = False

    @property
    def table_names(self) -> list[str]:
        return [self._prefix + name for name in TABLE_NAMES]

    def _table(self, name: str) -> TableClient:
        if not self._tables_ready:
            self.ensure_tables()
        return self._tables[name]

    @_translate_errors
    def ensure_tables(self) -> None:
        """Create the tables if missing (once per process; in Azure the Bicep made them)."""
        for name in self.table_names:
            with contextlib.suppress(ResourceExistsError):
                self._service.create_table(name)
        self._tables_ready = True

    @_translate_errors
    def ping(self) -> None:
        """Raise StorageUnavailable unless storage answers a cheap request."""
        next(
            iter(
                self._table("widgets")
                .list_entities(results_per_page=1, select=["RowKey"])
                .by_page()
            ),
            None,
        )

    # --- widgets ------------------------------------------------------------------------

    @_translate_errors
    def get_widget(self, widget_id: str) -> Versioned[WidgetSettings] | None:
        try:
            entity = self._table("widgets").get_entity(widget_id, SETTINGS_ROW)
        except ResourceNotFoundError:
            return None
        return Versioned(_widget_from_entity(entity), _etag(entity.metadata))

    @_translate_errors
    def list_widgets(
        self, page_size: int, continuation: Any | None
    ) -> tuple[list[WidgetSettings], Any | None]:
        """One page of widgets in id order and the token of the next page (None at the end)."""
        pages = (
            self._table("widgets")
            .query_entities(
                "RowKey eq @row", parameters={"row": SETTINGS_ROW}, results_per_page=page_size
            )
            .by_page(continuation_token=continuation)
        )
        page: list[Any] = list(next(pages, []))
        widgets = [_widget_from_entity(entity) for entity in page]
        return widgets, pages.continuation_token  # type: ignore[attr-defined]

    @_translate_errors
    def insert_widget(self, widget: WidgetSettings) -> str:
        """Create a widget's settings; ConcurrencyConflict if it exists. Returns the ETag."""
        try:
            metadata = self._table("widgets").create_entity(_widget_to_entity(widget))
        except ResourceExistsError:
            raise ConcurrencyConflict(widget.widget_id) from None
        return _etag(metadata)

    @_translate_errors
    def replace_widget(self, widget: WidgetSettings, etag: str) -> str:
        """Replace settings only if unchanged since read (ETag); returns the new ETag."""
        try:
            metadata = self._table("widgets").update_entity(
                _widget_to_entity(widget),
                mode=UpdateMode.REPLACE,
                etag=etag,
                match_condition=MatchConditions.IfNotModified,
            )
        except (ResourceModifiedError, ResourceNotFoundError):
            raise ConcurrencyConflict(widget.widget_id) from None
        return _etag(metadata)

    @_translate_errors
    def delete_widget(self, widget_id: str, etag: str) -> None:
        try:
            self._table("widgets").delete_entity(
                widget_id, SETTINGS_ROW, etag=etag, match_condition=MatchConditions.IfNotModified
            )
        except ResourceModifiedError:
            raise ConcurrencyConflict(widget_id) from None

    # --- conversations ------------------------------------------------------------------

    @_translate_errors
    def get_conversation(self, conversation_id: str) -> Versioned[Conversation] | None:
        try:
            entity = self._table("conversations").get_entity(conversation_id, CONVERSATION_ROW)
        except ResourceNotFoundError:
            return None
        return Versioned(_conversation_from_entity(entity), _etag(entity.metadata))

    @_translate_errors
    def insert_conversation(self, conversation: Conversation) -> str:
        try:
            metadata = self._table("conversations").create_entity(
                _conversation_to_entity(conversation)
            )
        except ResourceExistsError:
            raise ConcurrencyConflict(conversation.conversation_id) from None
        return _etag(metadata)

    @_translate_errors
    def replace_conversation(self, conversation: Conversation, etag: str) -> str:
        """The one way a conversation changes: a replace conditional on the ETag read."""
        try:
            metadata = self._table("conversations").update_entity(
                _conversation_to_entity(conversation),
                mode=UpdateMode.REPLACE,
                etag=etag,
                match_condition=MatchConditions.IfNotModified,
            )
        except (ResourceModifiedError, ResourceNotFoundError):
            raise ConcurrencyConflict(conversation.conversation_id) from None
        return _etag(metadata)

    # --- index rows ---------------------------------------------------------------------

    @_translate_errors
    def put_due(self, moment: datetime, conversation_id: str) -> None:
        """Upsert a plain index row (no snapshot: a REPLACE drops any older snapshot)."""
        self._table("due").upsert_entity(
            {"PartitionKey": due_bucket(moment), "RowKey": conversation_id},
            mode=UpdateMode.REPLACE,
        )

    @_translate_errors
    def put_due_snapshot(self, moment: datetime, conversation: Conversation, etag: str) -> None:
        """Upsert the index row of `moment` with `conversation` as stored under `etag`.

        Called only after the write that returned `etag` succeeded, so the snapshot is the
        conversation as it was then; by the time the timer reads it, it may be outdated,
        which the timer's write conditional on `etag` detects.
        """
        entity = _conversation_to_entity(conversation)
        entity.update(
            {
                "PartitionKey": due_bucket(moment),
                "RowKey": conversation.conversation_id,
                SNAPSHOT_ETAG: etag,
            }
        )
        self._table("due").upsert_entity(entity, mode=UpdateMode.REPLACE)

    @_translate_errors
    def due_rows(self, first_bucket: str, last_bucket: str) -> list[DueRow]:
        """Index rows in buckets first..last, in bucket order, with their snapshots if any
        (one range query, paged)."""
        entities = table_wire.query(
            self._table("due"),
            f"PartitionKey ge {quoted(first_bucket)} and PartitionKey le {quoted(last_bucket)}",
        )
        # Read every page here, so a failure mid-way is translated like any other.
        return [_due_row_from_entity(entity) for entity in entities]

    @_translate_errors
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

    @_translate_errors
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

    @_translate_errors
    def delete_due_if_unchanged(self, bucket: str, conversation_id: str, etag: str) -> None:
        """Delete one index row unless it changed (or went) since it had `etag`."""
        with contextlib.suppress(ResourceModifiedError, ResourceNotFoundError):
            self._table("due").delete_entity(
                bucket, conversation_id, etag=etag, match_condition=MatchConditions.IfNotModified
            )

    @_translate_errors
    def put_capacity(self, agent_id: str, conversation_id: str) -> None:
        self._table("capacity").upsert_entity({"PartitionKey": agent_id, "RowKey": conversation_id})

    @_translate_errors
    def delete_capacity(self, agent_id: str, conversation_ids: Iterable[str]) -> None:
        self._delete_rows("capacity", agent_id, [(key, None) for key in conversation_ids])

    @_translate_errors
    def capacity_rows(self, agent_id: str) -> list[str]:
        """Conversation ids the capacity index lists for an agent (hints: verify them)."""
        entities = self._table("capacity").query_entities(
            "PartitionKey eq @agent", parameters={"agent": agent_id}, select=["RowKey"]
        )
        return [entity["RowKey"] for entity in entities]

    @_translate_errors
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

    @_translate_errors
    def delete_customer(self, conversation: Conversation) -> None:
        if conversation.customer_key is None:
            return
        partition = customer_partition(conversation.widget_id, conversation.customer_key)
        self._delete_rows("customers", partition, [(customer_row(conversation), None)])

    @_translate_errors
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

    def _delete_rows(
        self, table: str, partition: str, rows: list[tuple[str, str | None]]
    ) -> list[str]:
        """Delete rows of one partition, (row key, ETag or None for any version), at most
        MAX_OPERATIONS per transaction; rows already gone are skipped. The row keys not
        deleted because their ETag no longer matched."""
        client = self._table(table)
        changed: list[str] = []
        for start in range(0, len(rows), MAX_OPERATIONS):
            chunk = rows[start : start + MAX_OPERATIONS]
            # A transaction naming a row already gone (404) or changed (412) fails whole:
            # send it again without that row, once per such row, then give up on batching
            # for this chunk.
            for _ in range(MISSING_ROWS_RESENT):
                try:
                    table_wire.submit(
                        client, [Operation("delete", partition, key, etag) for key, etag in chunk]
                    )
                    chunk = []
                    break
                except TransactionRefused as refused:
                    index = refused.index
                    if refused.status not in (404, 412) or index is None:
                        break
                    if not 0 <= index < len(chunk):
                        break
                    key, _ = chunk.pop(index)
                    if refused.status == 412:
                        changed.append(key)
                    if not chunk:
                        break
            changed.extend(self._delete_one_by_one(client, partition, chunk))
        return changed

    @staticmethod
    def _delete_one_by_one(
        client: TableClient, partition: str, rows: list[tuple[str, str | None]]
    ) -> list[str]:
        """Delete rows one request each; the row keys whose ETag no longer matched."""
        changed = []
        for key, etag in rows:
            try:
                if etag is None:
                    client.delete_entity(partition, key)
                else:
                    client.delete_entity(
                        partition, key, etag=etag, match_condition=MatchConditions.IfNotModified
                    )
            except ResourceNotFoundError:
                continue
            except ResourceModifiedError:
                changed.append(key)
        return changed

    # --- timer checkpoint ---------------------------------------------------------------

    @_translate_errors
    def get_checkpoint(self) -> str | None:
        try:
            entity = self._table("enforcer").get_entity(*CHECKPOINT_KEY)
        except ResourceNotFoundError:
            return None
        return str(entity["bucket"])

    @_translate_errors
    def set_checkpoint(self, bucket: str) -> None:
        partition, row = CHECKPOINT_KEY
        self._table("enforcer").upsert_entity(
            {"PartitionKey": partition, "RowKey": row, "bucket": bucket}
        )

    # --- capacity checks ----------------------------------------------------------------

    @_translate_errors
    def put_capacity_check(self, moment: datetime, conversation_id: str, agent_id: str) -> None:
        check = CapacityCheck(due_bucket(moment), conversation_id, agent_id)
        self._table("enforcer").upsert_entity(
            {"PartitionKey": CAPACITY_CHECKS + check.bucket, "RowKey": check.row_key}
        )

    @_translate_errors
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
            checks.append(CapacityCheck(bucket, conversation_id, agent_id, _etag(entity.metadata)))
        return checks

    @_translate_errors
    def delete_capacity_checks(self, checks: Iterable[CapacityCheck]) -> None:
        """Delete done checks, each only as read: a writer that moved the agent's capacity
        again meanwhile noted the check again, and its check must still run."""
        by_bucket: dict[str, list[tuple[str, str | None]]] = {}
        for check in checks:
            by_bucket.setdefault(check.bucket, []).append((check.row_key, check.etag))
        for bucket, rows in by_bucket.items():
            self._delete_rows("enforcer", CAPACITY_CHECKS + bucket, rows)


def bucket_before(bucket: str, minutes: int) -> str:
    """The bucket `minutes` earlier than `bucket`."""
    moment = datetime.strptime(bucket, "%Y%m%d%H%M").replace(tzinfo=UTC)
    return due_bucket(moment - timedelta(minutes=minutes))
