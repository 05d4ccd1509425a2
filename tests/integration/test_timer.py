"""The time-limit timer against a real Azurite, with a movable clock (contract §2.2, §2.4, §3).

Conversations are set up through the HTTP contract (the in-process local host) or the
app's use cases; the timer is the app's `timer.run` or its Functions
handler. Index tables are read directly to check that the timer cleans up after itself.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from azure.data.tables import TableClient
from azure.functions.timer import TimerRequest

from local.azurite import Azurite
from shared.config import DEFAULT_WRAP_UP_AUTO_CLOSE_MINUTES
from shared.domain import conversation as domain
from shared.domain.conversation import Conversation, Event, EventType, State
from shared.domain.errors import LinkUnavailable, StorageUnavailable
from shared.domain.settings import WidgetSettings
from shared.services.app import App
from shared.services.enforcement import CHECKPOINT_MARGIN_MINUTES, EnforcementReport
from shared.services.reconnect import ContinueResult
from shared.services.writes import CAPACITY_CHECK_DELAY
from shared.storage.entities import bucket_before, due_bucket
from tests.conftest import START, FakeClock, make_service

WIDGET = "w-timer"
AGENT = "agent-1"
PORTAL = "https://contoso.example/support"
REDIRECT = "https://contoso.example/new-chat"
LIMIT_MINUTES = 10
LIMIT = timedelta(minutes=LIMIT_MINUTES)
# Disconnects happen mid-minute so that "one second before" and "one second after" the
# deadline fall into the same minute bucket as the deadline itself.
DISCONNECT_AT = START + timedelta(seconds=30)
DEADLINE = DISCONNECT_AT + LIMIT
AUTO_CLOSE = timedelta(minutes=DEFAULT_WRAP_UP_AUTO_CLOSE_MINUTES)


# --- helpers --------------------------------------------------------------------------


def put_widget(api: httpx.Client, widget_id: str = WIDGET, minutes: int = LIMIT_MINUTES) -> None:
    answer = api.put(
        f"/manage/widgets/{widget_id}",
        json={
            "reconnectEnabled": True,
            "timeLimitMinutes": minutes,
            "portalUrl": PORTAL,
            "redirectUrl": REDIRECT,
        },
    )
    assert answer.status_code == 201, answer.text


def register(api: httpx.Client, conversation_id: str, agent_id: str | None = AGENT) -> None:
    body: dict[str, Any] = {"widgetId": WIDGET}
    if agent_id is not None:
        body["agentId"] = agent_id
    answer = api.put(f"/conversations/{conversation_id}", json=body)
    assert answer.status_code == 201, answer.text


def send(api: httpx.Client, conversation_id: str, event_type: str) -> dict[str, Any]:
    answer = api.post(f"/conversations/{conversation_id}/events", json={"type": event_type})
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def conversation(api: httpx.Client, conversation_id: str) -> dict[str, Any]:
    answer = api.get(f"/conversations/{conversation_id}")
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def reconnect_id(api: httpx.Client, conversation_id: str) -> str:
    url = conversation(api, conversation_id)["reconnectUrl"]
    assert url is not None
    return parse_qs(urlsplit(url).query)["oc.reconnectid"][0]


def held(api: httpx.Client, agent_id: str = AGENT) -> list[str]:
    answer = api.get(f"/agents/{agent_id}/capacity")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["held"] == len(body["conversations"])
    return sorted(item["conversationId"] for item in body["conversations"])


def table_rows(azurite: Azurite, service: App, table: str) -> set[tuple[str, str]]:
    """(PartitionKey, RowKey) of every row of one of the service's tables, read directly."""
    (name,) = [name for name in service.store.table_names if name.endswith(table)]
    with TableClient.from_connection_string(azurite.connection_string, name) as client:
        return {(row["PartitionKey"], row["RowKey"]) for row in client.list_entities()}


def due_rows(azurite: Azurite, service: App) -> set[tuple[str, str]]:
    return table_rows(azurite, service, "due")


def capacity_rows(azurite: Azurite, service: App) -> set[tuple[str, str]]:
    return table_rows(azurite, service, "capacity")


def disconnected_conversation(
    api: httpx.Client, clock: FakeClock, conversation_id: str, agent_id: str = AGENT
) -> None:
    """An active conversation whose customer dropped at DISCONNECT_AT (deadline: DEADLINE)."""
    clock.now = START
    register(api, conversation_id, agent_id)
    clock.now = DISCONNECT_AT
    body = send(api, conversation_id, "customer_disconnected")
    assert body["state"] == "active"
    assert body["customerConnected"] is False
    assert body["reconnectDeadline"] == DEADLINE.strftime("%Y-%m-%dT%H:%M:%SZ")


def bulk_disconnected(service: App, clock: FakeClock, ids: list[str]) -> None:
    """Many disconnected conversations through the service's use cases (faster than HTTP)."""
    clock.now = START
    service.settings.put_widget(WidgetSettings(WIDGET, True, LIMIT_MINUTES, PORTAL))

    def one(conversation_id: str) -> None:
        service.conversations.register(conversation_id, WIDGET, AGENT, None)

    def drop(conversation_id: str) -> None:
        service.conversations.apply_event(
            conversation_id, Event(EventType.CUSTOMER_DISCONNECTED), None
        )

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(one, ids))
        clock.now = DISCONNECT_AT
        list(pool.map(drop, ids))


def quiet(report: EnforcementReport) -> bool:
    """True when a run found nothing to do."""
    return (
        report.expired,
        report.closed,
        report.stale,
        report.pending,
        report.errors,
        report.capacity_released,
    ) == (0, 0, 0, 0, 0, 0)


def stored(service: App, conversation_id: str) -> Conversation:
    """The conversation as stored (the source of truth), read directly."""
    found = service.store.get_conversation(conversation_id)
    assert found is not None, conversation_id
    return found.value


def at(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


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


# --- repeated, late, large and concurrent runs ----------------------------------------


def test_a_second_run_in_a_row_does_nothing(
    api: httpx.Client, service: App, clock: FakeClock, azurite: Azurite
) -> None:
    put_widget(api)
    for cid in ("c-twice-1", "c-twice-2", "c-twice-3"):
        disconnected_conversation(api, clock, cid)
    clock.now = DEADLINE + timedelta(seconds=1)
    first = service.timer.run()
    assert first.expired == 3
    snapshot = {cid: conversation(api, cid) for cid in ("c-twice-1", "c-twice-2", "c-twice-3")}
    rows = due_rows(azurite, service), capacity_rows(azurite, service)

    clock.advance(seconds=1)
    second = service.timer.run()

    assert quiet(second), second
    assert {cid: conversation(api, cid) for cid in snapshot} == snapshot
    assert (due_rows(azurite, service), capacity_rows(azurite, service)) == rows


def test_a_run_after_a_one_hour_gap_catches_up_on_every_bucket(
    api: httpx.Client, service: App, clock: FakeClock
) -> None:
    put_widget(api)
    clock.now = START
    assert quiet(service.timer.run())  # the last run before the gap
    checkpoint = service.store.get_checkpoint()
    assert checkpoint is not None
    # Customers drop every eight minutes during the gap: deadlines in six different buckets,
    # the last at 00:50:07.
    ids = [f"c-gap-{number}" for number in range(6)]
    for number, cid in enumerate(ids):
        clock.now = START + timedelta(minutes=8 * number, seconds=7)
        register(api, cid)
        send(api, cid, "customer_disconnected")
    clock.now = START + timedelta(minutes=55)
    register(api, "c-not-yet")
    send(api, "c-not-yet", "customer_disconnected")  # deadline 01:05, after the next run

    clock.now = START + timedelta(hours=1)
    report = service.timer.run()

    assert report.first_bucket == checkpoint
    assert report.last_bucket == due_bucket(clock.now)
    assert (report.expired, report.errors) == (6, 0)
    assert {conversation(api, cid)["updatedAt"] for cid in ids} == {at(clock.now)}
    for cid in ids:
        assert conversation(api, cid)["endReason"] == "reconnect_timeout"
    assert conversation(api, "c-not-yet")["state"] == "active"
    assert held(api) == ["c-not-yet"]
    # The earliest deadline (00:10:07) was enforced 49 min 53 s late.
    assert report.max_lateness_seconds == 49 * 60 + 53


def test_250_expirations_in_one_run_are_all_wrapped_up_and_all_rows_deleted(
    service: App, clock: FakeClock, azurite: Azurite
) -> None:
    ids = [f"c-bulk-{number:03d}" for number in range(250)]
    bulk_disconnected(service, clock, ids)
    assert due_rows(azurite, service) == {(due_bucket(DEADLINE), cid) for cid in ids}
    assert len(capacity_rows(azurite, service)) == 250

    clock.now = DEADLINE + timedelta(seconds=1)
    report = service.timer.run()

    assert (report.expired, report.stale, report.pending, report.errors) == (250, 0, 0, 0)
    assert report.capacity_released == 250
    for cid in ids:
        final = stored(service, cid)
        assert (final.state, final.end_reason) == (State.WRAP_UP, "reconnect_timeout"), cid
    # Only the auto-close rows of the new wrap-ups remain; every deadline row is gone.
    auto_close_bucket = due_bucket(clock.now + AUTO_CLOSE)
    assert due_rows(azurite, service) == {(auto_close_bucket, cid) for cid in ids}
    assert capacity_rows(azurite, service) == set()
    assert service.conversations.agent_capacity(AGENT) == []


def test_two_concurrent_runs_give_each_conversation_exactly_one_outcome(
    service: App, clock: FakeClock, azurite: Azurite
) -> None:
    ids = [f"c-twin-{number:03d}" for number in range(100)]
    bulk_disconnected(service, clock, ids)
    clock.now = DEADLINE + timedelta(seconds=1)
    start = threading.Barrier(2)

    def run() -> EnforcementReport:
        start.wait()
        return service.timer.run()

    with ThreadPoolExecutor(max_workers=2) as pool:
        reports = [future.result() for future in [pool.submit(run), pool.submit(run)]]

    assert [report.errors for report in reports] == [0, 0]
    assert sum(report.expired for report in reports) == 100
    assert sum(report.closed for report in reports) == 0
    for cid in ids:
        final = stored(service, cid)
        assert (final.state, final.end_reason) == (State.WRAP_UP, "reconnect_timeout"), cid
        assert final.wrap_up_at == clock.now
    assert due_rows(azurite, service) == {(due_bucket(clock.now + AUTO_CLOSE), cid) for cid in ids}
    assert capacity_rows(azurite, service) == set()


# --- the checkpoint --------------------------------------------------------------------


def test_the_checkpoint_is_set_and_the_next_run_starts_there(
    service: App, clock: FakeClock
) -> None:
    assert service.store.get_checkpoint() is None
    first = service.timer.run()
    assert first.first_bucket == "000000000000"  # no checkpoint yet: from the beginning
    checkpoint = service.store.get_checkpoint()
    assert checkpoint == bucket_before(due_bucket(START), CHECKPOINT_MARGIN_MINUTES)

    clock.advance(minutes=7)
    second = service.timer.run()

    assert second.first_bucket == checkpoint
    assert second.last_bucket == due_bucket(clock.now)
    assert service.store.get_checkpoint() == bucket_before(
        due_bucket(clock.now), CHECKPOINT_MARGIN_MINUTES
    )


# --- stale index rows ------------------------------------------------------------------


def test_stale_index_rows_are_dropped_and_their_conversations_left_alone(
    api: httpx.Client, service: App, clock: FakeClock, azurite: Azurite
) -> None:
    put_widget(api)
    for cid in ("c-reconnected", "c-agent-ended", "c-customer-ended"):
        disconnected_conversation(api, clock, cid)
    clock.now = DISCONNECT_AT + timedelta(minutes=1)
    send(api, "c-reconnected", "customer_reconnected")
    send(api, "c-agent-ended", "agent_ended")
    send(api, "c-customer-ended", "customer_ended")
    service.store.put_due(DEADLINE, "c-never-registered")
    before = {
        cid: conversation(api, cid)
        for cid in ("c-reconnected", "c-agent-ended", "c-customer-ended")
    }
    assert len(due_rows(azurite, service)) == 6  # 4 deadline rows + 2 auto-close rows

    clock.now = DEADLINE + timedelta(seconds=1)
    report = service.timer.run()

    assert (report.stale, report.expired, report.closed, report.errors) == (4, 0, 0, 0)
    assert {cid: conversation(api, cid) for cid in before} == before
    assert before["c-reconnected"]["state"] == "active"
    assert before["c-agent-ended"]["endReason"] == "agent_ended"
    assert before["c-customer-ended"]["endReason"] == "customer_ended"
    wrap_up_due = due_bucket(DISCONNECT_AT + timedelta(minutes=1) + AUTO_CLOSE)
    assert due_rows(azurite, service) == {
        (wrap_up_due, "c-agent-ended"),
        (wrap_up_due, "c-customer-ended"),
    }
    assert held(api) == ["c-reconnected"]
    assert capacity_rows(azurite, service) == {(AGENT, "c-reconnected")}


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


# --- the Functions handler -------------------------------------------------------------


def test_the_timer_handler_logs_exactly_one_structured_line(
    api: httpx.Client, service: App, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    from shared.api.timers import enforce_time_limits

    put_widget(api)
    disconnected_conversation(api, clock, "c-logged")
    disconnected_conversation(api, clock, "c-reconnected")
    clock.now = DISCONNECT_AT + timedelta(minutes=1)
    send(api, "c-reconnected", "customer_reconnected")
    clock.now = DEADLINE + timedelta(seconds=5)
    caplog.set_level(logging.INFO)

    enforce_time_limits(TimerRequest(past_due=True))

    lines = [record for record in caplog.records if record.name == "shared.api.timers"]
    assert len(lines) == 1
    message = lines[0].getMessage()
    summary = json.loads(message[message.index("{") :])
    assert summary["expired"] == 1
    assert summary["closed"] == 0
    assert summary["stale"] == 1
    assert summary["errors"] == 0
    assert summary["pastDue"] is True
    assert summary["maxLatenessSeconds"] == 5
    assert isinstance(summary["durationSeconds"], int | float)
    assert summary["durationSeconds"] >= 0
    assert conversation(api, "c-logged")["state"] == "wrap_up"


# --- failures ---------------------------------------------------------------------------


def test_when_the_batched_index_write_fails_each_expiry_is_written_after_its_own_index_row(
    service: App, clock: FakeClock, azurite: Azurite, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = [f"c-nobatch-{number}" for number in range(3)]
    bulk_disconnected(service, clock, ids)

    def unavailable(rows: object) -> None:
        raise StorageUnavailable("Table storage is not available right now.")

    monkeypatch.setattr(service.store, "put_due_rows", unavailable)
    clock.now = DEADLINE + timedelta(seconds=1)
    report = service.timer.run()

    assert (report.expired, report.errors) == (3, 0)
    # Every wrap-up still has the row its auto-close needs.
    assert due_rows(azurite, service) == {(due_bucket(clock.now + AUTO_CLOSE), cid) for cid in ids}


def test_when_the_index_cleanup_fails_the_next_run_finishes_it_and_the_checkpoint_waits(
    service: App, clock: FakeClock, azurite: Azurite, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = [f"c-noclean-{number}" for number in range(3)]
    bulk_disconnected(service, clock, ids)
    settle_capacity_checks(service, clock)

    def unavailable(*args: object) -> None:
        raise StorageUnavailable("Table storage is not available right now.")

    monkeypatch.setattr(service.store, "delete_capacity", unavailable)
    clock.now = DEADLINE + timedelta(seconds=1)
    report = service.timer.run()

    # The outcomes are written; their rows stay and hold the checkpoint back.
    assert all(stored(service, cid).end_reason == "reconnect_timeout" for cid in ids)
    assert (report.expired, report.errors, report.cleanup_errors) == (3, 0, 3)
    assert report.capacity_released == 0
    assert {(due_bucket(DEADLINE), cid) for cid in ids} <= due_rows(azurite, service)
    assert {(AGENT, cid) for cid in ids} <= capacity_rows(azurite, service)
    assert service.store.get_checkpoint() == bucket_before(
        due_bucket(DEADLINE), CHECKPOINT_MARGIN_MINUTES
    )

    monkeypatch.undo()
    clock.advance(seconds=30)
    retried = service.timer.run()

    assert (retried.stale, retried.errors, retried.capacity_released) == (3, 0, 3)
    assert capacity_rows(azurite, service) == set()
    assert due_rows(azurite, service) == {(due_bucket(DEADLINE + AUTO_CLOSE), cid) for cid in ids}
    assert all(stored(service, cid).state is State.WRAP_UP for cid in ids)


@pytest.mark.parametrize("failing", ["get_conversation", "replace_conversation"])
def test_a_row_that_fails_stays_for_the_next_run_and_does_not_stop_the_others(
    service: App,
    clock: FakeClock,
    azurite: Azurite,
    monkeypatch: pytest.MonkeyPatch,
    failing: str,
) -> None:
    ids = ["c-ok-1", "c-broken", "c-ok-2"]
    bulk_disconnected(service, clock, ids)
    if failing == "get_conversation":
        # A due row with a snapshot needs no read; a plain one (as a crash leaves it) does.
        service.store.put_due(DEADLINE, "c-broken")
    working = getattr(service.store, failing)

    def flaky(first: Any, *args: Any) -> Any:
        conversation_id = first if isinstance(first, str) else first.conversation_id
        if conversation_id == "c-broken":
            raise StorageUnavailable("Table storage is not available right now.")
        return working(first, *args)

    monkeypatch.setattr(service.store, failing, flaky)
    clock.now = DEADLINE + timedelta(seconds=1)
    report = service.timer.run()

    assert (report.expired, report.errors) == (2, 1)
    assert (due_bucket(DEADLINE), "c-broken") in due_rows(azurite, service)
    assert service.store.get_checkpoint() == bucket_before(
        due_bucket(DEADLINE), CHECKPOINT_MARGIN_MINUTES
    )
    monkeypatch.undo()
    clock.advance(seconds=30)
    retried = service.timer.run()
    assert (retried.expired, retried.errors) == (1, 0)
    assert stored(service, "c-broken").end_reason == "reconnect_timeout"


# --- due rows with a snapshot (one conditional write per expiry) ------------------------


class ConversationRequests:
    """A `raw_request_hook` recording (method, If-Match) of requests to the conversations
    table (`per_call_policies` never see table requests; see test_request_cost.py)."""

    def __init__(self) -> None:
        self.table = ""
        self._lock = threading.Lock()
        self._calls: list[tuple[str, str | None]] = []

    def __call__(self, request: Any) -> None:
        http = request.http_request
        segment = urlsplit(http.url).path.rstrip("/").rsplit("/", 1)[-1]
        if segment.split("(", 1)[0] == self.table:
            with self._lock:
                self._calls.append((http.method, http.headers.get("If-Match")))

    def take(self) -> list[tuple[str, str | None]]:
        with self._lock:
            calls, self._calls = self._calls, []
        return calls


@pytest.fixture
def counted(azurite: Azurite, clock: FakeClock) -> tuple[App, ConversationRequests]:
    """A service whose every attempt at a conversations-table request is recorded."""
    log = ConversationRequests()
    built = make_service(azurite.connection_string, clock, raw_request_hook=log, retry_total=0)
    (log.table,) = [name for name in built.store.table_names if name.endswith("conversations")]
    return built, log


def settle_capacity_checks(service: App, clock: FakeClock) -> None:
    """A run in the minute before the deadline's: does the capacity checks that registering
    (or agent_closed) noted, so that the run under test reads nothing for them."""
    clock.now = DEADLINE - timedelta(minutes=1)
    report = service.timer.run()
    assert (report.expired, report.closed, report.stale, report.errors) == (0, 0, 0, 0)


def snapshot_of(service: App, conversation_id: str) -> Any:
    (row,) = [
        row
        for row in service.store.due_rows("000000000000", "999999999999")
        if row.conversation_id == conversation_id
    ]
    return row.snapshot


def test_the_disconnect_path_puts_a_current_snapshot_into_the_due_row(
    counted: tuple[App, ConversationRequests], clock: FakeClock
) -> None:
    service, _ = counted
    bulk_disconnected(service, clock, ["c-snapshot"])

    snapshot = snapshot_of(service, "c-snapshot")
    current = service.store.get_conversation("c-snapshot")
    assert current is not None
    assert snapshot is not None
    assert snapshot.etag == current.etag
    assert snapshot.value == current.value
    assert snapshot.value.reconnect_deadline == DEADLINE


def test_an_expiry_on_a_current_snapshot_is_one_request_to_the_conversations_table(
    counted: tuple[App, ConversationRequests], clock: FakeClock, azurite: Azurite
) -> None:
    service, log = counted
    bulk_disconnected(service, clock, ["c-blind"])
    etag = snapshot_of(service, "c-blind").etag
    settle_capacity_checks(service, clock)
    log.take()

    clock.now = DEADLINE + timedelta(seconds=1)
    report = service.timer.run()

    assert (report.expired, report.errors, report.capacity_released) == (1, 0, 1)
    assert log.take() == [("PUT", etag)]  # no read: a write conditional on the snapshot
    final = stored(service, "c-blind")
    assert (final.state, final.end_reason) == (State.WRAP_UP, "reconnect_timeout")
    assert due_rows(azurite, service) == {(due_bucket(clock.now + AUTO_CLOSE), "c-blind")}
    assert capacity_rows(azurite, service) == set()


def test_a_snapshot_outdated_by_a_reconnect_fails_its_write_and_the_timer_leaves_it(
    counted: tuple[App, ConversationRequests], clock: FakeClock, azurite: Azurite
) -> None:
    service, log = counted
    bulk_disconnected(service, clock, ["c-came-back"])
    etag = snapshot_of(service, "c-came-back").etag
    link = service.signer.reconnect_id(stored(service, "c-came-back"))
    settle_capacity_checks(service, clock)
    clock.now = DEADLINE - timedelta(seconds=1)
    service.reconnect.continue_conversation(service.reconnect.customer_session(WIDGET, None), link)
    continued = stored(service, "c-came-back")
    log.take()

    clock.now = DEADLINE + timedelta(seconds=1)
    report = service.timer.run()

    assert (report.expired, report.stale, report.errors, report.capacity_released) == (0, 1, 0, 0)
    # The write conditional on the snapshot failed; the timer then read and decided again.
    assert log.take() == [("PUT", etag), ("GET", None)]
    assert stored(service, "c-came-back") == continued
    assert (continued.state, continued.customer_connected) == (State.ACTIVE, True)
    # The deadline row is dropped, and so is the auto-close row made for the failed write.
    assert due_rows(azurite, service) == set()
    assert capacity_rows(azurite, service) == {(AGENT, "c-came-back")}


def test_a_snapshot_outdated_by_agent_closed_falls_back_and_closes_with_reconnect_timeout(
    counted: tuple[App, ConversationRequests], clock: FakeClock, azurite: Azurite
) -> None:
    service, log = counted
    bulk_disconnected(service, clock, ["c-requeued-snap"])
    etag = snapshot_of(service, "c-requeued-snap").etag
    clock.now = DISCONNECT_AT + timedelta(minutes=2)
    service.conversations.apply_event("c-requeued-snap", Event(EventType.AGENT_CLOSED), None)
    requeued = service.store.get_conversation("c-requeued-snap")
    assert requeued is not None
    assert requeued.value.state is State.OPEN
    assert snapshot_of(service, "c-requeued-snap").etag == etag  # same deadline: not renewed
    settle_capacity_checks(service, clock)
    log.take()

    clock.now = DEADLINE + timedelta(seconds=1)
    report = service.timer.run()

    assert (report.closed, report.expired, report.errors) == (1, 0, 0)
    assert log.take() == [("PUT", etag), ("GET", None), ("PUT", requeued.etag)]
    final = stored(service, "c-requeued-snap")
    assert (final.state, final.end_reason) == (State.CLOSED, "reconnect_timeout")
    assert due_rows(azurite, service) == set()
    assert capacity_rows(azurite, service) == set()


def test_a_plain_due_row_without_snapshot_is_enforced_by_reading_first(
    counted: tuple[App, ConversationRequests], clock: FakeClock, azurite: Azurite
) -> None:
    service, log = counted
    bulk_disconnected(service, clock, ["c-plain"])
    service.store.put_due(DEADLINE, "c-plain")  # as a crash or an older version leaves it
    assert snapshot_of(service, "c-plain") is None
    etag = service.store.get_conversation("c-plain")
    assert etag is not None
    settle_capacity_checks(service, clock)
    log.take()

    clock.now = DEADLINE + timedelta(seconds=1)
    report = service.timer.run()

    assert (report.expired, report.errors, report.capacity_released) == (1, 0, 1)
    assert log.take() == [("GET", None), ("PUT", etag.etag)]
    final = stored(service, "c-plain")
    assert (final.state, final.end_reason) == (State.WRAP_UP, "reconnect_timeout")
    assert due_rows(azurite, service) == {(due_bucket(clock.now + AUTO_CLOSE), "c-plain")}


# --- a writer between the timer's read and its delete (contract §3 "Timer") ------------


def writer_disconnects_after_the_timer_read(
    service: App, conversation_id: str, moment: datetime
) -> Callable[[], None]:
    """The rest of a disconnect whose due row was put before the timer read: the
    conversation write and its snapshot, as `ConversationWriter.write` does them."""

    def finish() -> None:
        found = service.store.get_conversation(conversation_id)
        assert found is not None
        widget = service.settings.get_widget(found.value.widget_id).value
        after = domain.apply_event(
            found.value, Event(EventType.CUSTOMER_DISCONNECTED), widget, moment
        )
        etag = service.store.replace_conversation(after, found.etag)
        assert after.reconnect_deadline is not None
        service.store.put_due_snapshot(after.reconnect_deadline, after, etag)

    return finish


def between_read_and_delete(
    monkeypatch: pytest.MonkeyPatch, service: App, step: Callable[[], None]
) -> None:
    """Run `step` once, after the timer judged its due rows and before it deletes any
    (the timer's workers delete concurrently: each waits until the step is done)."""
    delete_due = service.store.delete_due
    lock = threading.Lock()
    pending = [step]

    def interleaved(rows: Any) -> Any:
        with lock:
            while pending:
                pending.pop()()
        return delete_due(rows)

    monkeypatch.setattr(service.store, "delete_due", interleaved)


def test_a_due_row_a_writer_renewed_after_the_timer_judged_it_is_kept_and_enforced_next_run(
    service: App, clock: FakeClock, azurite: Azurite, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A one-minute limit: the writer's due row is for the next minute, which a timer whose
    # clock is a minute ahead (or a run that reads a bucket late) already reads.
    service.settings.put_widget(WidgetSettings(WIDGET, True, 1, PORTAL))
    service.conversations.register("c-raced", WIDGET, AGENT, None)
    settle_capacity_checks(service, clock)
    writer_now = START + timedelta(minutes=20, seconds=10)
    deadline = writer_now + timedelta(minutes=1)
    # The writer's first step (`_prepare_indexes`): the due row, before its write.
    service.store.put_due(deadline, "c-raced")
    between_read_and_delete(
        monkeypatch,
        service,
        writer_disconnects_after_the_timer_read(service, "c-raced", writer_now),
    )

    clock.now = deadline - timedelta(seconds=5)  # the timer reads the deadline's bucket
    report = service.timer.run()

    # The timer read the conversation still connected and judged the row stale; the
    # writer then renewed the row, so the timer's delete of the version it judged failed.
    assert due_rows(azurite, service) == {(due_bucket(deadline), "c-raced")}
    assert (report.stale, report.renewed, report.expired, report.errors) == (1, 1, 0, 0)
    assert service.store.get_checkpoint() < due_bucket(deadline)
    assert stored(service, "c-raced").reconnect_deadline == deadline

    monkeypatch.undo()
    clock.now = deadline + timedelta(seconds=1)
    retried = service.timer.run()

    assert (retried.expired, retried.errors, retried.capacity_released) == (1, 0, 1)
    final = stored(service, "c-raced")
    assert (final.state, final.end_reason) == (State.WRAP_UP, "reconnect_timeout")
    assert capacity_rows(azurite, service) == set()
    assert service.conversations.agent_capacity(AGENT) == []


def test_renewed_rows_are_kept_and_the_other_stale_rows_deleted(
    service: App, clock: FakeClock, azurite: Azurite, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = [f"c-batch-{number}" for number in range(5)]
    bulk_disconnected(service, clock, ids)
    clock.now = DISCONNECT_AT + timedelta(minutes=1)
    for cid in ids:  # every deadline row is stale now; all share one bucket
        service.conversations.apply_event(cid, Event(EventType.CUSTOMER_RECONNECTED), None)
    settle_capacity_checks(service, clock)
    renewed = ["c-batch-1", "c-batch-3"]

    def writers_renew() -> None:
        for cid in renewed:
            service.store.put_due(DEADLINE, cid)

    between_read_and_delete(monkeypatch, service, writers_renew)
    clock.now = DEADLINE + timedelta(seconds=1)
    report = service.timer.run()

    assert due_rows(azurite, service) == {(due_bucket(DEADLINE), cid) for cid in renewed}
    assert (report.stale, report.renewed, report.errors, report.cleanup_errors) == (5, 2, 0, 0)
    assert service.store.get_checkpoint() == bucket_before(
        due_bucket(DEADLINE), CHECKPOINT_MARGIN_MINUTES
    )
    monkeypatch.undo()
    clock.advance(seconds=30)
    again = service.timer.run()
    assert (again.stale, again.renewed) == (2, 0)
    assert due_rows(azurite, service) == set()


@pytest.mark.parametrize(
    "changed",
    [
        ["c-row-1", "c-row-4"],  # the batch is sent again without each
        ["c-row-0", "c-row-1", "c-row-2", "c-row-3", "c-row-5"],  # then the rest one by one
    ],
)
def test_due_rows_changed_since_read_are_left_out_of_the_batch_delete(
    service: App, azurite: Azurite, changed: list[str]
) -> None:
    ids = [f"c-row-{number}" for number in range(6)]
    for cid in ids:
        service.store.put_due(DEADLINE, cid)
    read = service.store.due_rows(due_bucket(DEADLINE), due_bucket(DEADLINE))
    assert len(read) == len(ids)
    for cid in changed:
        service.store.put_due(DEADLINE, cid)

    kept = service.store.delete_due(read)

    assert due_rows(azurite, service) == {(due_bucket(DEADLINE), cid) for cid in changed}
    assert sorted(row.conversation_id for row in kept) == changed


def test_a_capacity_check_noted_again_while_the_timer_checked_it_stays_for_the_next_run(
    service: App, clock: FakeClock, azurite: Azurite, monkeypatch: pytest.MonkeyPatch
) -> None:
    bulk_disconnected(service, clock, ["c-noted"])
    # Registering at START noted this check; a writer's `_note_capacity_change` in the
    # same minute notes the same one again.
    noted_at = START + CAPACITY_CHECK_DELAY
    delete_checks = service.store.delete_capacity_checks
    pending = [lambda: service.store.put_capacity_check(noted_at, "c-noted", AGENT)]

    def interleaved(checks: Any) -> None:
        while pending:
            pending.pop()()
        delete_checks(checks)

    monkeypatch.setattr(service.store, "delete_capacity_checks", interleaved)
    clock.now = START + CAPACITY_CHECK_DELAY + timedelta(minutes=1)
    report = service.timer.run()

    assert report.capacity_checked == 1
    assert [c.conversation_id for c in service.store.capacity_checks(due_bucket(clock.now))] == [
        "c-noted"
    ]
    monkeypatch.undo()
    clock.advance(seconds=30)
    assert service.timer.run().capacity_checked == 1
    assert service.store.capacity_checks(due_bucket(clock.now)) == []
    assert capacity_rows(azurite, service) == {(AGENT, "c-noted")}
