"""How the timer writes against a real Azurite (`shared/services/enforcement.py` through
`shared/services/writes.py`; contract §3 "Timer").

What a failed write leaves for the next run, due rows carrying a snapshot (one conditional
write per expiry), and a writer that changes a due row between the timer's read and its
delete.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest

from local.azurite import Azurite
from shared.domain import conversation as domain
from shared.domain.conversation import Event, EventType, State
from shared.domain.errors import StorageUnavailable
from shared.domain.settings import WidgetSettings
from shared.services.app import App
from shared.services.enforcement import CHECKPOINT_MARGIN_MINUTES
from shared.services.writes import CAPACITY_CHECK_DELAY
from shared.storage.entities import bucket_before, due_bucket
from tests.conftest import START, FakeClock, make_service
from tests.integration.timer import (
    AGENT,
    AUTO_CLOSE,
    DEADLINE,
    DISCONNECT_AT,
    PORTAL,
    WIDGET,
    bulk_disconnected,
    capacity_rows,
    due_rows,
    stored,
)

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
