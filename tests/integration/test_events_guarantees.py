"""Issue 14 guarantees, tested independently of the code's author: queue outages, crashes between
the steps, relay crashes and 50-way races (contract §5).

- The queue service is down during a burst of changes: every request answers exactly as it
  does with the queue up, and once the queue is back (one timer period, one relay pass)
  every stored change's event arrives, none for a change not stored, sequences without gaps.
- The process dies in each window of a change (killed in a child process): after the write
  the event still arrives (one relay pass, or one timer period when it was staged as an
  outbox note); before the write nothing is ever sent (the relay waits, then drops it once
  no write can still be under way); a relay that dies after sending re-sends the same event.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import azure.functions as func
import httpx
import pytest
from azure.data.tables import TableServiceClient

from local.azurite import Azurite, AzuriteQueue, queue_connection_string
from local.processes import free_port
from shared.api.events import relay_events
from shared.domain import conversation as domain
from shared.domain.conversation import Event, EventType
from shared.domain.errors import ChatReconnectError
from shared.domain.events import MAX_WRITE_SECONDS, Via
from shared.domain.links import LinkSigner
from shared.domain.settings import WidgetSettings
from shared.services.app import App
from shared.services.conversations import ConversationResult
from shared.services.outbox import EventQueues
from shared.services.reconnect import ContinueResult
from shared.storage.queues import BREAKER_SECONDS, Receipt
from shared.storage.store import TableStore
from shared.wire.conversations import conversation_view
from shared.wiring import STORAGE_CLIENT_OPTIONS, set_service
from tests.conftest import SIGNING_KEY, START, FakeClock
from tests.integration.events import (
    EventTap,
    assert_history,
    breaker_queues_at,
    relay_until_empty,
    waiting_messages,
)
from tests.integration.timer import PORTAL, REDIRECT

WIDGET = "w-faults"
OFF = "w-faults-off"  # reconnection disabled: a disconnect wraps up at once
AGENT = "agent-1"
OTHER_AGENT = "agent-2"
# The timer's period (RECONNECT_ENFORCE_SCHEDULE's default, every 30 s): the latest an
# outbox note's event may arrive after the queue is back. Longer than the queue breaker.
TIMER_PERIOD = timedelta(seconds=30)
assert TIMER_PERIOD.total_seconds() > BREAKER_SECONDS
# What a killed child process exits with.
DIED = 86


def breaker_clock(clock: FakeClock) -> Callable[[], float]:
    """The queues' breaker on the test's clock: seconds since START."""
    return lambda: (clock.now - START).total_seconds()


def service_on(
    azurite: Azurite, prefix: str, clock: Callable[[], datetime], queues: EventQueues
) -> App:
    """The app on tables with a known prefix (a child process opens the same ones)."""
    client = TableServiceClient.from_connection_string(
        azurite.connection_string, **STORAGE_CLIENT_OPTIONS
    )
    store = TableStore(client, table_prefix=prefix)
    store.ensure_tables()
    return App(store, LinkSigner(SIGNING_KEY), clock=clock, events=queues)


@pytest.fixture
def http(host_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=host_url + "/api", timeout=30) as client:
        yield client


def setup_widgets(app: App) -> None:
    app.settings.put_widget(WidgetSettings(WIDGET, True, 10, PORTAL, REDIRECT))
    app.settings.put_widget(WidgetSettings(OFF, False, 10, PORTAL, REDIRECT))


def link_of(result: ConversationResult) -> str:
    assert result.reconnect_url is not None
    return result.reconnect_url.split("oc.reconnectid=")[1].split("&")[0]


# --- 1. the queue down during a burst ---------------------------------------------------------


PRE_OUTAGE = ["p1", "p2", "p3", "p4"]
BURST = ["c1", "c2", "c3", "h1"]


def shown(value: Any) -> Any:
    """A use case's answer as the caller sees it (the view, not the bookkeeping)."""
    if isinstance(value, ConversationResult):
        view = conversation_view(value.conversation, value.reconnect_url)
        return view.model_dump(mode="json", by_alias=True)
    if isinstance(value, ContinueResult):
        view = conversation_view(value.conversation, None)
        return (view.model_dump(mode="json", by_alias=True), value.same_agent)
    if isinstance(value, tuple):
        return tuple(shown(item) for item in value)
    return value


def answer(call: Callable[[], Any]) -> Any:
    try:
        return shown(call())
    except ChatReconnectError as error:
        return (type(error).__name__, str(error))


def http_answer(response: httpx.Response) -> Any:
    return (response.status_code, response.json() if response.content else None)


def before_the_outage(app: App, clock: FakeClock) -> dict[str, str]:
    """Four active conversations whose customers dropped; their links."""
    clock.now = START
    setup_widgets(app)
    for cid in PRE_OUTAGE:
        app.conversations.register(cid, WIDGET, AGENT, None)
    clock.now = START + timedelta(seconds=30)
    links = {}
    for cid in PRE_OUTAGE:
        disconnect = Event(EventType.CUSTOMER_DISCONNECTED)
        links[cid] = link_of(app.conversations.apply_event(cid, disconnect, None))
    return links


def burst(app: App, http: httpx.Client, clock: FakeClock, links: dict[str, str]) -> list[Any]:
    """Every kind of change and non-change, through the use cases and over HTTP; the answers."""
    conversations, reconnect = app.conversations, app.reconnect
    session = reconnect.customer_session(WIDGET, None)
    said: list[Any] = []
    clock.now = START + timedelta(minutes=1)
    said.append(answer(lambda: conversations.register("c1", WIDGET, AGENT, None)))
    said.append(answer(lambda: conversations.register("c2", WIDGET, None, None)))
    said.append(answer(lambda: conversations.register("c3", OFF, AGENT, None)))
    said.append(answer(lambda: conversations.register("c1", WIDGET, AGENT, None)))  # repeated
    said.append(http_answer(http.put("/conversations/h1", json={"widgetId": WIDGET})))
    clock.advance(seconds=5)

    def event(cid: str, kind: EventType, agent: str | None = None, eid: str | None = None) -> None:
        said.append(answer(lambda: conversations.apply_event(cid, Event(kind, agent), eid)))

    event("c1", EventType.CUSTOMER_DISCONNECTED)
    event("c1", EventType.CUSTOMER_DISCONNECTED)  # no-op
    event("c2", EventType.AGENT_ASSIGNED, OTHER_AGENT)
    event("c3", EventType.CUSTOMER_DISCONNECTED)  # reconnection off: wrap-up
    event("c3", EventType.AGENT_ASSIGNED, AGENT)  # refused
    event("c3", EventType.AGENT_CLOSED, eid="e-1")
    event("c3", EventType.AGENT_CLOSED, eid="e-1")  # retried eventId
    clock.advance(seconds=5)
    event("c1", EventType.CUSTOMER_RECONNECTED)
    said.append(answer(lambda: conversations.revoke_link("c2")))
    for body in ({"type": "agent_assigned", "agentId": AGENT}, {"type": "customer_disconnected"}):
        said.append(http_answer(http.post("/conversations/h1/events", json=body)))
    said.append(http_answer(http.post("/conversations/h1/events", json={"type": "bogus"})))
    clock.advance(seconds=5)
    # The widget: continues (one repeated, one over HTTP) and declines (one of a dead link).
    said.append(answer(lambda: reconnect.continue_conversation(session, links["p1"])))
    said.append(answer(lambda: reconnect.continue_conversation(session, links["p1"])))
    said.append(answer(lambda: reconnect.decline(session, links["p2"])))
    said.append(answer(lambda: reconnect.decline(session, "no-such-link")))
    h1_link = http.get("/conversations/h1").json()["reconnectUrl"].split("oc.reconnectid=")[1]
    said.append(http_answer(http.post(f"/widgets/{WIDGET}/reconnect/{h1_link}")))
    said.append(http_answer(http.post(f"/widgets/{WIDGET}/reconnect/{h1_link}/decline")))
    # A write that loses its race stores nothing: its event must never arrive.
    found = app.store.get_conversation("c2")
    assert found is not None
    event("c2", EventType.CUSTOMER_DISCONNECTED)
    widget = app.settings.get_widget(WIDGET).value
    late = domain.apply_event(found.value, Event(EventType.AGENT_ENDED), widget, clock())
    said.append(app.writer.write(found, late, Via.PLATFORM))
    # The timer: p3 and p4 expire (p1 came back, p2 declined).
    clock.now = START + timedelta(minutes=10, seconds=45)
    report = app.timer.run()
    said.append((report.expired, report.closed, report.stale, report.errors))
    said.append(http_answer(http.post("/conversations/c2/events", json={"type": "agent_ended"})))
    said.append(http_answer(http.get("/agents/agent-1/capacity")))
    return said


def history(events: list[dict[str, Any]]) -> dict[str, list[tuple[str, str, Any]]]:
    """Per conversation, what its events say in order (ids aside: they are random)."""
    out: dict[str, list[tuple[str, str, Any]]] = {}
    for event in sorted(events, key=lambda e: (e["subject"], e["sequence"])):
        out.setdefault(event["subject"], []).append(
            (event["sequence"], event["type"], event["data"])
        )
    return out


def sequences(app: App) -> dict[str, int]:
    found = {cid: app.store.get_conversation(cid) for cid in PRE_OUTAGE + BURST}
    return {cid: f.value.sequence for cid, f in found.items() if f is not None}


def test_a_burst_while_the_queue_is_down_loses_no_event_and_invents_none(
    azurite: Azurite, azurite_queue: AzuriteQueue, http: httpx.Client, tmp_path: Path
) -> None:
    # With the queue up: the answers and the events to expect.
    clock_up = FakeClock()
    up = service_on(
        azurite,
        "t" + uuid.uuid4().hex[:12],
        clock_up,
        breaker_queues_at(azurite_queue.connection_string, breaker_clock(clock_up)),
    )
    set_service(up)
    try:
        links = before_the_outage(up, clock_up)
        answers_up = burst(up, http, clock_up, links)
        clock_up.advance(seconds=TIMER_PERIOD.total_seconds())
        up.timer.run()
        events_up = relay_until_empty(EventTap(up))
        assert assert_history(http, up, events_up, PRE_OUTAGE + BURST) == 0
    finally:
        set_service(None)

    # The same with a queue service of the test's own, stopped during the burst (its data
    # kept on disk, as a storage account keeps its queues through an outage).
    folder = tmp_path / "queues"
    queue = AzuriteQueue(location=folder).start()
    clock = FakeClock()
    app = service_on(
        azurite,
        "t" + uuid.uuid4().hex[:12],
        clock,
        breaker_queues_at(queue.connection_string, breaker_clock(clock)),
    )
    set_service(app)
    try:
        links = before_the_outage(app, clock)
        before = sequences(app)  # staged on the queue, not relayed yet
        queue.stop()
        answers_down = burst(app, http, clock, links)
        during = sequences(app)
        stored_in_outage = sum(during.values()) - sum(before.values())
        assert answers_down == answers_up
        assert waiting_messages_or_none(app) is None  # the queue really is down
        queue = AzuriteQueue(port=queue.port, location=folder).start()
        # Back: within one timer period (the breaker closes before it) and one relay pass.
        clock.advance(seconds=TIMER_PERIOD.total_seconds())
        report = app.timer.run()
        tap = EventTap(app)
        delivered = tap.published()
        delivered += relay_until_empty(tap)
        duplicates = assert_history(http, app, delivered, PRE_OUTAGE + BURST)
        assert history(delivered) == history(events_up)
        assert sequences(app) == during  # the run after the outage changed nothing more
        assert app.store.outbox_notes(10) == []
        print(
            f"\nqueue outage: {stored_in_outage} changes stored during the outage, "
            f"{sum(before.values())} staged before it; after it {len(delivered)} events "
            f"delivered ({report.events_sent} from outbox notes by one timer run, "
            f"{len(delivered) - report.events_sent} by the relay), {duplicates} duplicates"
        )
        assert stored_in_outage > 0
        assert report.events_sent == stored_in_outage
    finally:
        set_service(None)
        queue.stop()


def waiting_messages_or_none(app: App) -> int | None:
    assert app.relay is not None
    try:
        return waiting_messages(app.relay.outbox.queue)
    except Exception:
        return None


# --- 2. the process dies in a window of a change ----------------------------------------------

CHILD = """
import json, os, sys
from datetime import datetime
from azure.data.tables import TableServiceClient
from shared.domain.conversation import Event, EventType
from shared.domain.links import LinkSigner
from shared.services.app import App
from shared.storage.store import TableStore
from shared.wiring import STORAGE_CLIENT_OPTIONS
from tests.integration.events import breaker_queues_at

job = json.loads(sys.argv[1])
now = datetime.fromisoformat(job["now"])
tables = TableServiceClient.from_connection_string(job["tables"], **STORAGE_CLIENT_OPTIONS)
store = TableStore(tables, table_prefix=job["prefix"])
queues = breaker_queues_at(job["queues"], lambda: 0.0, job["queue_name"])
app = App(store, LinkSigner(b"k" * 40), clock=lambda: now, events=queues)
write = store.replace_conversation

def dying(*args, **kwargs):
    if job["die"] == "before the write":
        os._exit(job["exit"])
    write(*args, **kwargs)
    os._exit(job["exit"])

store.replace_conversation = dying
app.conversations.apply_event(job["conversation"], Event(EventType(job["event"])), None)
os._exit(1)
"""


@dataclasses.dataclass
class Crash:
    """A test's app, and a child process that makes one change on its tables and dies."""

    azurite: Azurite
    app: App
    prefix: str
    queue_name: str
    queues_connection: str
    clock: FakeClock

    def die(self, conversation_id: str, event: EventType, when: str, queue_down: bool) -> None:
        """The child applies `event` and is killed `when` (before or after the write); its
        queues are on a closed port when `queue_down` (it stages an outbox note)."""
        job = {
            "tables": self.azurite.connection_string,
            "prefix": self.prefix,
            "queues": queue_connection_string(free_port())
            if queue_down
            else self.queues_connection,
            "queue_name": self.queue_name,
            "now": self.clock.now.isoformat(),
            "conversation": conversation_id,
            "event": event.value,
            "die": when,
            "exit": DIED,
        }
        root = Path(__file__).resolve().parents[2]
        done = subprocess.run(
            [sys.executable, "-c", CHILD, json.dumps(job)],
            cwd=root,
            env={**os.environ, "PYTHONPATH": str(root)},
            capture_output=True,
            timeout=120,
        )
        assert done.returncode == DIED, done.stderr.decode()


@pytest.fixture
def crash(azurite: Azurite, azurite_queue: AzuriteQueue, clock: FakeClock) -> Iterator[Crash]:
    prefix, name = "t" + uuid.uuid4().hex[:12], "t" + uuid.uuid4().hex[:12]
    queues = breaker_queues_at(azurite_queue.connection_string, breaker_clock(clock), name)
    app = service_on(azurite, prefix, clock, queues)
    setup_widgets(app)
    set_service(app)
    try:
        yield Crash(azurite, app, prefix, name, azurite_queue.connection_string, clock)
    finally:
        set_service(None)


def registered(crash: Crash, tap: EventTap, cid: str = "c1") -> int:
    """A registered active conversation whose registration event is out; its sequence."""
    crash.app.conversations.register(cid, WIDGET, AGENT, None)
    assert [e["type"] for e in relay_until_empty(tap)] == ["chatreconnect.conversation.registered"]
    crash.clock.advance(seconds=30)
    found = crash.app.store.get_conversation(cid)
    assert found is not None
    return found.value.sequence


@pytest.mark.parametrize("queue_down", [False, True], ids=["outbox queue", "outbox note"])
def test_a_process_killed_right_after_the_write_loses_no_event(
    crash: Crash, http: httpx.Client, queue_down: bool
) -> None:
    tap = EventTap(crash.app)
    registered(crash, tap)
    crash.die("c1", EventType.CUSTOMER_DISCONNECTED, "after the write", queue_down)
    stored = crash.app.store.get_conversation("c1")
    assert stored is not None
    assert stored.value.sequence == 2  # the change is stored
    if queue_down:
        assert tap.drain() == []  # nothing staged on the queue: it is a note
        crash.clock.advance(seconds=TIMER_PERIOD.total_seconds())
        assert crash.app.timer.run().events_sent == 1
        arrived = tap.published()
    else:
        arrived = relay_until_empty(tap)
    assert [e["type"] for e in arrived] == ["chatreconnect.conversation.customer_disconnected"]
    assert assert_history(http, crash.app, tap.seen, ["c1"]) == 0
    assert crash.app.store.outbox_notes(10) == []


@pytest.mark.parametrize("queue_down", [False, True], ids=["outbox queue", "outbox note"])
def test_a_process_killed_before_the_write_never_sends_its_event(
    crash: Crash, http: httpx.Client, queue_down: bool
) -> None:
    tap = EventTap(crash.app)
    registered(crash, tap)
    crash.die("c1", EventType.CUSTOMER_DISCONNECTED, "before the write", queue_down)
    stored = crash.app.store.get_conversation("c1")
    assert stored is not None
    assert stored.value.sequence == 1  # nothing stored
    assert crash.app.relay is not None
    outbox = crash.app.relay.outbox.queue
    if queue_down:
        assert len(crash.app.store.outbox_notes(10)) == 1
        crash.clock.advance(seconds=TIMER_PERIOD.total_seconds())
        report = crash.app.timer.run()
        assert (report.events_sent, report.events_waiting) == (0, 1)  # a write may be under way
        crash.clock.advance(seconds=MAX_WRITE_SECONDS)
        report = crash.app.timer.run()
        assert (report.events_sent, report.events_dropped) == (0, 1)
        assert crash.app.store.outbox_notes(10) == []
    else:
        assert tap.relay_staged() == 1
        assert waiting_messages(outbox) == 1  # staged again: the write may still come
        crash.clock.advance(seconds=MAX_WRITE_SECONDS)
        relay_until_empty(tap)
    assert tap.published() == []
    assert waiting_messages(outbox) == 0
    assert assert_history(http, crash.app, tap.seen, ["c1"]) == 0


def test_a_relay_that_sees_the_staged_event_before_its_write_waits_for_it(
    crash: Crash, http: httpx.Client
) -> None:
    tap = EventTap(crash.app)
    registered(crash, tap)
    store = crash.app.store
    write = store.replace_conversation
    relayed_meanwhile: list[int] = []

    def slow_write(*args: Any, **kwargs: Any) -> str:
        # The relay takes the staged message while the request is still writing.
        relayed_meanwhile.append(tap.relay_staged())
        return write(*args, **kwargs)

    store.replace_conversation = slow_write  # type: ignore[method-assign]
    try:
        crash.app.conversations.apply_event("c1", Event(EventType.AGENT_ENDED), None)
    finally:
        del store.replace_conversation
    assert relayed_meanwhile == [1]
    assert tap.published() == []
    arrived = relay_until_empty(tap)
    assert [e["type"] for e in arrived] == ["chatreconnect.conversation.agent_ended"]
    assert assert_history(http, crash.app, tap.seen, ["c1"]) == 0


def test_a_relay_killed_after_sending_sends_again_with_the_same_id(
    crash: Crash, http: httpx.Client
) -> None:
    tap = EventTap(crash.app)
    registered(crash, tap)
    crash.app.conversations.apply_event("c1", Event(EventType.CUSTOMER_ENDED), None)
    assert crash.app.relay is not None
    outbox = crash.app.relay.outbox.queue
    # The relay sends, and dies before the trigger deletes its message: the message comes
    # back when its visibility timeout ends, and the next relay sends it again.
    ((text, receipt),) = outbox.receive(32, visibility_timeout=1)
    relay_events(
        func.QueueMessage(
            id=receipt.message_id, body=base64_decoded(text), pop_receipt=receipt.pop_receipt
        )
    )
    first = tap.published()
    again = relay_until_empty(tap)
    assert [e["type"] for e in first] == ["chatreconnect.conversation.customer_ended"]
    assert again == first  # the same event, the same id: the documented at-least-once
    assert assert_history(http, crash.app, tap.seen, ["c1"]) == 1


def base64_decoded(text: str) -> bytes:
    import base64

    return base64.b64decode(text)


def test_withdrawing_a_message_the_relay_has_taken_is_no_outage(
    crash: Crash, http: httpx.Client
) -> None:
    """A write loses its race while the relay holds its staged message: the withdraw's
    delete meets a pop receipt that no longer matches (the queue answered, 400
    PopReceiptMismatch). That is the race, not an outage: the next change must still be
    staged on the queue, not fall back to an outbox note (whose event would wait up to a
    timer period instead of about a second)."""
    tap = EventTap(crash.app)
    registered(crash, tap)
    app = crash.app
    found = app.store.get_conversation("c1")
    assert found is not None
    app.conversations.apply_event("c1", Event(EventType.CUSTOMER_DISCONNECTED), None)
    widget = app.settings.get_widget(WIDGET).value
    late = domain.apply_event(found.value, Event(EventType.AGENT_ENDED), widget, crash.clock())
    assert app.relay is not None
    outbox = app.relay.outbox.queue
    write = app.store.replace_conversation
    held: list[tuple[str, Receipt]] = []

    def relay_first(*args: Any, **kwargs: Any) -> str:
        # The Functions host takes the staged messages (the winner's and the loser's) for
        # the relay meanwhile: they are hidden, their pop receipts are new.
        while batch := outbox.receive(32):
            held.extend(batch)
        return write(*args, **kwargs)

    app.store.replace_conversation = relay_first  # type: ignore[method-assign]
    try:
        assert app.writer.write(found, late, Via.PLATFORM) is False
    finally:
        del app.store.replace_conversation
    assert len(held) == 2
    for text, receipt in held:  # the relay runs, and the host deletes what it took
        relay_events(
            func.QueueMessage(
                id=receipt.message_id, body=base64_decoded(text), pop_receipt=receipt.pop_receipt
            )
        )
        # (with a client of its own: the host does not share the app's breaker)
        outbox._queue().delete_message(receipt.message_id, receipt.pop_receipt)
    app.conversations.apply_event("c1", Event(EventType.AGENT_ENDED), None)
    assert app.store.outbox_notes(10) == [], "the outbox queue was taken for down"
    arrived = relay_until_empty(tap)
    assert [e["type"] for e in tap.seen][1:] == [
        "chatreconnect.conversation.customer_disconnected",
        "chatreconnect.conversation.agent_ended",
    ], arrived
    assert assert_history(http, app, tap.seen, ["c1"]) == 0


def test_receive_takes_up_to_its_limit_at_once(crash: Crash) -> None:
    """StorageQueue.receive(limit) answers up to `limit` visible messages, as it says."""
    assert crash.app.relay is not None
    queue = crash.app.relay.public
    for n in range(3):
        queue.send(str(n))
    assert sorted(text for text, _ in queue.receive(32)) == ["0", "1", "2"]
