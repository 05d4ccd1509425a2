"""The eventId memory of contract §2.2.1 (`shared/domain/conversation.py`: `remember_event`):
an id is recorded once, and only the most recent ids are kept.
"""

from __future__ import annotations

import dataclasses

from shared.domain.conversation import (
    EVENT_ID_MEMORY,
    remember_event,
)
from tests.unit.conversations import active, disconnected

# --- remember_event: eventId idempotency memory -----------------------------------------------


def test_remember_event_records_an_id_once() -> None:
    conversation = remember_event(active(), "evt-1")
    assert conversation.event_ids == ("evt-1",)
    assert remember_event(conversation, "evt-1") is conversation


def test_remember_event_without_an_id_changes_nothing() -> None:
    conversation = active()
    assert remember_event(conversation, None) is conversation


def test_remember_event_does_not_touch_the_state_or_updated_at() -> None:
    before = disconnected()
    after = remember_event(before, "evt-1")
    assert dataclasses.replace(after, event_ids=()) == before


def test_remember_event_keeps_only_the_most_recent_ids() -> None:
    conversation = active()
    for number in range(EVENT_ID_MEMORY + 5):
        conversation = remember_event(conversation, f"evt-{number}")
    assert len(conversation.event_ids) == EVENT_ID_MEMORY
    assert conversation.event_ids[0] == "evt-5"
    assert conversation.event_ids[-1] == f"evt-{EVENT_ID_MEMORY + 4}"
    assert "evt-4" not in conversation.event_ids
    # A forgotten id is treated as new again (judged afresh by the caller).
    again = remember_event(conversation, "evt-0")
    assert again.event_ids[-1] == "evt-0"
    assert len(again.event_ids) == EVENT_ID_MEMORY


def test_remember_event_at_exactly_the_bound_keeps_everything() -> None:
    conversation = active()
    for number in range(EVENT_ID_MEMORY):
        conversation = remember_event(conversation, f"evt-{number}")
    assert conversation.event_ids == tuple(f"evt-{n}" for n in range(EVENT_ID_MEMORY))
