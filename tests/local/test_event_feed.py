"""The demo's event feed: takes CloudEvents off the events queue for the agent console."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from azure.storage.queue import QueueClient
from starlette.applications import Starlette

from local.azurite import AzuriteQueue, queue_connection_string
from local.demo import demo_routes
from local.event_feed import EventFeed
from local.processes import free_port
from local.queues import queue_client
from local.server import serve_in_thread
from tests.local.sample_app import queue_text, sample_event


@pytest.fixture
def queue(azurite_queue: AzuriteQueue) -> Iterator[QueueClient]:
    """A fresh events queue of this test's own (created by the feed, not here)."""
    name = f"events-{uuid.uuid4().hex[:12]}"
    with queue_client(azurite_queue.connection_string, name) as client:
        yield client


def since(feed: EventFeed, after: int) -> dict[str, Any]:
    return asyncio.run(feed.since(after))


def sequences(answer: dict[str, Any]) -> list[str]:
    return [item["event"]["sequence"] for item in answer["events"] if item["event"]]


def test_the_feed_takes_events_off_the_queue_in_order_and_answers_after_a_cursor(
    queue: QueueClient,
) -> None:
    feed = EventFeed(queue)
    assert since(feed, 0) == {"queue": queue.queue_name, "cursor": 0, "error": None, "events": []}
    # Put out of order: within what one request takes, the feed orders by time, then sequence.
    queue.send_message(
        queue_text(
            sample_event(
                "c-1",
                2,
                "customer_disconnected",
                state="active",
                previous="active",
                via="platform",
                time="2026-11-30T12:00:02Z",
            )
        )
    )
    queue.send_message(
        queue_text(
            sample_event(
                "c-1",
                1,
                "registered",
                state="active",
                previous=None,
                via="platform",
                time="2026-11-30T12:00:01Z",
            )
        )
    )
    first = since(feed, 0)
    assert sequences(first) == ["0000000001", "0000000002"]
    assert [item["cursor"] for item in first["events"]] == [1, 2]
    assert first["cursor"] == 2
    assert queue.peek_messages() == []  # consumed, as the platform would

    timeout = sample_event(
        "c-1",
        3,
        "reconnect_timeout",
        state="wrap_up",
        previous="active",
        via="timer",
        released="agent-1",
        time="2026-11-30T12:01:00Z",
    )
    queue.send_message(queue_text(timeout))
    later = since(feed, first["cursor"])
    assert [item["event"] for item in later["events"]] == [timeout]
    assert sequences(since(feed, 0)) == ["0000000001", "0000000002", "0000000003"]


def test_an_unreadable_message_is_shown_as_such_and_taken_off(queue: QueueClient) -> None:
    feed = EventFeed(queue)
    since(feed, 0)  # creates the queue
    queue.send_message("{not base64}")
    queue.send_message(queue_text(["not", "an", "event"]))
    answer = since(feed, 0)
    assert sorted(item["error"] for item in answer["events"]) == [
        "not Base64 of UTF-8 JSON",
        "not a CloudEvent (no type)",
    ]
    assert all(item["event"] is None for item in answer["events"])
    assert queue.peek_messages() == []


def test_a_queue_that_is_down_is_reported_not_raised() -> None:
    closed = queue_client(queue_connection_string(free_port()), "conversation-events")
    answer = since(EventFeed(closed), 0)
    assert answer["events"] == []
    assert answer["error"].startswith("the events queue cannot be read")


def test_events_off_and_the_app_defaults_come_from_the_environment() -> None:
    assert EventFeed.from_environment({"EVENTS_QUEUE": ""}).queue_name is None
    default = EventFeed.from_environment({})
    assert default.queue_name == "conversation-events"
    assert default.client is not None
    assert default.client.url == "http://127.0.0.1:10001/devstoreaccount1/conversation-events"
    named = EventFeed.from_environment(
        {"EVENTS_QUEUE": "ev-1", "QUEUES_CONNECTION_STRING": queue_connection_string(4321)}
    )
    assert named.client is not None
    assert named.client.url == "http://127.0.0.1:4321/devstoreaccount1/ev-1"


def test_the_route_answers_events_after_a_cursor_and_refuses_a_bad_one(
    queue: QueueClient,
) -> None:
    app = Starlette(routes=demo_routes(events=EventFeed(queue)))
    with serve_in_thread(app) as base_url, httpx.Client(base_url=base_url, trust_env=False) as http:
        assert http.get("/dev/events").json()["events"] == []
        queue.send_message(
            queue_text(
                sample_event(
                    "c-2", 1, "registered", state="open", previous=None, via="platform", agent=None
                )
            )
        )
        answer = http.get("/dev/events", params={"after": 0})
        assert answer.status_code == 200
        assert answer.headers["cache-control"] == "no-store"
        assert [item["event"]["subject"] for item in answer.json()["events"]] == [
            "conversations/c-2"
        ]
        assert http.get("/dev/events", params={"after": 1}).json()["events"] == []
        for bad in ("-1", "x", "1.5", "9" * 13):
            refused = http.get("/dev/events", params={"after": bad})
            assert refused.status_code == 400, bad
            assert refused.headers["content-type"] == "application/problem+json"
