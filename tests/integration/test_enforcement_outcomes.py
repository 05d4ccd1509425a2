"""The timer's outcomes against a real Azurite, with a movable clock.

`shared/services/enforcement.py`; contract §2.2 rows R10 to R12, §2.4.

Expiry, auto-close and races with the customer at the deadline: each outcome as stored, with
the index rows and capacity it leaves. The timer is the app's `timer.run`.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import httpx
import pytest

from local.azurite import Azurite
from shared.config import DEFAULT_WRAP_UP_AUTO_CLOSE_MINUTES
from shared.domain.conversation import Event, EventType, State
from shared.domain.errors import LinkUnavailable
from shared.domain.settings import WidgetSettings
from shared.services.app import App
from shared.services.enforcement import CHECKPOINT_MARGIN_MINUTES, EnforcementReport
from shared.services.reconnect import ContinueResult
from shared.storage.entities import bucket_before, due_bucket
from tests.conftest import START, FakeClock, make_service
from tests.integration.timer import (
    AGENT,
    AUTO_CLOSE,
    DEADLINE,
    DISCONNECT_AT,
    LIMIT_MINUTES,
    PORTAL,
    REDIRECT,
    WIDGET,
    at,
    bulk_disconnected,
    capacity_rows,
    conversation,
    disconnected_conversation,
    due_rows,
    held,
    put_widget,
    quiet,
    reconnect_id,
    register,
    send,
    stored,
)

# --- expiry ---------------------------------------------------------------------------


def test_expiry_wraps_up_with_reconnect_timeout_and_releases_capacity(
    api: httpx.Client, service: App, clock: FakeClock, azurite: Azurite
) -> None:
    put_widget(api)
    disconnected_conversation(api, clock, "c-expire")
    assert held(api) == ["c-expire"]
    assert capacity_rows(azurite, service) == {(AGENT, "c-expire")}

    clock.now = DEADLINE + timedelta(seconds=1)
    report = service.timer.run()

    assert (report.expired, report.closed, report.errors) == (1, 0, 0)
    assert report.capacity_released == 1
    after = conversation(api, "c-expire")
    assert after["state"] == "wrap_up"
    assert after["endReason"] == "reconnect_timeout"
    assert after["customerConnected"] is False
    assert after["reconnectDeadline"] is None
    assert after["agentId"] == AGENT
    assert after["updatedAt"] == at(clock.now)
    assert capacity_rows(azurite, service) == set()
    assert service.conversations.agent_capacity(AGENT) == []
    assert held(api) == []


def test_a_run_before_the_deadline_leaves_the_conversation_and_keeps_its_row(
    api: httpx.Client, service: App, clock: FakeClock, azurite: Azurite
) -> None:
    put_widget(api)
    disconnected_conversation(api, clock, "c-early")
    before = conversation(api, "c-early")

    clock.now = DEADLINE - timedelta(seconds=1)  # same minute bucket as the deadline
    report = service.timer.run()

    assert (report.expired, report.pending, report.stale) == (0, 1, 0)
    assert conversation(api, "c-early") == before
    assert due_rows(azurite, service) == {(due_bucket(DEADLINE), "c-early")}
    assert held(api) == ["c-early"]
    # The pending bucket holds the checkpoint back, so the next run looks at it again.
    assert service.store.get_checkpoint() == bucket_before(
        due_bucket(DEADLINE), CHECKPOINT_MARGIN_MINUTES
    )

    clock.now = DEADLINE
    assert service.timer.run().expired == 1
    assert conversation(api, "c-early")["state"] == "wrap_up"


# --- races with the customer -----------------------------------------------------------


def test_continue_one_second_before_the_deadline_wins_and_the_timer_leaves_it(
    api: httpx.Client, service: App, clock: FakeClock, azurite: Azurite
) -> None:
    put_widget(api)
    disconnected_conversation(api, clock, "c-back")
    link = reconnect_id(api, "c-back")

    clock.now = DEADLINE - timedelta(seconds=1)
    answer = api.post(f"/widgets/{WIDGET}/reconnect/{link}")
    assert answer.status_code == 200, answer.text
    assert answer.json()["sameAgent"] is True
    assert answer.json()["state"] == "active"
    continued = conversation(api, "c-back")

    clock.now = DEADLINE + timedelta(seconds=1)
    report = service.timer.run()

    assert (report.expired, report.closed, report.stale, report.errors) == (0, 0, 1, 0)
    assert report.capacity_released == 0
    after = conversation(api, "c-back")
    assert after == continued
    assert after["state"] == "active"
    assert after["customerConnected"] is True
    assert after["reconnectDeadline"] is None
    assert after["endReason"] is None
    assert due_rows(azurite, service) == set()  # the stale deadline row is dropped
    assert held(api) == ["c-back"]
    assert capacity_rows(azurite, service) == {(AGENT, "c-back")}


def test_continue_one_second_after_the_deadline_is_410_before_the_timer_has_run(
    api: httpx.Client, service: App, clock: FakeClock
) -> None:
    put_widget(api)
    disconnected_conversation(api, clock, "c-late")
    link = reconnect_id(api, "c-late")

    clock.now = DEADLINE + timedelta(seconds=1)
    answer = api.post(f"/widgets/{WIDGET}/reconnect/{link}")

    assert answer.status_code == 410
    assert answer.json()["redirectUrl"] == REDIRECT
    context = api.get(f"/widgets/{WIDGET}/reconnect/{link}").json()
    assert context["isReconnectAvailable"] is False
    # The timer has not run: the conversation still waits to be finalised ...
    waiting = conversation(api, "c-late")
    assert (waiting["state"], waiting["customerConnected"]) == ("active", False)
    # ... and when it runs, it is the timer that ends it.
    assert service.timer.run().expired == 1
    assert conversation(api, "c-late")["endReason"] == "reconnect_timeout"


def test_reconnects_racing_the_timer_get_exactly_one_outcome_each(
    service: App, clock: FakeClock, azurite: Azurite
) -> None:
    """Customers whose clock says 'one second left' race a timer whose clock says 'expired'."""
    ids = [f"c-race-{number:02d}" for number in range(40)]
    bulk_disconnected(service, clock, ids)
    customer_clock = FakeClock(DEADLINE - timedelta(seconds=1))
    customers = App(
        service.store, service.signer, auto_close_after=AUTO_CLOSE, clock=customer_clock
    )
    session = customers.reconnect.customer_session(WIDGET, None)
    links = {cid: service.signer.reconnect_id(stored(service, cid)) for cid in ids}
    clock.now = DEADLINE + timedelta(seconds=1)
    start = threading.Barrier(2)
    continued: dict[str, ContinueResult | None] = {}

    def reconnect_all() -> None:
        start.wait()
        # From the other end of the list than the timer, so that both sides win some.
        for cid in reversed(ids):
            try:
                continued[cid] = customers.reconnect.continue_conversation(session, links[cid])
            except LinkUnavailable:
                continued[cid] = None

    def enforce() -> EnforcementReport:
        start.wait()
        return service.timer.run()

    with ThreadPoolExecutor(max_workers=2) as pool:
        customers_done = pool.submit(reconnect_all)
        report = pool.submit(enforce).result()
        customers_done.result()

    wrapped = []
    for cid in ids:
        final = stored(service, cid)
        if continued[cid] is not None:
            # A reconnect that answered 200 is never undone by the timer.
            assert (final.state, final.customer_connected) == (State.ACTIVE, True), cid
        else:
            assert (final.state, final.end_reason) == (State.WRAP_UP, "reconnect_timeout"), cid
            wrapped.append(cid)
    assert report.errors == 0
    assert report.expired == len(wrapped)
    assert report.expired + report.stale == len(ids)
    assert {row for row in due_rows(azurite, service) if row[0] == due_bucket(DEADLINE)} == set()
    still_held = sorted(cid for cid in ids if continued[cid] is not None)
    assert (
        sorted(c.conversation_id for c in service.conversations.agent_capacity(AGENT)) == still_held
    )
    assert capacity_rows(azurite, service) == {(AGENT, cid) for cid in still_held}


# --- auto-close ------------------------------------------------------------------------


@pytest.mark.parametrize("auto_close_minutes", [DEFAULT_WRAP_UP_AUTO_CLOSE_MINUTES, 3])
def test_a_wrap_up_auto_closes_after_the_configured_minutes_and_not_before(
    azurite: Azurite, auto_close_minutes: int
) -> None:
    clock = FakeClock()
    service = make_service(azurite.connection_string, clock, auto_close_minutes=auto_close_minutes)
    service.settings.put_widget(WidgetSettings(WIDGET, True, LIMIT_MINUTES, PORTAL))
    service.conversations.register("c-wrap", WIDGET, AGENT, None)
    clock.now = START + timedelta(seconds=20)
    wrapped = service.conversations.apply_event(
        "c-wrap", Event(EventType.AGENT_ENDED), None
    ).conversation
    assert wrapped.state is State.WRAP_UP
    closes_at = clock.now + timedelta(minutes=auto_close_minutes)

    clock.now = closes_at - timedelta(seconds=1)
    early = service.timer.run()
    assert (early.closed, early.pending) == (0, 1)
    assert stored(service, "c-wrap") == wrapped

    clock.now = closes_at + timedelta(seconds=1)
    report = service.timer.run()

    assert (report.closed, report.expired, report.errors) == (1, 0, 0)
    final = stored(service, "c-wrap")
    assert (final.state, final.end_reason) == (State.CLOSED, "auto_closed")
    assert final.updated_at == clock.now
    assert list(service.store.due_rows("000000000000", "999999999999")) == []
    assert quiet(service.timer.run())


def test_open_after_agent_closed_past_the_deadline_closes_with_reconnect_timeout(
    api: httpx.Client, service: App, clock: FakeClock, azurite: Azurite
) -> None:
    put_widget(api)
    disconnected_conversation(api, clock, "c-requeued")
    clock.now = DISCONNECT_AT + timedelta(minutes=2)
    requeued = send(api, "c-requeued", "agent_closed")
    assert (requeued["state"], requeued["agentId"]) == ("open", None)
    assert held(api) == []

    clock.now = DEADLINE + timedelta(seconds=1)
    report = service.timer.run()

    assert (report.closed, report.expired, report.errors) == (1, 0, 0)
    final = conversation(api, "c-requeued")
    assert (final["state"], final["endReason"]) == ("closed", "reconnect_timeout")
    assert due_rows(azurite, service) == set()  # closed is terminal: nothing more to look at


def test_a_capacity_row_left_by_a_crash_is_removed_with_the_auto_close(
    api: httpx.Client, service: App, clock: FakeClock, azurite: Azurite
) -> None:
    put_widget(api)
    clock.now = START
    register(api, "c-crashed")
    clock.now = START + timedelta(minutes=1)
    send(api, "c-crashed", "agent_ended")
    # A crash between the conversation write and the index cleanup left this row behind.
    service.store.put_capacity(AGENT, "c-crashed")
    assert capacity_rows(azurite, service) == {(AGENT, "c-crashed")}
    assert held(api) == []  # readers verify the index against the conversation

    clock.now = START + timedelta(minutes=1) + AUTO_CLOSE + timedelta(seconds=1)
    report = service.timer.run()

    assert report.closed == 1
    assert report.capacity_released == 1
    assert conversation(api, "c-crashed")["endReason"] == "auto_closed"
    assert capacity_rows(azurite, service) == set()
