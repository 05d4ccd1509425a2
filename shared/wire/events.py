"""The integration event on the wire (contract §5): a CloudEvents 1.0 structured-mode JSON
object, and the private outbox message that stages a change's events before its write.

Queue messages are Base64 of the UTF-8 JSON (what a Functions queue trigger with default
settings decodes); a message may take at most 64 KiB as sent, so a batch of events is split
into as many outbox messages as that needs.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from shared.domain.conversation import Conversation
from shared.domain.events import Happened
from shared.wire.times import format_utc

TYPE_PREFIX = "chatreconnect.conversation."
SUBJECT_PREFIX = "conversations/"
# Azure Queue storage refuses a message over 64 KiB as sent (Base64 text here).
MAX_MESSAGE_BYTES = 64 * 1024
# The most UTF-8 bytes of JSON whose Base64 stays within MAX_MESSAGE_BYTES.
MAX_JSON_BYTES = MAX_MESSAGE_BYTES // 4 * 3


def cloud_event(conversation: Conversation, happened: Happened, source: str) -> dict[str, Any]:
    """The event of the stored change that made `conversation` (its last change id and its
    sequence); `data` is the conversation as GET /api/conversations shows it, without the
    link, plus what the change means."""
    # Imported here: the pydantic model is built on first use, not with the app (cold start).
    from shared.wire.conversations import conversation_view

    data = conversation_view(conversation, None).model_dump(
        mode="json", by_alias=True, exclude={"reconnect_url"}
    )
    data["previousState"] = (
        None if happened.previous_state is None else happened.previous_state.value
    )
    data["via"] = happened.via.value
    data["capacityReleased"] = happened.capacity_released
    return {
        "specversion": "1.0",
        "id": conversation.change_ids[-1],
        "source": source,
        "type": TYPE_PREFIX + happened.what,
        "subject": SUBJECT_PREFIX + conversation.conversation_id,
        "time": format_utc(conversation.updated_at),
        "datacontenttype": "application/json",
        "sequence": format_sequence(conversation.sequence),
        "data": data,
    }


def format_sequence(sequence: int) -> str:
    """The CloudEvents `sequence` extension: a string that sorts like the number."""
    return f"{sequence:010d}"


def encode_message(value: Any) -> str:
    """A queue message's text: Base64 of the compact UTF-8 JSON."""
    raw = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return base64.b64encode(raw).decode("ascii")


def decode_message(text: str | bytes) -> Any:
    """The JSON a queue message carries (the inverse of encode_message)."""
    return json.loads(base64.b64decode(text))


@dataclass(frozen=True)
class StagedEvent:
    """A staged event as the relay judges it: which change of which conversation it claims."""

    event: dict[str, Any]
    conversation_id: str
    change_id: str
    sequence: int
    staged_at: datetime


def outbox_messages(
    events: Sequence[dict[str, Any]], staged_at: datetime
) -> Iterator[tuple[list[dict[str, Any]], str]]:
    """The outbox messages that stage `events`, each within MAX_MESSAGE_BYTES: the events of
    each and its encoded text."""
    stamp = format_utc(staged_at)
    overhead = len(json.dumps({"events": [], "stagedAt": stamp}).encode("utf-8"))
    batch: list[dict[str, Any]] = []
    size = overhead
    for event in events:
        length = len(json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()) + 1
        if batch and size + length > MAX_JSON_BYTES:
            yield batch, encode_message({"events": batch, "stagedAt": stamp})
            batch, size = [], overhead
        batch.append(event)
        size += length
    if batch:
        yield batch, encode_message({"events": batch, "stagedAt": stamp})


def parse_outbox_message(body: Any) -> list[StagedEvent]:
    """The events of one outbox message (its JSON, already decoded); ValueError if malformed."""
    try:
        staged_at = parse_time(body["stagedAt"])
        return [staged_event(event, staged_at) for event in body["events"]]
    except (KeyError, TypeError, AttributeError) as error:
        raise ValueError(f"not an outbox message: {error!r}") from None


def staged_event(event: dict[str, Any], staged_at: datetime) -> StagedEvent:
    """One staged event with the change it claims read from its envelope."""
    subject = str(event["subject"])
    if not subject.startswith(SUBJECT_PREFIX):
        raise ValueError("not a conversation's event")
    return StagedEvent(
        event,
        subject.removeprefix(SUBJECT_PREFIX),
        str(event["id"]),
        int(event["sequence"]),
        staged_at,
    )


def parse_time(text: str) -> datetime:
    """A contract time (`...Z`) as an aware UTC datetime."""
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def in_sequence_order(events: Iterable[StagedEvent]) -> list[StagedEvent]:
    """Events ordered per conversation by sequence (the order a consumer expects)."""
    return sorted(events, key=lambda staged: (staged.conversation_id, staged.sequence))
