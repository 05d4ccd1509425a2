"""How the timer runs against a real Azurite, with a movable clock.

`shared/services/enforcement.py`, `shared/api/timers.py`; contract §3 "Timer".

Repeated, late, large and concurrent runs, the checkpoint, stale index rows and the
Functions handler's log line. Index tables are read directly to check that the timer cleans
up after itself.
"""

from __future__ import annotations

import json
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import httpx
import pytest
from azure.functions.timer import TimerRequest

from local.azurite import Azurite
from shared.domain.conversation import State
from shared.services.app import App
from shared.services.enforcement import CHECKPOINT_MARGIN_MINUTES, EnforcementReport
from shared.storage.entities import bucket_before, due_bucket
from tests.conftest import START, FakeClock
from tests.integration.timer import (
    AGENT,
    AUTO_CLOSE,
    DEADLINE,
    DISCONNECT_AT,
    at,
    bulk_disconnected,
    capacity_rows,
    conversation,
    disconnected_conversation,
    due_rows,
    held,
    put_widget,
    quiet,
    register,
    send,
    stored,
)

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
