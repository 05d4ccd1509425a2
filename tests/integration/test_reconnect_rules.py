"""The precise rules of contract §2.2 and §2.2.1 about the widget's continue and decline,
through the App's use cases (`app.reconnect`) over a real Azurite, with a movable clock: what
a successful reconnect stores (P4), the continue's answers (P7), decline (P8), every kind of
unusable link (P10) and the deadline judged at request time (P13).

The HTTP answers (200 bodies, 410 problems, 204) are pinned once per kind in
tests/e2e/test_widget_http.py; the decisions on pure values in
tests/unit/test_domain_continue.py.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest

from shared.domain.conversation import EndReason, State
from shared.services.app import App
from shared.services.reconnect import ReconnectContext
from tests.conftest import START, FakeClock
from tests.integration.use_cases import (
    AGENT,
    LIMIT,
    LIMIT_MINUTES,
    REDIRECT,
    UNKNOWN_LINK,
    context,
    decline,
    disconnected,
    gone,
    held,
    link_of,
    put_widget,
    register,
    resume,
    send,
    stored,
    unavailable,
)

# --- P4, P7: continue ------------------------------------------------------------------------


def test_p4_continue_reconnects_to_the_same_agent_and_a_repeat_changes_nothing(
    service: App, clock: FakeClock
) -> None:
    put_widget(service)
    disconnected(service, "c1")
    reconnect_id = link_of(service, "c1")
    clock.advance(minutes=3)
    reconnected_at = clock.now

    first = resume(service, reconnect_id)

    assert first.conversation.conversation_id == "c1"
    assert first.conversation.state is State.ACTIVE
    assert first.conversation.agent_id == AGENT
    assert first.same_agent is True
    assert first.reconnected_at == reconnected_at
    after = stored(service, "c1")
    assert after.value.state is State.ACTIVE
    assert after.value.customer_connected is True
    assert after.value.disconnected_at is None
    assert after.value.reconnect_deadline is None
    assert after.value.updated_at == reconnected_at
    assert held(service) == ["c1"]

    clock.advance(seconds=20)
    second = resume(service, reconnect_id)
    assert second.conversation.conversation_id == "c1"
    assert second.conversation.state is State.ACTIVE
    assert second.conversation.agent_id == AGENT
    assert second.same_agent is True
    assert stored(service, "c1") == after
    assert held(service) == ["c1"]


def test_p7_a_page_refresh_while_still_connected_is_a_valid_continue_that_changes_nothing(
    service: App, clock: FakeClock
) -> None:
    put_widget(service)
    register(service, "c1")
    registered = stored(service, "c1")
    reconnect_id = link_of(service, "c1")
    clock.advance(minutes=1)

    assert context(service, reconnect_id) == ReconnectContext(True, reconnect_id, "c1", None, None)
    answer = resume(service, reconnect_id)

    assert answer.conversation.state is State.ACTIVE
    assert answer.conversation.agent_id == AGENT
    assert answer.same_agent is True
    assert answer.reconnected_at == clock.now
    assert stored(service, "c1") == registered


def test_p7_continue_after_agent_closed_reaches_the_queue_not_the_agent(
    service: App, clock: FakeClock
) -> None:
    put_widget(service)
    register(service, "c1")
    reconnect_id = link_of(service, "c1")
    send(service, "c1", "agent_closed")
    clock.advance(seconds=5)

    answer = resume(service, reconnect_id)

    assert answer.conversation.state is State.OPEN
    assert answer.conversation.agent_id is None
    assert answer.same_agent is False
    assert answer.reconnected_at == clock.now
    assert held(service) == []


def test_p7_continue_after_requeue_to_another_agent_is_not_the_same_agent(
    service: App, clock: FakeClock
) -> None:
    put_widget(service)
    register(service, "c1")
    reconnect_id = link_of(service, "c1")
    send(service, "c1", "customer_disconnected")
    send(service, "c1", "agent_closed")
    send(service, "c1", "agent_assigned", agent_id="agent-2")
    clock.advance(seconds=5)

    answer = resume(service, reconnect_id)

    assert answer.conversation.state is State.ACTIVE
    assert answer.conversation.agent_id == "agent-2"
    assert answer.same_agent is False
    assert held(service, "agent-2") == ["c1"]


# --- P13: the deadline is judged when the request arrives -------------------------------------


def test_p13_the_deadline_is_checked_at_request_time_to_the_second(
    service: App, clock: FakeClock
) -> None:
    put_widget(service, redirect_url=REDIRECT)
    disconnected(service, "early")
    disconnected(service, "late")
    early, late = link_of(service, "early"), link_of(service, "late")
    deadline = START + LIMIT

    clock.now = deadline - timedelta(seconds=1)
    assert context(service, early).expires_at == deadline
    assert context(service, late).available is True
    resume(service, early)

    clock.now = deadline
    assert context(service, late) == unavailable(REDIRECT)
    assert gone(service, late) == REDIRECT

    clock.now = deadline + timedelta(seconds=1)
    assert context(service, late) == unavailable(REDIRECT)
    assert gone(service, late) == REDIRECT
    # The timer has not run: the conversation itself has not moved yet.
    assert stored(service, "late").value.state is State.ACTIVE
    assert stored(service, "early").value.customer_connected is True


# --- P10, P8: every unusable link is alike, and declining it changes nothing --------------------

Case = Callable[[App, FakeClock], tuple[str, str | None]]


def _unknown(app: App, clock: FakeClock) -> tuple[str, str | None]:
    return UNKNOWN_LINK, None


def _malformed(app: App, clock: FakeClock) -> tuple[str, str | None]:
    disconnected(app, "c1")
    return "not-a-reconnect-link", "c1"


def _tampered(app: App, clock: FakeClock) -> tuple[str, str | None]:
    disconnected(app, "c1")
    reconnect_id = link_of(app, "c1")
    flipped = "B" if reconnect_id[-1] != "B" else "C"
    return reconnect_id[:-1] + flipped, "c1"


def _other_epoch(app: App, clock: FakeClock) -> tuple[str, str | None]:
    disconnected(app, "c1")
    conversation_id, epoch, tail = link_of(app, "c1").split(".")
    return f"{conversation_id}.{int(epoch) + 1}.{tail}", "c1"


def _expired(app: App, clock: FakeClock) -> tuple[str, str | None]:
    disconnected(app, "c1")
    clock.advance(minutes=LIMIT_MINUTES, seconds=1)  # the timer has not run
    return link_of(app, "c1"), "c1"


def _timed_out(app: App, clock: FakeClock) -> tuple[str, str | None]:
    disconnected(app, "c1")
    clock.advance(minutes=LIMIT_MINUTES, seconds=1)
    app.timer.run()
    return link_of(app, "c1"), "c1"


def _agent_ended(app: App, clock: FakeClock) -> tuple[str, str | None]:
    disconnected(app, "c1")
    reconnect_id = link_of(app, "c1")
    send(app, "c1", "agent_ended")
    return reconnect_id, "c1"


def _customer_ended(app: App, clock: FakeClock) -> tuple[str, str | None]:
    register(app, "c1")
    reconnect_id = link_of(app, "c1")
    send(app, "c1", "customer_ended")
    return reconnect_id, "c1"


def _revoked(app: App, clock: FakeClock) -> tuple[str, str | None]:
    disconnected(app, "c1")
    reconnect_id = link_of(app, "c1")
    app.conversations.revoke_link("c1")
    return reconnect_id, "c1"


def _other_widget(app: App, clock: FakeClock) -> tuple[str, str | None]:
    put_widget(app, "widget-a", redirect_url=REDIRECT)
    disconnected(app, "c1", widget="widget-a")
    reconnect_id = link_of(app, "c1")
    assert context(app, reconnect_id, "widget-a").available is True
    return reconnect_id, "c1"


def _disabled_after_disconnect(app: App, clock: FakeClock) -> tuple[str, str | None]:
    disconnected(app, "c1")
    put_widget(app, reconnect_enabled=False, redirect_url=REDIRECT)
    return link_of(app, "c1"), "c1"


_UNAVAILABLE_CASES: dict[str, Case] = {
    "unknown": _unknown,
    "malformed": _malformed,
    "tampered": _tampered,
    "forged-epoch": _other_epoch,
    "expired-before-timer": _expired,
    "timed-out": _timed_out,
    "agent-ended": _agent_ended,
    "customer-ended": _customer_ended,
    "revoked": _revoked,
    "link-of-another-widget": _other_widget,
    "reconnect-disabled-after-disconnect": _disabled_after_disconnect,
}


@pytest.mark.parametrize("case", _UNAVAILABLE_CASES.values(), ids=_UNAVAILABLE_CASES.keys())
def test_p10_every_unavailable_link_gets_the_same_answer_and_decline_changes_nothing(
    service: App, clock: FakeClock, case: Case
) -> None:
    put_widget(service, redirect_url=REDIRECT)
    reconnect_id, conversation_id = case(service, clock)
    before = stored(service, conversation_id) if conversation_id else None
    capacity_before = held(service)

    assert context(service, reconnect_id) == unavailable(REDIRECT)
    assert context(service, reconnect_id) == context(service, UNKNOWN_LINK)
    assert gone(service, reconnect_id) == REDIRECT
    decline(service, reconnect_id)

    if conversation_id:
        assert stored(service, conversation_id) == before
    assert held(service) == capacity_before


def test_p10_without_a_configured_redirect_an_unusable_link_carries_none(
    service: App, clock: FakeClock
) -> None:
    put_widget(service)  # no redirect URL
    disconnected(service, "c1")
    reconnect_id = link_of(service, "c1")
    clock.advance(minutes=LIMIT_MINUTES, seconds=1)

    assert context(service, reconnect_id) == unavailable(None)
    assert gone(service, reconnect_id) is None
    assert context(service, UNKNOWN_LINK) == unavailable(None)


def test_p8_decline_of_an_active_conversation_wraps_it_up_and_a_repeat_changes_nothing(
    service: App, clock: FakeClock
) -> None:
    put_widget(service)
    disconnected(service, "c1")
    reconnect_id = link_of(service, "c1")
    clock.advance(minutes=1)

    decline(service, reconnect_id)

    ended = stored(service, "c1")
    assert ended.value.state is State.WRAP_UP
    assert ended.value.end_reason is EndReason.CUSTOMER_DECLINED
    assert ended.value.customer_connected is False
    assert ended.value.reconnect_deadline is None
    assert held(service) == []
    assert context(service, reconnect_id) == unavailable(None)

    clock.advance(minutes=1)
    decline(service, reconnect_id)
    assert stored(service, "c1") == ended
    assert held(service) == []


def test_p8_decline_of_an_open_conversation_closes_it_and_a_repeat_changes_nothing(
    service: App, clock: FakeClock
) -> None:
    put_widget(service)
    register(service, "c1", agent=None)
    reconnect_id = link_of(service, "c1")

    decline(service, reconnect_id)

    ended = stored(service, "c1")
    assert ended.value.state is State.CLOSED
    assert ended.value.end_reason is EndReason.CUSTOMER_DECLINED

    clock.advance(minutes=1)
    decline(service, reconnect_id)
    assert stored(service, "c1") == ended
