"""Storage faults under load (issue 8, item 2): Azurite stops in the middle of a burst of
mixed requests and starts again.

The test runs an Azurite of its own, persisting to a folder so that the data survives the
restart, and serves a fresh FunctionApp (the blueprints of function_app.py) over HTTP in
this process, with a service on that Azurite and a FakeClock. Worker threads fire a fixed,
seeded plan of mixed requests (registrations, lifecycle events, continues, declines,
settings PUT/PATCH, reads); the main thread stops Azurite once the burst is under way,
keeps it down while the workers go on, starts it again on the same port and folder, and
lets the burst finish. Every answer is recorded with the phase it was sent and answered in.

Asserted: no 500 ever; an answer sent and received while storage was down is a 503
problem with Retry-After; once storage is back everything succeeds; and after one timer
run the indexes agree with the conversations, row for row (the raw index rows are
compared, not what the verifying readers would show).

Azurite is stopped with SIGINT, the signal it shuts down cleanly on (SIGTERM loses what
it wrote since its last autosave): storage that loses acknowledged writes is not what
this test is about.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from azure.data.tables import TableServiceClient

from local.app import build_app
from local.azurite import Azurite
from local.server import serve_in_thread
from shared.domain import conversation as domain
from shared.services.app import App
from shared.services.widget_cache import DEFAULT_MAX_AGE
from shared.services.writes import CAPACITY_CHECK_DELAY
from shared.storage.entities import due_bucket
from shared.storage.tables import TABLE_NAMES
from shared.wiring import set_service
from tests.conftest import FakeClock, fresh_function_app, make_service

WIDGET = "demo"
PORTAL = "https://contoso.example/chat"
AGENTS = tuple(f"agent-{n}" for n in range(4))
SEEDED = 96  # conversations registered before the burst, all active with an agent
WORKERS = 8
PLAN_LENGTH = 1200  # more than the phases below need; the burst never runs past it
# Requests *sent* in each phase before the main thread moves on.
BEFORE_OUTAGE, DURING_OUTAGE, AFTER_OUTAGE = 80, 80, 80
PHASE_TIMEOUT = 120.0  # seconds; a phase that takes longer fails the test
PROBLEM = "application/problem+json"

UP, STOPPING, DOWN, STARTING, BACK = "up", "stopping", "down", "starting", "back"


# --- the app and its storage ---------------------------------------------------------------


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    environ = {"RECONNECT_ENFORCE_SCHEDULE": "0 0 0 1 1 *"}  # the test runs the timer itself
    with serve_in_thread(build_app(fresh_function_app(), environ)) as url:
        yield url + "/api"


@pytest.fixture
def persistent_azurite(tmp_path: Path) -> Iterator[Azurite]:
    server = Azurite(location=tmp_path / "azurite").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def in_memory_azurite() -> Iterator[Azurite]:
    server = Azurite().start()
    try:
        yield server
    finally:
        server.stop()


def stop_cleanly(server: Azurite, timeout: float = 30.0) -> None:
    """Stop Azurite by its PID with SIGINT, on which it saves its data before exiting."""
    assert server.process is not None
    assert server.process.poll() is None
    os.killpg(server.process.pid, signal.SIGINT)
    server.process.wait(timeout)


def install(server: Azurite, clock: FakeClock) -> App:
    service = make_service(server.connection_string, clock)
    set_service(service)
    return service


# --- the burst -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One planned request and the answers the contract allows for it (503 aside)."""

    kind: str
    method: str
    path: str
    allowed: frozenset[int]
    body: Any = None
    content_type: str = "application/json"


@dataclass(frozen=True)
class Outcome:
    call: Call
    sent: str
    answered: str
    status: int
    headers: dict[str, str]
    body: Any
    seconds: float


@dataclass
class Seed:
    conversations: list[str]
    links: dict[str, str]


def link_id(reconnect_url: str) -> str:
    return parse_qs(urlsplit(reconnect_url).query)["oc.reconnectid"][0]


def settings_body(rng: random.Random) -> dict[str, Any]:
    return {"reconnectEnabled": True, "timeLimitMinutes": rng.randint(5, 30), "portalUrl": PORTAL}


def plan(seed: Seed, rng: random.Random) -> list[Call]:
    """A fixed mix of requests, weighted towards the ones that move agent capacity."""
    event_answers = frozenset({200, 409})
    calls: list[Call] = []
    for n in range(PLAN_LENGTH):
        conversation = rng.choice(seed.conversations)
        kind = rng.choices(
            [
                "register",
                "disconnect",
                "continue",
                "agent_ended",
                "agent_closed",
                "decline",
                "put_settings",
                "patch_settings",
                "get",
                "capacity",
            ],
            weights=[4, 4, 4, 2, 2, 1, 1, 1, 2, 1],
        )[0]
        if kind == "register":
            body = {"widgetId": WIDGET, "agentId": rng.choice(AGENTS)}
            calls.append(Call(kind, "PUT", f"conversations/b{n}", frozenset({200, 201}), body))
        elif kind in ("disconnect", "agent_ended", "agent_closed"):
            event = "customer_disconnected" if kind == "disconnect" else kind
            body = {"type": event, "eventId": f"e{n}"}
            path = f"conversations/{conversation}/events"
            calls.append(Call(kind, "POST", path, event_answers, body))
        elif kind in ("continue", "decline"):
            path = f"widgets/{WIDGET}/reconnect/{seed.links[conversation]}"
            if kind == "continue":
                calls.append(Call(kind, "POST", path, frozenset({200, 410})))
            else:
                calls.append(Call(kind, "POST", path + "/decline", frozenset({204})))
        elif kind == "put_settings":
            path = f"manage/widgets/{WIDGET}"
            calls.append(Call(kind, "PUT", path, frozenset({200}), settings_body(rng)))
        elif kind == "patch_settings":
            path = f"manage/widgets/{WIDGET}"
            body = {"timeLimitMinutes": rng.randint(5, 30)}
            calls.append(
                Call(kind, "PATCH", path, frozenset({200}), body, "application/merge-patch+json")
            )
        elif kind == "get":
            calls.append(Call(kind, "GET", f"conversations/{conversation}", frozenset({200})))
        else:
            agent = rng.choice(AGENTS)
            calls.append(Call(kind, "GET", f"agents/{agent}/capacity", frozenset({200})))
    return calls


@dataclass
class Burst:
    """Workers firing a plan of calls; the main thread moves the phase along."""

    base_url: str
    calls: list[Call]
    phase: str = UP
    outcomes: list[Outcome] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)
    _next: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _finished: threading.Event = field(default_factory=threading.Event)

    def _take(self) -> Call | None:
        with self._lock:
            if self._finished.is_set() or self._next >= len(self.calls):
                return None
            call = self.calls[self._next]
            self._next += 1
            return call

    def _work(self) -> None:
        try:
            with httpx.Client(base_url=self.base_url, timeout=60) as client:
                while (call := self._take()) is not None:
                    sent = self.phase
                    started = time.monotonic()
                    response = client.request(
                        call.method,
                        call.path,
                        json=call.body,
                        headers={"content-type": call.content_type} if call.body else {},
                    )
                    seconds = time.monotonic() - started
                    body = response.json() if response.content else None
                    outcome = Outcome(
                        call,
                        sent,
                        self.phase,
                        response.status_code,
                        {k.lower(): v for k, v in response.headers.items()},
                        body,
                        seconds,
                    )
                    with self._lock:
                        self.outcomes.append(outcome)
        except BaseException as error:  # surfaced by the main thread
            self.errors.append(error)

    def sent_in(self, phase: str) -> int:
        with self._lock:
            return sum(1 for outcome in self.outcomes if outcome.sent == phase)

    def wait_for(self, condition: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + PHASE_TIMEOUT
        while not condition():
            assert not self.errors, self.errors
            assert self._next < len(self.calls), f"the plan ran out before {what}"
            assert time.monotonic() < deadline, f"no {what} within {PHASE_TIMEOUT} s"
            time.sleep(0.02)

    def run(self, outage: Callable[[Burst], None]) -> None:
        threads = [threading.Thread(target=self._work, daemon=True) for _ in range(WORKERS)]
        for thread in threads:
            thread.start()
        try:
            outage(self)
        finally:
            self._finished.set()
            for thread in threads:
                thread.join(PHASE_TIMEOUT)
        assert not any(thread.is_alive() for thread in threads), "a worker hangs"
        assert not self.errors, self.errors


def seed_data(api: httpx.Client) -> Seed:
    response = api.put(
        f"manage/widgets/{WIDGET}",
        json={"reconnectEnabled": True, "timeLimitMinutes": 10, "portalUrl": PORTAL},
    )
    assert response.status_code == 201, response.text
    conversations = [f"s{n}" for n in range(SEEDED)]
    links = {}
    for n, conversation in enumerate(conversations):
        response = api.put(
            f"conversations/{conversation}",
            json={"widgetId": WIDGET, "agentId": AGENTS[n % len(AGENTS)]},
        )
        assert response.status_code == 201, response.text
        links[conversation] = link_id(response.json()["reconnectUrl"])
    # A third disconnected already, so that continues have something to continue.
    for conversation in conversations[::3]:
        response = api.post(
            f"conversations/{conversation}/events", json={"type": "customer_disconnected"}
        )
        assert response.status_code == 200, response.text
    return Seed(conversations, links)


# --- what must hold afterwards ------------------------------------------------------------


def assert_unavailable(outcome: Outcome) -> None:
    detail = f"{outcome.call.method} {outcome.call.path}: {outcome.status} {outcome.body}"
    assert outcome.status == 503, detail
    assert int(outcome.headers.get("retry-after", "0")) > 0, detail
    assert outcome.headers.get("content-type", "").split(";")[0] == PROBLEM, detail
    assert isinstance(outcome.body, dict), detail
    assert outcome.body.get("status") == 503, detail
    assert {"type", "title", "detail"} <= set(outcome.body), detail


def assert_indexes_agree(service: App, connection_string: str) -> None:
    """The raw index rows match the conversations exactly (capacity) or cover them (due)."""
    tables = dict(zip(TABLE_NAMES, service.store.table_names, strict=True))
    account = TableServiceClient.from_connection_string(connection_string)

    def rows(name: str) -> list[dict[str, Any]]:
        return list(account.get_table_client(tables[name]).list_entities())

    conversations = []
    for entity in rows("conversations"):
        found = service.store.get_conversation(entity["PartitionKey"])
        assert found is not None
        conversations.append(found.value)

    capacity_rows = {(row["PartitionKey"], row["RowKey"]) for row in rows("capacity")}
    holding = {(c.agent_id, c.conversation_id) for c in conversations if c.holds_capacity}
    assert holding - capacity_rows == set(), "conversations holding capacity without a row"
    assert capacity_rows - holding == set(), "capacity rows of conversations not holding it"
    # The same through the store's own query, agent by agent.
    for agent in {agent for agent, _ in capacity_rows | holding}:
        expected = {c for a, c in holding if a == agent}
        assert set(service.store.capacity_rows(agent)) == expected, agent

    due_rows = {(row["PartitionKey"], row["RowKey"]) for row in rows("due")}
    needed = set()
    for conversation in conversations:
        due = domain.due_at(conversation, service.auto_close_after)
        if due is not None:
            needed.add((due_bucket(due), conversation.conversation_id))
    assert needed - due_rows == set(), "conversations the timer would never look at"


# --- the tests -----------------------------------------------------------------------------


def test_a_storage_outage_mid_burst_answers_503_and_loses_nothing(
    base_url: str, persistent_azurite: Azurite, clock: FakeClock
) -> None:
    service = install(persistent_azurite, clock)
    try:
        with httpx.Client(base_url=base_url, timeout=60) as api:
            seed = seed_data(api)
            burst = Burst(base_url, plan(seed, random.Random(8)))

            def outage(burst: Burst) -> None:
                burst.wait_for(lambda: burst.sent_in(UP) >= BEFORE_OUTAGE, "burst")
                burst.phase = STOPPING
                stop_cleanly(persistent_azurite)
                burst.phase = DOWN
                burst.wait_for(lambda: burst.sent_in(DOWN) >= DURING_OUTAGE, "outage answers")
                burst.phase = STARTING
                persistent_azurite.start()
                burst.phase = BACK
                burst.wait_for(lambda: burst.sent_in(BACK) >= AFTER_OUTAGE, "recovery")

            burst.run(outage)
            outcomes = burst.outcomes
            tally = Counter((f"{o.sent}->{o.answered}", o.status) for o in outcomes)
            print("storage faults:", sorted(tally.items()))
            slowest = max(o.seconds for o in outcomes if o.sent == DOWN)
            print(f"slowest answer sent during the outage: {slowest:.2f} s")

            # Never a 500; only what the contract allows, or 503.
            for outcome in outcomes:
                allowed = outcome.call.allowed | {503}
                assert outcome.status in allowed, (
                    f"{outcome.call.kind} {outcome.call.path} ({outcome.sent}->"
                    f"{outcome.answered}): {outcome.status} {outcome.body}"
                )
                if outcome.status == 503:
                    assert_unavailable(outcome)
            # While storage is down, every answer is a 503.
            for outcome in outcomes:
                if outcome.sent == outcome.answered == DOWN:
                    assert_unavailable(outcome)
            # Once it is back, everything succeeds.
            back = [o for o in outcomes if o.sent == BACK]
            assert [o for o in back if o.status == 503] == []
            assert [o for o in outcomes if o.answered == UP and o.status == 503] == []
            assert sum(1 for o in back if 200 <= o.status < 300) > 0

            # New work after the outage.
            assert api.get("health").status_code == 200
            response = api.put("conversations/after-1", json={"widgetId": WIDGET, "agentId": "a"})
            assert response.status_code == 201, response.text
            link = link_id(response.json()["reconnectUrl"])
            response = api.post(
                "conversations/after-1/events", json={"type": "customer_disconnected"}
            )
            assert response.status_code == 200, response.text
            assert response.json()["customerConnected"] is False
            response = api.post(f"widgets/{WIDGET}/reconnect/{link}")
            assert response.status_code == 200, response.text
            assert response.json()["sameAgent"] is True
            response = api.patch(
                f"manage/widgets/{WIDGET}",
                json={"timeLimitMinutes": 12},
                headers={"content-type": "application/merge-patch+json"},
            )
            assert response.status_code == 200, response.text
            assert api.get("agents/a/capacity").json()["held"] == 1

        # One timer run, once the capacity checks the burst noted are due.
        clock.advance(seconds=(CAPACITY_CHECK_DELAY + timedelta(minutes=1)).total_seconds())
        report = service.timer.run()
        assert (report.errors, report.capacity_check_errors) == (0, 0), report
        assert_indexes_agree(service, persistent_azurite.connection_string)
    finally:
        set_service(None)


def test_after_an_in_memory_restart_concurrent_first_requests_make_the_tables_again(
    base_url: str, in_memory_azurite: Azurite, clock: FakeClock
) -> None:
    """An in-memory Azurite restarted loses every table; the first requests, all at once,
    find them missing, make them again and answer as on an empty account."""
    install(in_memory_azurite, clock)
    try:
        with httpx.Client(base_url=base_url, timeout=60) as api:
            seed = seed_data(api)
            in_memory_azurite.restart()
            # Every widget is gone, as if deleted elsewhere: this instance may serve its cached
            # settings for the cache's window, never after it (docs/contract.md §2.1).
            clock.advance(seconds=DEFAULT_MAX_AGE.total_seconds())

            calls = [
                ("GET", "health", None, 200),
                ("GET", "manage/widgets", None, 200),
                ("GET", f"manage/widgets/{WIDGET}", None, 404),
                ("GET", f"conversations/{seed.conversations[0]}", None, 404),
                ("POST", f"widgets/{WIDGET}/reconnect/{seed.links['s0']}", None, 404),
                ("GET", f"agents/{AGENTS[0]}/capacity", None, 200),
                ("PUT", "manage/widgets/fresh", {"reconnectEnabled": False}, 201),
                ("PUT", "conversations/orphan", {"widgetId": WIDGET}, 404),
            ] * 2
            barrier = threading.Barrier(len(calls))

            def fire(call: tuple[str, str, Any, int]) -> tuple[int, int, str]:
                method, path, body, expected = call
                with httpx.Client(base_url=base_url, timeout=60) as client:
                    barrier.wait(timeout=30)
                    response = client.request(method, path, json=body)
                return response.status_code, expected, f"{method} {path}: {response.text}"

            with ThreadPoolExecutor(max_workers=len(calls)) as pool:
                answers = list(pool.map(fire, calls))
            for status, expected, detail in answers:
                # Two identical PUTs race to create "fresh": one creates, one replaces.
                assert status == expected or (expected == 201 and status == 200), detail

            response = api.put(
                f"manage/widgets/{WIDGET}",
                json={"reconnectEnabled": True, "timeLimitMinutes": 10, "portalUrl": PORTAL},
            )
            assert response.status_code == 201, response.text
            response = api.put("conversations/again", json={"widgetId": WIDGET, "agentId": "a"})
            assert response.status_code == 201, response.text
            link = link_id(response.json()["reconnectUrl"])
            response = api.post(
                "conversations/again/events", json={"type": "customer_disconnected"}
            )
            assert response.status_code == 200, response.text
            assert api.post(f"widgets/{WIDGET}/reconnect/{link}").status_code == 200
    finally:
        set_service(None)
