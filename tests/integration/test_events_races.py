"""None invented in a race (contract §5 "Guarantees"), on real Azurite: 50 threads race on
the same conversations (continue vs agent_ended; continue vs the timer as the deadline
passes) while the relay runs; the events published are exactly the stored changes (the last
one's data is the conversation as GET shows it), none for a loser, sequences without gaps,
every id unique."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from functools import partial
from typing import Any

import httpx
import pytest

from local.azurite import Azurite, AzuriteQueue
from shared.domain.conversation import Event, EventType
from shared.domain.errors import ChatReconnectError
from shared.domain.settings import WidgetSettings
from shared.services.app import App
from shared.storage.queues import QueueUnavailable
from shared.wiring import set_service
from tests.conftest import START, FakeClock, make_service
from tests.integration.events import EventTap, assert_history, breaker_queues_at, relay_until_empty
from tests.integration.timer import DEADLINE, DISCONNECT_AT, PORTAL, REDIRECT

WIDGET = "w-races"
AGENT = "agent-1"
THREADS = 50
TYPE = "chatreconnect.conversation."
# The timer's period (RECONNECT_ENFORCE_SCHEDULE's default): longer than the queue breaker.
TIMER_PERIOD = timedelta(seconds=30)


@pytest.fixture
def app(azurite: Azurite, azurite_queue: AzuriteQueue, clock: FakeClock) -> Iterator[App]:
    # The breakers see real time pass (a queue request that times out under the race's load
    # trips one for a few seconds) and the test's clock move (a timer period ends any).
    queues = breaker_queues_at(
        azurite_queue.connection_string,
        lambda: time.monotonic() + (clock.now - START).total_seconds(),
    )
    built = make_service(azurite.connection_string, clock, events=queues)
    built.settings.put_widget(WidgetSettings(WIDGET, True, 10, PORTAL, REDIRECT))
    set_service(built)
    try:
        yield built
    finally:
        set_service(None)


@pytest.fixture
def http(host_url: str, app: App) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=host_url + "/api", timeout=30) as client:
        yield client


def disconnected(app: App, clock: FakeClock, ids: list[str]) -> dict[str, str]:
    """Active conversations whose customers dropped at DISCONNECT_AT; their links."""
    clock.now = START
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda cid: app.conversations.register(cid, WIDGET, AGENT, None), ids))
        clock.now = DISCONNECT_AT
        disconnect = Event(EventType.CUSTOMER_DISCONNECTED)
        results = list(pool.map(lambda c: app.conversations.apply_event(c, disconnect, None), ids))
    links = {}
    for cid, result in zip(ids, results, strict=True):
        assert result.reconnect_url is not None
        links[cid] = result.reconnect_url.split("oc.reconnectid=")[1]
    return links


def outcome(call: Callable[[], Any]) -> str:
    try:
        call()
    except ChatReconnectError as error:
        return type(error).__name__
    return "ok"


# Why the relay failed during the last race (reported with its figures).
relay_failures: list[str] = []


def race(calls: list[Callable[[], Any]], tap: EventTap) -> list[str]:
    """Start every call at once on its own thread, with the relay running meanwhile (so it
    also judges staged events whose writes are under way or lost); their outcomes."""
    relay_failures.clear()
    start = threading.Barrier(len(calls))
    racing = threading.Event()
    racing.set()

    def relay() -> None:
        while racing.is_set():
            try:
                tap.relay_staged()
            except QueueUnavailable as error:
                # The relay's outage (its message comes back and is relayed again: at
                # least once): it tries again.
                relay_failures.append(str(error).split(": ")[-1])
                time.sleep(0.1)

    def go(call: Callable[[], Any]) -> str:
        start.wait()
        return outcome(call)

    relayer = threading.Thread(target=relay)
    relayer.start()
    try:
        with ThreadPoolExecutor(max_workers=len(calls)) as pool:
            return list(pool.map(go, calls))
    finally:
        racing.clear()
        relayer.join()


def settle(app: App, clock: FakeClock, tap: EventTap) -> list[dict[str, Any]]:
    """Everything the race staged delivered: one timer period later (which also ends any
    breaker a queue failure under the race's load tripped, and flushes the outbox notes
    staged meanwhile), the timer's run, then the relay until the outbox is empty."""
    clock.advance(seconds=TIMER_PERIOD.total_seconds())
    report = app.timer.run()
    print(f"\nafter the race: {report.events_sent} events sent from outbox notes")
    return tap.published() + relay_until_empty(tap)


def queue_trips(caplog: pytest.LogCaptureFixture) -> Counter[str]:
    """Why queue requests failed (each failure trips that queue's breaker)."""
    return Counter(
        record.getMessage().split(": ")[-1]
        for record in caplog.records
        if record.name == "shared.storage.queues"
    )


def test_continue_races_agent_ended(
    app: App, clock: FakeClock, http: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    ids = [f"c{n}" for n in range(4)]
    links = disconnected(app, clock, ids)
    tap = EventTap(app)
    relay_until_empty(tap)
    clock.now = DISCONNECT_AT + timedelta(minutes=1)
    session = app.reconnect.customer_session(WIDGET, None)
    ended = Event(EventType.AGENT_ENDED)
    figures = []
    for cid in ids:
        continues = partial(app.reconnect.continue_conversation, session, links[cid])
        ends = partial(app.conversations.apply_event, cid, ended, None)
        said = race([continues, ends] * (THREADS // 2), tap)
        figures.append((cid, dict(Counter(said[0::2])), dict(Counter(said[1::2]))))
    settle(app, clock, tap)
    events = tap.seen
    # Redeliveries (same id, same event) are allowed: at least once.
    duplicates = assert_history(http, app, events, ids)
    print(
        f"\ncontinue vs agent_ended, {THREADS} threads each: {figures}; {len(events)} events "
        f"delivered, {duplicates} duplicates; relay failures in the last race: "
        f"{Counter(relay_failures)}; queue failures: {queue_trips(caplog)}"
    )
    for cid, _continued, ended_by in figures:
        mine = [e["type"] for e in events if e["subject"] == f"conversations/{cid}"]
        # Each agent_ended that answered 200 stored one change, each refused one none.
        assert mine.count(TYPE + "agent_ended") == ended_by.get("ok", 0) >= 1
        assert mine.count(TYPE + "customer_reconnected") <= 1
        assert len(mine) == 2 + mine.count(TYPE + "agent_ended") + mine.count(
            TYPE + "customer_reconnected"
        )


def test_continue_races_the_timer_as_the_deadline_passes(
    app: App, clock: FakeClock, http: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    ids = [f"c{n:02d}" for n in range(THREADS)]
    links = disconnected(app, clock, ids)
    tap = EventTap(app)
    relay_until_empty(tap)
    # The widget's requests read the link a second before the deadline; two overlapping
    # timer runs (say two instances) see it passed a second after.
    clock.now = DEADLINE - timedelta(seconds=1)
    late = FakeClock(DEADLINE + timedelta(seconds=1))
    assert app.relay is not None
    timer = App(
        app.store,
        app.signer,
        auto_close_after=app.auto_close_after,
        clock=late,
        events=_queues_of(app),
    ).timer
    session = app.reconnect.customer_session(WIDGET, None)
    calls: list[Callable[[], Any]] = [
        partial(app.reconnect.continue_conversation, session, links[cid]) for cid in ids
    ]
    calls += [timer.run, timer.run]
    said = race(calls, tap)
    settle(app, clock, tap)
    events = tap.seen
    duplicates = assert_history(http, app, events, ids)
    won = 0
    for cid, answer in zip(ids, said, strict=False):
        mine = [e["type"] for e in events if e["subject"] == f"conversations/{cid}"]
        state = http.get(f"/conversations/{cid}").json()["state"]
        if answer == "ok":
            won += 1
            assert mine[2:] == [TYPE + "customer_reconnected"], cid
            assert state == "active"
        else:
            # The timer won (or the continue gave up, 503): the continue stored nothing.
            assert answer in ("LinkUnavailable", "WriteContention"), (cid, answer)
            assert mine[2:] == [TYPE + "reconnect_timeout"], cid
            assert state == "wrap_up"
    print(
        f"\ncontinue vs timer, {THREADS} conversations and two timer runs: "
        f"{won} continues won, {THREADS - won} timeouts won; {len(events)} events delivered, "
        f"{duplicates} duplicates; relay failures: {Counter(relay_failures)}; "
        f"queue failures: {queue_trips(caplog)}"
    )


def _queues_of(app: App) -> Any:
    """The queues `app` stages to and publishes on (the timer's app shares them)."""
    from shared.services.outbox import EventQueues

    assert app.relay is not None
    return EventQueues(app.relay.outbox.queue, app.relay.public, app.relay.outbox.source)
