"""Integration events as pure rules (`shared/domain/events.py`) and their wire shape
(`shared/wire/events.py`): what each change tells the platform, the sequence and ring of
change ids, the relay's judgement, and the split of staged events into queue messages."""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Callable
from datetime import timedelta

import pytest

from shared.domain.conversation import (
    Conversation,
    EventType,
    State,
    apply_event,
    continue_conversation,
    decline,
    enforce,
    remember_event,
)
from shared.domain.events import (
    CHANGE_ID_MEMORY,
    MAX_WRITE_SECONDS,
    Verdict,
    Via,
    judge,
    record_change,
    what_happened,
)
from shared.wire.events import (
    MAX_MESSAGE_BYTES,
    cloud_event,
    decode_message,
    outbox_messages,
    parse_outbox_message,
)
from tests.unit.conversations import (
    AGENT,
    AUTO_CLOSE,
    DEADLINE,
    DISABLED,
    ENABLED,
    MATRIX_NOW,
    T0,
    active,
    disconnected,
    ev,
    queued,
    requeued_disconnected,
    wrapped_up,
)

LATER = MATRIX_NOW + timedelta(seconds=30)


def platform(event: EventType, agent: str | None = None, widget: object = ENABLED):
    def change(conversation: Conversation) -> Conversation:
        return apply_event(conversation, ev(event, agent), widget, LATER)  # type: ignore[arg-type]

    return change


# (before, change, via) -> (what, previousState, capacityReleased): contract §2.2 and §5.
Row = tuple[
    str, Callable[[], Conversation], Callable[[Conversation], Conversation], Via, str, str | None
]
ROWS: list[Row] = [
    (
        "assign",
        queued,
        platform(EventType.AGENT_ASSIGNED, "agent-2"),
        Via.PLATFORM,
        "agent_assigned",
        None,
    ),
    (
        "disconnect, enabled",
        active,
        platform(EventType.CUSTOMER_DISCONNECTED),
        Via.PLATFORM,
        "customer_disconnected",
        None,
    ),
    (
        "disconnect, disabled",
        active,
        platform(EventType.CUSTOMER_DISCONNECTED, widget=DISABLED),
        Via.PLATFORM,
        "customer_disconnected",
        AGENT,
    ),
    (
        "disconnect, open",
        queued,
        platform(EventType.CUSTOMER_DISCONNECTED),
        Via.PLATFORM,
        "customer_disconnected",
        None,
    ),
    (
        "reconnected",
        disconnected,
        platform(EventType.CUSTOMER_RECONNECTED),
        Via.PLATFORM,
        "customer_reconnected",
        None,
    ),
    ("agent ended", active, platform(EventType.AGENT_ENDED), Via.PLATFORM, "agent_ended", AGENT),
    (
        "customer ended, open",
        queued,
        platform(EventType.CUSTOMER_ENDED),
        Via.PLATFORM,
        "customer_ended",
        None,
    ),
    (
        "customer ended, active",
        active,
        platform(EventType.CUSTOMER_ENDED),
        Via.PLATFORM,
        "customer_ended",
        AGENT,
    ),
    (
        "agent closed, active",
        active,
        platform(EventType.AGENT_CLOSED),
        Via.PLATFORM,
        "agent_closed",
        AGENT,
    ),
    (
        "agent closed, wrap_up",
        wrapped_up,
        platform(EventType.AGENT_CLOSED),
        Via.PLATFORM,
        "agent_closed",
        None,
    ),
    (
        "continue",
        disconnected,
        lambda c: continue_conversation(c, LATER),
        Via.WIDGET,
        "customer_reconnected",
        None,
    ),
    (
        "decline, active",
        disconnected,
        lambda c: decline(c, LATER),
        Via.WIDGET,
        "customer_declined",
        AGENT,
    ),
    (
        "decline, open",
        requeued_disconnected,
        lambda c: decline(c, LATER),
        Via.WIDGET,
        "customer_declined",
        None,
    ),
    (
        "revoke",
        active,
        lambda c: dataclasses.replace(c, link_epoch=c.link_epoch + 1),
        Via.PLATFORM,
        "link_revoked",
        None,
    ),
    (
        "timeout, active",
        disconnected,
        lambda c: enforce(c, DEADLINE, AUTO_CLOSE) or c,
        Via.TIMER,
        "reconnect_timeout",
        AGENT,
    ),
    (
        "timeout, open",
        requeued_disconnected,
        lambda c: enforce(c, DEADLINE, AUTO_CLOSE) or c,
        Via.TIMER,
        "reconnect_timeout",
        None,
    ),
    (
        "auto close",
        wrapped_up,
        lambda c: enforce(c, LATER + AUTO_CLOSE, AUTO_CLOSE) or c,
        Via.TIMER,
        "auto_closed",
        None,
    ),
]


@pytest.mark.parametrize(
    ("before", "change", "via", "what", "released"),
    [row[1:] for row in ROWS],
    ids=[row[0] for row in ROWS],
)
def test_every_change_says_what_happened(
    before: Callable[[], Conversation],
    change: Callable[[Conversation], Conversation],
    via: Via,
    what: str,
    released: str | None,
) -> None:
    old = before()
    happened = what_happened(old, change(old), via)
    assert happened is not None
    assert (happened.what, happened.via, happened.previous_state, happened.capacity_released) == (
        what,
        via,
        old.state,
        released,
    )


def test_a_registration_has_no_previous_state_and_releases_nothing() -> None:
    happened = what_happened(None, active(), Via.PLATFORM)
    assert happened is not None
    assert (happened.what, happened.previous_state, happened.capacity_released) == (
        "registered",
        None,
        None,
    )


def test_a_change_the_platform_cannot_see_says_nothing() -> None:
    """A no-op event whose eventId is recorded is written, but is no change to report."""
    before = disconnected()
    assert what_happened(before, remember_event(before, "e-1"), Via.PLATFORM) is None
    assert what_happened(before, record_change(before, before, "x" * 22), Via.PLATFORM) is None


def test_sequence_counts_stored_changes_and_the_ring_keeps_the_last_ids() -> None:
    conversation = record_change(None, queued(), "id-1")
    assert (conversation.sequence, conversation.change_ids) == (1, ("id-1",))
    for number in range(2, CHANGE_ID_MEMORY + 10):
        conversation = record_change(conversation, conversation, f"id-{number}")
    assert conversation.sequence == CHANGE_ID_MEMORY + 9
    assert len(conversation.change_ids) == CHANGE_ID_MEMORY
    assert conversation.change_ids[-1] == f"id-{CHANGE_ID_MEMORY + 9}"
    assert conversation.change_ids[0] == "id-10"


def stored_with(sequence: int, ids: tuple[str, ...]) -> Conversation:
    return dataclasses.replace(active(), sequence=sequence, change_ids=ids)


STAGED = T0
NOW = T0 + timedelta(seconds=1)


@pytest.mark.parametrize(
    ("stored", "change_id", "sequence", "now", "verdict"),
    [
        (stored_with(3, ("a", "b", "c")), "c", 3, NOW, Verdict.SEND),
        (stored_with(3, ("a", "b", "c")), "b", 2, NOW, Verdict.SEND),
        (stored_with(5, ("a", "b", "c")), "a", 3, NOW, Verdict.SEND),
        (stored_with(3, ("a", "b", "c")), "x", 3, NOW, Verdict.DROP),
        (stored_with(3, ("a", "b", "c")), "x", 2, NOW, Verdict.DROP),
        (stored_with(9, ("a", "b", "c")), "a", 6, NOW, Verdict.FORGOTTEN),
        (stored_with(2, ("a", "b")), "c", 3, NOW, Verdict.WAIT),
        (None, "a", 1, NOW, Verdict.WAIT),
        (
            stored_with(2, ("a", "b")),
            "c",
            3,
            STAGED + timedelta(seconds=MAX_WRITE_SECONDS),
            Verdict.DROP,
        ),
        (None, "a", 1, STAGED + timedelta(seconds=MAX_WRITE_SECONDS), Verdict.DROP),
        # Stored before events existed: sequence 1, no ring; its next change is verifiable.
        (stored_with(1, ()), "a", 1, NOW, Verdict.FORGOTTEN),
    ],
)
def test_the_relay_sends_only_what_the_stored_conversation_proves(
    stored: Conversation | None, change_id: str, sequence: int, now: object, verdict: Verdict
) -> None:
    assert judge(change_id, sequence, STAGED, stored, now) is verdict  # type: ignore[arg-type]


def test_the_cloud_event_envelope_and_data() -> None:
    before = disconnected()
    after = record_change(before, enforce(before, DEADLINE, AUTO_CLOSE) or before, "I" * 22)
    happened = what_happened(before, after, Via.TIMER)
    assert happened is not None
    event = cloud_event(after, happened, "/chat-reconnect")
    assert event == {
        "specversion": "1.0",
        "id": "I" * 22,
        "source": "/chat-reconnect",
        "type": "chatreconnect.conversation.reconnect_timeout",
        "subject": "conversations/conv-1",
        "time": "2026-03-01T09:11:00Z",
        "datacontenttype": "application/json",
        "sequence": "0000000002",
        "data": {
            "conversationId": "conv-1",
            "widgetId": "widget-1",
            "state": "wrap_up",
            "agentId": AGENT,
            "customerConnected": False,
            "disconnectedAt": "2026-03-01T09:01:00Z",
            "reconnectDeadline": None,
            "endReason": "reconnect_timeout",
            "createdAt": "2026-03-01T09:00:00Z",
            "updatedAt": "2026-03-01T09:11:00Z",
            "previousState": "active",
            "via": "timer",
            "capacityReleased": AGENT,
        },
    }
    assert State.WRAP_UP.value == event["data"]["state"]


def test_staged_events_split_into_messages_the_queue_takes() -> None:
    """The worst case: long ids and many events; every message Base64 within 64 KiB."""
    widest = dataclasses.replace(
        disconnected(), conversation_id="c" * 128, agent_id="a" * 128, widget_id="w" * 128
    )
    timed_out = enforce(widest, DEADLINE, AUTO_CLOSE)
    assert timed_out is not None
    events = []
    for number in range(500):
        after = record_change(widest, timed_out, f"{number:022d}")
        happened = what_happened(widest, after, Via.TIMER)
        assert happened is not None
        events.append(cloud_event(after, happened, "/" + "s" * 200))
    messages = list(outbox_messages(events, T0))
    assert len(messages) > 1
    for batch, text in messages:
        assert len(text.encode("ascii")) <= MAX_MESSAGE_BYTES
        assert [s.event for s in parse_outbox_message(decode_message(text))] == batch
    assert [e for batch, _ in messages for e in batch] == events
    # Base64 of UTF-8 JSON, as a Functions queue trigger decodes it by default.
    first = json.loads(base64.b64decode(messages[0][1]))
    assert first["stagedAt"] == "2026-03-01T09:00:00Z"
