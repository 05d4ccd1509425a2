"""Table entities <-> domain values, and the keys the tables are addressed by (no I/O)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar

from shared.domain.conversation import Conversation, EndReason, State
from shared.domain.errors import FieldProblem, TooLargeToStore
from shared.domain.events import FIRST_SEQUENCE
from shared.domain.settings import Authentication, PublicKey, WidgetSettings
from shared.storage import table_wire

T = TypeVar("T")

SETTINGS_ROW = "settings"
CONVERSATION_ROW = "c"
# A due row may carry a snapshot of its conversation: the conversation's properties plus
# the ETag the conversation had when the snapshot was taken, under this name.
SNAPSHOT_ETAG = "snapshotEtag"
# Inverted-time row keys sort newest first; this bound is far beyond any real date.
_INVERT_BASE = 10**13
# Azure Table storage refuses a string property over 64 KiB, counted in UTF-16 code units
# of 2 bytes (Azurite enforces the same bound). JSON held in a property is checked against
# it before a write, so an oversized value is refused up front, naming its field.
MAX_STRING_UNITS = 32 * 1024


def due_bucket(moment: datetime) -> str:
    """The partition of the `due` table for a moment: its UTC minute, `yyyyMMddHHmm`."""
    return moment.astimezone(UTC).strftime("%Y%m%d%H%M")


def customer_partition(widget_id: str, customer_key: str) -> str:
    return f"{widget_id}~{customer_key}"


def customer_row(conversation: Conversation) -> str:
    inverted = _INVERT_BASE - int(conversation.created_at.timestamp() * 1000)
    return f"{inverted:013d}~{conversation.conversation_id}"


@dataclass(frozen=True)
class Versioned(Generic[T]):
    """A value read from storage with the ETag a conditional write must match."""

    value: T
    etag: str


def _utc(value: Any) -> datetime | None:
    """A stored time (or None) as a plain aware UTC datetime."""
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


def utc(value: Any) -> datetime:
    """A stored time as a plain aware UTC datetime."""
    moment = _utc(value)
    assert moment is not None
    return moment


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
                FieldProblem(
                    field, f"is too large to store (at most {MAX_STRING_UNITS} UTF-16 units)"
                ),
            ),
        )
    return text


def _without_none(entity: dict[str, Any]) -> dict[str, Any]:
    # Table storage has no null; an absent property reads back as None.
    return {key: value for key, value in entity.items() if value is not None}


def widget_to_entity(widget: WidgetSettings) -> dict[str, Any]:
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


def widget_from_entity(entity: dict[str, Any]) -> WidgetSettings:
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


def conversation_to_entity(conversation: Conversation) -> dict[str, Any]:
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
            "sequence": conversation.sequence,
            "changeIds": _json_property(list(conversation.change_ids), "changeIds")
            if conversation.change_ids
            else None,
        }
    )


def conversation_from_entity(entity: dict[str, Any]) -> Conversation:
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
        # Conversations stored before events existed have neither: registered, sequence 1.
        sequence=int(entity.get("sequence", FIRST_SEQUENCE)),
        change_ids=tuple(json.loads(entity["changeIds"])) if entity.get("changeIds") else (),
    )


def etag_of(metadata: Mapping[str, Any]) -> str:
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


def due_row_from_entity(entity: Mapping[str, Any]) -> DueRow:
    bucket, conversation_id = str(entity["PartitionKey"]), str(entity["RowKey"])
    snapshot = None
    if entity.get(SNAPSHOT_ETAG):
        value = conversation_from_entity({**entity, "PartitionKey": conversation_id})
        snapshot = Versioned(value, str(entity[SNAPSHOT_ETAG]))
    etag = entity.get(table_wire.ETAG)
    return DueRow(bucket, conversation_id, snapshot, None if etag is None else str(etag))


@dataclass(frozen=True)
class CapacityCheck:
    """A note for the timer: from this minute on, make the agent's capacity row for this
    conversation agree with the conversation (see ConversationWriter._note_capacity_change);
    `etag`: the note's as read, so that a note written again meanwhile is not deleted."""

    bucket: str
    conversation_id: str
    agent_id: str
    etag: str | None = field(default=None, compare=False)

    @property
    def row_key(self) -> str:
        # Ids never hold "~" (ID_PATTERN), so the pair stays unambiguous.
        return f"{self.conversation_id}~{self.agent_id}"


def bucket_before(bucket: str, minutes: int) -> str:
    """The bucket `minutes` earlier than `bucket`."""
    moment = datetime.strptime(bucket, "%Y%m%d%H%M").replace(tzinfo=UTC)
    return due_bucket(moment - timedelta(minutes=minutes))
