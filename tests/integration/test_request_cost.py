"""What a reconnect costs in Table storage requests, counted in the SDK's own pipeline.

ARCHITECTURE "Storage design": a reconnect costs one read and one conditional write of the
conversation entity, and (integration events, contract §5) one request to stage its event
in the outbox queue. Widget settings come from the instance's cache (docs/contract.md §2.1):
with it warm, no widget request, platform event or Omnichannel request reads them from
storage. Exact costs are written as a Counter of "<kind> <table>" (see `Call.kind`).

How requests are counted: `per_call_policies` given to `TableServiceClient` never see a
table request (checked: not even create_table), because `get_table_client` builds each
TableClient's pipeline from the service's configured policies only. Those do include the
`CustomHookPolicy` fed by azure-core's `raw_request_hook` keyword, so the recorder is a
`raw_request_hook`. That hook runs after the retry policy (once per attempt), so the
client is built with `retry_total=0`: every attempt is a call, none hidden or doubled.
"""

from __future__ import annotations

import contextlib
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import httpx
import pytest
from azure.core.pipeline import PipelineRequest

from local.azurite import Azurite, AzuriteQueue
from shared.services.app import App
from shared.services.widget_cache import DEFAULT_MAX_AGE
from shared.wiring import set_service
from tests.conftest import OMNICHANNEL_ORG_ID, FakeClock, make_service
from tests.integration.events import test_queues

WIDGET = "w"
LIMIT_MINUTES = 10
WRITE_METHODS = {"PUT", "PATCH", "MERGE", "POST", "DELETE"}


@dataclass(frozen=True)
class Call:
    """One storage request as the SDK sent it."""

    method: str
    table: str
    resource: str
    if_match: str | None

    @property
    def is_read(self) -> bool:
        return self.method == "GET"

    @property
    def kind(self) -> str:
        """ "read", "conditional write" or "write"."""
        if self.is_read:
            return "read"
        return "conditional write" if self.is_conditional_write else "write"

    @property
    def is_conditional_write(self) -> bool:
        return (
            self.method in {"PUT", "PATCH", "MERGE"}
            and self.if_match is not None
            and self.if_match.strip() != "*"
        )

    def __str__(self) -> str:
        condition = f" If-Match={self.if_match}" if self.if_match else ""
        return f"{self.method} {self.table}:{self.resource}{condition}"


class RequestLog:
    """A `raw_request_hook`: records method, path and If-Match of every request sent."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: list[tuple[str, str, str | None]] = []

    def __call__(self, request: PipelineRequest) -> None:  # type: ignore[type-arg]
        http = request.http_request
        with self._lock:
            self._calls.append((http.method, urlsplit(http.url).path, http.headers.get("If-Match")))

    def take(self, table_names: list[str], prefix_length: int) -> list[Call]:
        """The calls since the last take, with table names stripped of the test's prefix
        (queue requests: `<queue without prefix>/messages[/<id>]` as the table)."""
        with self._lock:
            raw, self._calls = self._calls, []
        calls = []
        for method, path, if_match in raw:
            if "/messages" in path:
                queue_path = path.split("/", 2)[2]  # after /<account>/
                calls.append(Call(method, queue_path.split("-", 1)[1], "", if_match))
                continue
            segment = unquote(path.rstrip("/").rsplit("/", 1)[-1])
            table, _, resource = segment.partition("(")
            if table in table_names:
                table = table[prefix_length:]
            calls.append(Call(method, table, resource.rstrip(")"), if_match))
        return calls


@dataclass
class Counted:
    service: App
    log: RequestLog
    api: httpx.Client
    queue_log: RequestLog

    def queue_calls(self) -> list[str]:
        """`METHOD queue/resource` of every queue request since the last take, the test's
        queue prefix stripped (`POST outbox/messages`: a staged event)."""
        calls = []
        for call in self.queue_log.take([], 0):
            path = call.table if not call.resource else f"{call.table}({call.resource})"
            calls.append(f"{call.method} {path}")
        return calls

    def take(self) -> list[Call]:
        names = self.service.store.table_names
        prefix_length = len(names[0]) - len("widgets")
        return self.log.take(names, prefix_length)


@pytest.fixture
def counted(
    azurite: Azurite, azurite_queue: AzuriteQueue, clock: FakeClock, host_url: str
) -> Iterator[Counted]:
    """The app's service on fresh tables and queues (integration events on), its every
    storage request recorded (queue requests apart)."""
    with _counted(azurite, azurite_queue, clock, host_url, events=True) as counted:
        yield counted


@pytest.fixture
def uncached(
    azurite: Azurite, azurite_queue: AzuriteQueue, clock: FakeClock, host_url: str
) -> Iterator[Counted]:
    """As `counted`, with WIDGET_SETTINGS_CACHE_SECONDS=0: every request reads settings."""
    with _counted(azurite, azurite_queue, clock, host_url, events=True, cache=timedelta(0)) as c:
        yield c


@contextlib.contextmanager
def _counted(
    azurite: Azurite,
    azurite_queue: AzuriteQueue,
    clock: FakeClock,
    host_url: str,
    events: bool,
    cache: timedelta = DEFAULT_MAX_AGE,
) -> Iterator[Counted]:
    log, queue_log = RequestLog(), RequestLog()
    queues = test_queues(azurite_queue, raw_request_hook=queue_log) if events else None
    service = make_service(
        azurite.connection_string,
        clock,
        events=queues,
        widget_cache_max_age=cache,
        raw_request_hook=log,
        retry_total=0,
    )
    set_service(service)
    try:
        with httpx.Client(base_url=host_url + "/api", timeout=30) as api:
            yield Counted(service, log, api, queue_log)
    finally:
        set_service(None)


def _disconnected(counted: Counted, conversation_id: str = "c1") -> str:
    """Set up a widget and a conversation whose customer left; returns its reconnect ID."""
    api = counted.api
    response = api.put(
        f"/manage/widgets/{WIDGET}",
        json={
            "reconnectEnabled": True,
            "timeLimitMinutes": LIMIT_MINUTES,
            "portalUrl": "https://contoso.example/chat",
            "redirectUrl": "https://contoso.example/new",
        },
    )
    assert response.status_code in (200, 201), response.text
    response = api.put(
        f"/conversations/{conversation_id}", json={"widgetId": WIDGET, "agentId": "agent-1"}
    )
    assert response.status_code == 201, response.text
    response = api.post(
        f"/conversations/{conversation_id}/events", json={"type": "customer_disconnected"}
    )
    assert response.status_code == 200, response.text
    counted.take()  # setup costs are not measured
    counted.queue_calls()
    return parse_qs(urlsplit(response.json()["reconnectUrl"]).query)["oc.reconnectid"][0]


def _warm(counted: Counted) -> None:
    """Fill the instance's settings cache now (the clock may have moved past the window)."""
    counted.service.widgets.require(WIDGET)
    counted.take()


def _cost(calls: list[Call]) -> Counter[str]:
    return Counter(f"{call.kind} {call.table}" for call in calls)


def _summary(calls: list[Call]) -> str:
    by_table = Counter(f"{call.method} {call.table}" for call in calls)
    return f"{dict(by_table)}; calls: {[str(call) for call in calls]}"


def _of(calls: list[Call], table: str) -> list[Call]:
    return [call for call in calls if call.table == table]


def test_the_counter_sees_the_service_requests(counted: Counted) -> None:
    """Guard: the policy really is in the pipeline of the tables the app uses."""
    _disconnected(counted)
    counted.api.get("/conversations/c1")
    calls = counted.take()
    assert [(c.method, c.table, c.resource) for c in _of(calls, "conversations")] == [
        ("GET", "conversations", "PartitionKey='c1',RowKey='c'")
    ], _summary(calls)


def test_resolving_a_link_costs_exactly_one_read_of_the_conversation(counted: Counted) -> None:
    reconnect_id = _disconnected(counted)

    response = counted.api.get(f"/widgets/{WIDGET}/reconnect/{reconnect_id}")

    assert response.status_code == 200, response.text
    assert response.json()["isReconnectAvailable"] is True
    calls = counted.take()
    conversation_calls = _of(calls, "conversations")
    assert [(c.method, c.resource) for c in conversation_calls] == [
        ("GET", "PartitionKey='c1',RowKey='c'")
    ], _summary(calls)
    assert all(call.is_read for call in calls), f"resolving must not write: {_summary(calls)}"
    widget_reads = len(_of(calls, "widgets"))
    assert widget_reads <= 1, f"widget settings reads: {widget_reads}; {_summary(calls)}"


def test_continuing_costs_one_read_and_one_conditional_write_of_the_conversation(
    counted: Counted, clock: FakeClock
) -> None:
    reconnect_id = _disconnected(counted)
    stored = counted.service.store.get_conversation("c1")
    assert stored is not None
    counted.take()
    clock.advance(minutes=2)

    response = counted.api.post(f"/widgets/{WIDGET}/reconnect/{reconnect_id}")

    assert response.status_code == 200, response.text
    calls = counted.take()
    conversation_calls = _of(calls, "conversations")
    reads = [call for call in conversation_calls if call.is_read]
    writes = [call for call in conversation_calls if call.is_conditional_write]
    message = (
        f"conversation reads={len(reads)} conditional writes={len(writes)}; "
        f"widget settings reads={len(_of(calls, 'widgets'))}; {_summary(calls)}"
    )
    assert len(reads) <= 1, message
    assert len(writes) == 1, message
    assert len(conversation_calls) == len(reads) + len(writes), message
    assert writes[0].resource == "PartitionKey='c1',RowKey='c'", message
    # Conditional on exactly the version that was read: a concurrent change makes it fail.
    assert writes[0].if_match == stored.etag, message
    assert len(_of(calls, "widgets")) <= 1, message
    other_writes = [c for c in calls if c.table != "conversations" and c.method in WRITE_METHODS]
    assert not other_writes, f"a reconnect needs no index upkeep here: {message}"
    # Integration events: one request more, the staging of its event (contract §5).
    assert counted.queue_calls() == ["POST outbox/messages"], message


def test_resolving_and_continuing_together_stay_within_two_reads_and_one_write(
    counted: Counted,
) -> None:
    """The widget's whole reconnect: GET the context, then POST the continue."""
    reconnect_id = _disconnected(counted)

    assert counted.api.get(f"/widgets/{WIDGET}/reconnect/{reconnect_id}").status_code == 200
    assert counted.api.post(f"/widgets/{WIDGET}/reconnect/{reconnect_id}").status_code == 200

    calls = counted.take()
    conversation_calls = _of(calls, "conversations")
    reads = sum(call.is_read for call in conversation_calls)
    writes = sum(call.is_conditional_write for call in conversation_calls)
    message = (
        f"conversation reads={reads} conditional writes={writes}; "
        f"widget settings reads={len(_of(calls, 'widgets'))}; {_summary(calls)}"
    )
    assert (reads, writes, len(conversation_calls)) == (2, 1, 3), message


def test_a_repeated_continue_reads_once_and_writes_nothing(counted: Counted) -> None:
    reconnect_id = _disconnected(counted)
    assert counted.api.post(f"/widgets/{WIDGET}/reconnect/{reconnect_id}").status_code == 200
    counted.take()
    assert counted.queue_calls() == ["POST outbox/messages"]  # the first continue's event

    response = counted.api.post(f"/widgets/{WIDGET}/reconnect/{reconnect_id}")

    assert response.status_code == 200, response.text
    calls = counted.take()
    assert [(c.method, c.table) for c in _of(calls, "conversations")] == [
        ("GET", "conversations")
    ], _summary(calls)
    assert all(call.is_read for call in calls), _summary(calls)
    assert counted.queue_calls() == [], "a repeated continue stages no event"


@pytest.mark.parametrize(
    ("description", "link", "conversation_reads"),
    [
        ("expired", None, 1),
        ("malformed", "not-a-link", 0),
    ],
)
def test_an_unavailable_continue_reads_at_most_once_and_writes_nothing(
    counted: Counted, clock: FakeClock, description: str, link: Any, conversation_reads: int
) -> None:
    reconnect_id = _disconnected(counted)
    clock.advance(minutes=LIMIT_MINUTES, seconds=1)

    response = counted.api.post(f"/widgets/{WIDGET}/reconnect/{link or reconnect_id}")

    assert response.status_code == 410, response.text
    calls = counted.take()
    assert len(_of(calls, "conversations")) == conversation_reads, _summary(calls)
    assert all(call.is_read for call in calls), _summary(calls)


def test_the_timer_is_not_involved_in_a_continue(counted: Counted, clock: FakeClock) -> None:
    """The deadline is checked at request time: no due-index or checkpoint reads."""
    reconnect_id = _disconnected(counted)
    clock.advance(minutes=LIMIT_MINUTES, seconds=-1)

    response = counted.api.post(f"/widgets/{WIDGET}/reconnect/{reconnect_id}")

    assert response.status_code == 200, response.text
    calls = counted.take()
    assert not _of(calls, "due"), _summary(calls)
    assert not _of(calls, "enforcer"), _summary(calls)


EVENTS = "/conversations/p1/events"
# (what, request) of the platform's changes, in an order in which each applies.
PLATFORM_CHANGES: list[tuple[str, str, str, dict[str, Any] | None]] = [
    ("register (open)", "PUT", "/conversations/p1", {"widgetId": WIDGET}),
    ("agent_assigned", "POST", EVENTS, {"type": "agent_assigned", "agentId": "a"}),
    ("customer_disconnected", "POST", EVENTS, {"type": "customer_disconnected"}),
    ("customer_reconnected", "POST", EVENTS, {"type": "customer_reconnected"}),
    ("revoke", "POST", "/conversations/p1/reconnect-link/revoke", None),
    ("agent_closed (active)", "POST", EVENTS, {"type": "agent_closed"}),
    ("customer_ended (open)", "POST", EVENTS, {"type": "customer_ended"}),
    ("register (active)", "PUT", "/conversations/p2", {"widgetId": WIDGET, "agentId": "a"}),
    ("agent_ended", "POST", "/conversations/p2/events", {"type": "agent_ended"}),
    ("agent_closed (wrap_up)", "POST", "/conversations/p2/events", {"type": "agent_closed"}),
]  # fmt: skip


def _platform_costs(counted: Counted) -> list[tuple[str, int, list[str]]]:
    """(change, table requests, queue requests) of each platform change."""
    _disconnected(counted)
    costs = []
    for what, method, path, body in PLATFORM_CHANGES:
        counted.take()
        counted.queue_calls()
        answer = counted.api.request(method, path, json=body)
        assert answer.status_code in (200, 201), (what, answer.text)
        costs.append((what, len(counted.take()), counted.queue_calls()))
    return costs


def test_each_platform_change_costs_one_staging_request_more_with_events_on(
    azurite: Azurite, azurite_queue: AzuriteQueue, clock: FakeClock, host_url: str
) -> None:
    """Before/after integration events: the same Table requests, plus one queue request."""
    with _counted(azurite, azurite_queue, clock, host_url, events=False) as counted:
        off = _platform_costs(counted)
    with _counted(azurite, azurite_queue, clock, host_url, events=True) as counted:
        on = _platform_costs(counted)
    print("\nchange: table requests events off -> on, queue requests on")
    for (what, tables_off, queue_off), (_, tables_on, queue_on) in zip(off, on, strict=True):
        print(f"  {what}: {tables_off} -> {tables_on}, {queue_on}")
        assert queue_off == []
        assert queue_on == ["POST outbox/messages"], what
        assert tables_on == tables_off, what


# --- with the widget settings cache warm (issue 15) ---------------------------------------

# What each request costs in storage requests with the cache warm. A step added to a
# request (e.g. staging its integration event) is one more entry here.
CONTEXT_COST = Counter({"read conversations": 1})
CONTINUE_COST = Counter({"read conversations": 1, "conditional write conversations": 1})


def test_with_the_cache_warm_a_reconnect_context_costs_one_storage_request(
    counted: Counted,
) -> None:
    reconnect_id = _disconnected(counted)
    _warm(counted)

    response = counted.api.get(f"/widgets/{WIDGET}/reconnect/{reconnect_id}")

    assert response.status_code == 200, response.text
    calls = counted.take()
    assert _cost(calls) == CONTEXT_COST, _summary(calls)


def test_with_the_cache_warm_a_continue_costs_the_read_and_the_conditional_write(
    counted: Counted, clock: FakeClock
) -> None:
    reconnect_id = _disconnected(counted)
    clock.advance(minutes=2)
    _warm(counted)

    response = counted.api.post(f"/widgets/{WIDGET}/reconnect/{reconnect_id}")

    assert response.status_code == 200, response.text
    calls = counted.take()
    assert _cost(calls) == CONTINUE_COST, _summary(calls)
    # ... and, integration events on, the one request that stages its event (contract §5).
    assert counted.queue_calls() == ["POST outbox/messages"]


def test_with_the_cache_cold_a_continue_reads_the_settings_once(
    counted: Counted, clock: FakeClock
) -> None:
    reconnect_id = _disconnected(counted)
    clock.advance(seconds=DEFAULT_MAX_AGE.total_seconds())  # the entry is now too old

    response = counted.api.post(f"/widgets/{WIDGET}/reconnect/{reconnect_id}")

    assert response.status_code == 200, response.text
    calls = counted.take()
    assert _cost(calls) == CONTINUE_COST + Counter({"read widgets": 1}), _summary(calls)


@pytest.mark.parametrize(
    "events",
    [
        [{"type": "customer_reconnected"}],
        [{"type": "agent_closed"}],
        [{"type": "agent_ended"}, {"type": "agent_closed"}],
        [{"type": "customer_ended"}],
    ],
    ids=lambda events: "+".join(event["type"] for event in events),
)
def test_with_the_cache_warm_a_platform_event_reads_no_settings(
    counted: Counted, events: list[dict[str, str]]
) -> None:
    _disconnected(counted)
    for event in events:
        _warm(counted)
        response = counted.api.post("/conversations/c1/events", json=event)
        assert response.status_code == 200, response.text
        calls = counted.take()
        assert not _of(calls, "widgets"), _summary(calls)


def test_with_the_cache_warm_register_and_read_a_conversation_read_no_settings(
    counted: Counted,
) -> None:
    _disconnected(counted)
    _warm(counted)

    registered = counted.api.put("/conversations/c2", json={"widgetId": WIDGET})
    read = counted.api.get("/conversations/c2")
    disconnected = counted.api.post(
        "/conversations/c1/events", json={"type": "customer_disconnected"}
    )

    assert (registered.status_code, read.status_code, disconnected.status_code) == (201, 200, 200)
    calls = counted.take()
    assert not _of(calls, "widgets"), _summary(calls)


OMNICHANNEL_CONFIG = f"/livechatconnector/config/{OMNICHANNEL_ORG_ID}/{WIDGET}"
PORTAL_ORIGIN = "https://contoso.example"


@pytest.mark.parametrize("method", ["GET", "OPTIONS"])
def test_an_omnichannel_request_from_the_portal_reads_the_settings_once(
    uncached: Counted, method: str
) -> None:
    """Even with the cache off, the widget and its portal origin (CORS) come from one read."""
    _disconnected(uncached)

    response = uncached.api.request(method, OMNICHANNEL_CONFIG, headers={"Origin": PORTAL_ORIGIN})

    assert response.status_code in (200, 204), response.text
    assert response.headers["Access-Control-Allow-Origin"] == PORTAL_ORIGIN
    calls = uncached.take()
    assert _cost(calls) == Counter({"read widgets": 1}), _summary(calls)


def test_with_the_cache_warm_an_omnichannel_request_reads_no_storage(counted: Counted) -> None:
    _disconnected(counted)
    _warm(counted)

    response = counted.api.get(OMNICHANNEL_CONFIG, headers={"Origin": PORTAL_ORIGIN})

    assert response.status_code == 200, response.text
    calls = counted.take()
    assert not calls, _summary(calls)


def test_with_the_cache_off_every_request_reads_the_settings(
    uncached: Counted,
) -> None:
    reconnect_id = _disconnected(uncached)

    context = uncached.api.get(f"/widgets/{WIDGET}/reconnect/{reconnect_id}")
    continued = uncached.api.post(f"/widgets/{WIDGET}/reconnect/{reconnect_id}")

    assert (context.status_code, continued.status_code) == (200, 200)
    calls = uncached.take()
    expected = CONTEXT_COST + CONTINUE_COST + Counter({"read widgets": 2})
    assert _cost(calls) == expected, _summary(calls)
