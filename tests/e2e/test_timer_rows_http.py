"""The timer's rows of contract §2.2 (R10 to R12) as the platform reads them over HTTP,
against a real Azurite with a movable clock (`shared/services/enforcement.py`).

The timer has no HTTP route: it is the app's `timer.run`; the conversations are set up and
read back through the platform's routes on the local host, so these check what a caller sees
after each outcome. The stored outcomes, index rows and capacity are pinned in
tests/integration/test_state_table.py and test_enforcement_outcomes.py.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx

from tests.conftest import START, FakeClock
from tests.e2e.lifecycle import (
    AGENT,
    LIMIT_MINUTES,
    disconnected,
    get,
    held,
    iso,
    put_widget,
    register,
    send,
)


def test_timer_wraps_up_an_expired_active_conversation_only(
    api: httpx.Client, clock: FakeClock, service: Any
) -> None:
    put_widget(api)
    disconnected(api, "expires")
    disconnected(api, "came-back")
    send(api, "came-back", "customer_reconnected")
    clock.advance(seconds=30)
    # Its deadline falls in the same minute the timer runs in: the row is read, not yet due.
    disconnected(api, "still-waiting")
    assert held(api) == 3

    clock.now = START + timedelta(minutes=LIMIT_MINUTES, seconds=1)
    service.timer.run()

    expired = get(api, "expires")
    assert expired["state"] == "wrap_up"
    assert expired["endReason"] == "reconnect_timeout"
    assert expired["customerConnected"] is False
    assert expired["reconnectDeadline"] is None
    assert expired["agentId"] == AGENT
    waiting = get(api, "still-waiting")
    assert waiting["state"] == "active"
    assert waiting["customerConnected"] is False
    assert waiting["reconnectDeadline"] == iso(START + timedelta(minutes=LIMIT_MINUTES, seconds=30))
    back = get(api, "came-back")
    assert back["state"] == "active"
    assert back["customerConnected"] is True
    assert held(api) == 2


def test_timer_closes_a_requeued_conversation_after_the_deadline(
    api: httpx.Client, clock: FakeClock, service: Any
) -> None:
    put_widget(api)
    disconnected(api, "c1")
    send(api, "c1", "agent_closed")

    clock.advance(minutes=LIMIT_MINUTES, seconds=1)
    service.timer.run()

    result = get(api, "c1")
    assert result["state"] == "closed"
    assert result["endReason"] == "reconnect_timeout"
    assert result["customerConnected"] is False
    assert result["reconnectDeadline"] is None
    assert held(api) == 0


def test_timer_auto_closes_a_wrap_up_after_fifteen_minutes(
    api: httpx.Client, clock: FakeClock, service: Any
) -> None:
    put_widget(api)
    register(api, "c1")
    clock.advance(seconds=30)  # the auto-close moment is mid-minute, like the check below
    send(api, "c1", "agent_ended")

    clock.advance(minutes=15, seconds=-1)
    service.timer.run()
    assert get(api, "c1")["state"] == "wrap_up"

    clock.advance(seconds=2)
    service.timer.run()
    result = get(api, "c1")
    assert result["state"] == "closed"
    assert result["endReason"] == "auto_closed"
    assert held(api) == 0
