"""Crashes between a conversation and its capacity row, made deterministic, against a real
Azurite (`shared/services/writes.py`, repaired by `shared/services/enforcement.py`).

A storage call is made to fail at one step of the write path; the capacity row it leaves
(or keeps) must agree with the conversation after the timer's next run.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from shared.domain.conversation import Conversation, Event, EventType
from shared.domain.errors import StorageUnavailable
from shared.domain.settings import WidgetSettings
from shared.services.app import App
from shared.services.enforcement import EnforcementReport
from shared.services.writes import CAPACITY_CHECK_DELAY
from tests.conftest import FakeClock

PORTAL = "https://contoso.example/chat"

# --- crashes between a conversation and its capacity row, made deterministic ---------------


def _unavailable(*args: Any, **kwargs: Any) -> Any:
    raise StorageUnavailable("Table storage is not available right now.")


def _registered(service: App, agent: str | None = "agent-1") -> Conversation:
    service.settings.put_widget(WidgetSettings("w", True, 10, PORTAL))
    return service.conversations.register("c1", "w", agent, None)[0].conversation


def _after_one_timer_run(service: App, clock: FakeClock) -> EnforcementReport:
    clock.advance(seconds=(CAPACITY_CHECK_DELAY + timedelta(minutes=1)).total_seconds())
    report = service.timer.run()
    assert (report.errors, report.capacity_check_errors) == (0, 0), report
    return report


@pytest.mark.parametrize(
    "event", [EventType.AGENT_ENDED, EventType.AGENT_CLOSED, EventType.CUSTOMER_ENDED]
)
def test_a_capacity_row_left_by_a_failure_after_the_conversation_write_goes_with_the_next_run(
    event: EventType, service: App, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    _registered(service)
    with monkeypatch.context() as patched:
        patched.setattr(service.store, "delete_capacity", _unavailable)
        with pytest.raises(StorageUnavailable):
            service.conversations.apply_event("c1", Event(event), None)
    ended = service.conversations.get_conversation("c1").conversation
    assert not ended.holds_capacity  # the conversation changed; its row was left behind
    assert service.store.capacity_rows("agent-1") == ["c1"]

    report = _after_one_timer_run(service, clock)

    assert service.store.capacity_rows("agent-1") == []
    assert report.capacity_checked >= 1
    assert service.conversations.get_conversation("c1").conversation == ended


def test_a_decline_whose_cleanup_fails_is_completed_by_the_next_run(
    service: App, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    conversation = _registered(service)
    session = service.reconnect.customer_session("w", None)
    link = service.signer.reconnect_id(conversation)
    with monkeypatch.context() as patched:
        patched.setattr(service.store, "delete_capacity", _unavailable)
        with pytest.raises(StorageUnavailable):
            service.reconnect.decline(session, link)
    assert service.store.capacity_rows("agent-1") == ["c1"]

    _after_one_timer_run(service, clock)

    assert service.store.capacity_rows("agent-1") == []


def test_a_capacity_row_of_a_registration_that_never_got_stored_goes_with_the_next_run(
    service: App, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    service.settings.put_widget(WidgetSettings("w", True, 10, PORTAL))
    with monkeypatch.context() as patched:
        patched.setattr(service.store, "insert_conversation", _unavailable)
        with pytest.raises(StorageUnavailable):
            service.conversations.register("c1", "w", "agent-1", None)
    assert service.store.get_conversation("c1") is None
    assert service.store.capacity_rows("agent-1") == ["c1"]

    _after_one_timer_run(service, clock)

    assert service.store.capacity_rows("agent-1") == []


def test_a_change_that_never_got_written_keeps_its_capacity_row(
    service: App, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    _registered(service)
    with monkeypatch.context() as patched:
        patched.setattr(service.store, "replace_conversation", _unavailable)
        with pytest.raises(StorageUnavailable):
            service.conversations.apply_event("c1", Event(EventType.AGENT_ENDED), None)

    report = _after_one_timer_run(service, clock)

    assert service.conversations.get_conversation("c1").conversation.holds_capacity
    assert service.store.capacity_rows("agent-1") == ["c1"]
    assert report.capacity_checked == 1


def test_a_retried_assignment_racing_itself_keeps_the_capacity_row(
    service: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The loser of the race must not delete the row the winner (same agent) needs."""
    _registered(service, agent=None)
    replace = service.store.replace_conversation
    raced: list[str] = []

    def racing(conversation: Conversation, etag: str) -> str:
        if not raced:
            raced.append(etag)
            replace(conversation, etag)  # the same event, applied by a concurrent retry
        return replace(conversation, etag)  # the stale ETag now: ConcurrencyConflict

    monkeypatch.setattr(service.store, "replace_conversation", racing)
    result = service.conversations.apply_event(
        "c1", Event(EventType.AGENT_ASSIGNED, "agent-1"), "assign-1"
    )

    assert raced
    assert result.conversation.holds_capacity
    assert service.store.capacity_rows("agent-1") == ["c1"]
