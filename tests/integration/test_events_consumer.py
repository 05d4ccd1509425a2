"""The example consumer of docs/events.md, run on real messages of a real Azurite queue.

Events are put on the queue as the app sends them (Base64 of the UTF-8 JSON, one per
message) and read back as a Functions queue trigger with default settings reads them; the
example's own function applies them to its ledger in Azurite's Table storage. What it records
must be every event once, in `sequence` order, whatever order and however often they came.
"""

from __future__ import annotations

import base64
import functools
import importlib.util
import json
import random
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import azure.functions as func
import pytest
from azure.data.tables import TableClient
from azure.storage.queue import BinaryBase64DecodePolicy, QueueClient

from local.azurite import Azurite, AzuriteQueue
from tests.conftest import START
from tests.events import sample_event, validate_event

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "events_consumer" / "function_app.py"

# One conversation's life, sequence 1..5, each event with its own id.
LIFE = ["registered", "agent_assigned", "customer_disconnected", "reconnect_timeout", "auto_closed"]


def load_example() -> ModuleType:
    """The example's function_app.py, under a name of its own (the app's is function_app)."""
    spec = importlib.util.spec_from_file_location("events_consumer_example", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def example() -> ModuleType:
    return load_example()


@pytest.fixture
def ledger(
    azurite: Azurite, example: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> Iterator[TableClient]:
    """The consumer's ledger table, a new one per test, as the example's settings name it."""
    monkeypatch.setenv("CONSUMER_TABLES_CONNECTION_STRING", azurite.connection_string)
    monkeypatch.setenv("CONSUMER_TABLE", "ledger" + uuid.uuid4().hex[:12])
    table: TableClient = example.ledger_table()
    yield table
    table.delete_table()


@pytest.fixture
def queue(azurite_queue: AzuriteQueue) -> Iterator[QueueClient]:
    client = QueueClient.from_connection_string(
        azurite_queue.connection_string, "events-" + uuid.uuid4().hex[:12]
    )
    client.create_queue()
    yield client
    client.delete_queue()


def life(conversation_id: str) -> list[dict[str, Any]]:
    events = [
        sample_event(
            what,
            conversation_id=conversation_id,
            sequence=number,
            event_id=base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="),
        )
        for number, what in enumerate(LIFE, start=1)
    ]
    for event in events:
        validate_event(event)
    return events


def send(queue: QueueClient, event: dict[str, Any]) -> None:
    """As the app sends an event: Base64 of the UTF-8 JSON, one event per message."""
    queue.send_message(base64.b64encode(json.dumps(event).encode("utf-8")).decode("ascii"))


@functools.cache
def trigger(example: ModuleType) -> Callable[[func.QueueMessage], None]:
    """The example's queue-triggered function (an app lists its functions only once)."""
    functions = {f.get_function_name(): f for f in example.app.get_functions()}
    handler: Callable[[func.QueueMessage], None] = functions[
        "on_conversation_event"
    ].get_user_function()
    return handler


def deliver_one(queue: QueueClient, example: ModuleType) -> None:
    """What the Functions host does with one message: decode, call, delete on success."""
    reader = QueueClient.from_queue_url(
        queue.url, credential=queue.credential, message_decode_policy=BinaryBase64DecodePolicy()
    )
    (message,) = reader.receive_messages(max_messages=1)
    body = message.content
    assert isinstance(body, bytes)
    trigger(example)(func.QueueMessage(id=message.id, body=body, pop_receipt=message.pop_receipt))
    reader.delete_message(message)


def applied(ledger: TableClient, conversation_id: str) -> list[tuple[str, str, str]]:
    """(sequence, id, type) of every event the consumer recorded as applied, in key order."""
    rows = ledger.query_entities(f"PartitionKey eq '{conversation_id}' and RowKey ne 'state'")
    return [(row["RowKey"], row["id"], row["type"]) for row in rows]


def as_recorded(events: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return [(e["sequence"], e["id"], e["type"]) for e in events]


def test_each_event_is_applied_once_in_sequence_order(
    example: ModuleType, ledger: TableClient, queue: QueueClient
) -> None:
    events = life("conv-1")
    first, second, third, fourth, fifth = events
    # Out of order, and twice: what an at-least-once queue without FIFO may do.
    arrivals = [third, first, first, second, fifth, fourth, second]
    recorded_after_each = [[], [first], [first], events[:3], events[:3], events, events]
    for event, expected in zip(arrivals, recorded_after_each, strict=True):
        send(queue, event)
        deliver_one(queue, example)
        assert applied(ledger, "conv-1") == as_recorded(expected)
    assert queue.get_queue_properties().approximate_message_count == 0
    state = ledger.get_entity("conv-1", "state")
    assert state["lastSequence"] == 5
    assert json.loads(state["parked"]) == {}
    assert json.loads(state["conversation"]) == fifth["data"]
    assert sorted(json.loads(state["seen"])) == sorted(e["id"] for e in events)


def test_conversations_are_ordered_each_on_their_own(
    example: ModuleType, ledger: TableClient, queue: QueueClient
) -> None:
    lives = {conversation: life(conversation) for conversation in ("conv-a", "conv-b")}
    mixed = [event for pair in zip(*lives.values(), strict=True) for event in pair]
    random.Random(14).shuffle(mixed)
    for event in mixed:
        send(queue, event)
    for _ in mixed:
        deliver_one(queue, example)
    for conversation, events in lives.items():
        assert applied(ledger, conversation) == as_recorded(events)


def test_a_gap_that_never_fills_is_given_up_after_the_patience(
    example: ModuleType, ledger: TableClient
) -> None:
    # A conversation registered before events were on: its first event is sequence 3.
    third, fourth = life("conv-old")[2:4]
    assert example.handle(fourth, ledger, now=START) == []
    assert example.handle(third, ledger, now=START + timedelta(seconds=10)) == []
    patience = example.GAP_PATIENCE
    assert example.release_overdue(ledger, START + patience - timedelta(seconds=1)) == []
    assert applied(ledger, "conv-old") == []
    assert example.release_overdue(ledger, START + patience) == [third, fourth]
    assert applied(ledger, "conv-old") == as_recorded([third, fourth])
    # The event it waited for comes after all: too late, and never applied out of order.
    late = life("conv-old")[1]
    assert example.handle(late, ledger, now=START + 2 * patience) == []
    assert applied(ledger, "conv-old") == as_recorded([third, fourth])


def test_instances_racing_on_one_conversation_apply_each_event_once(
    example: ModuleType, ledger: TableClient
) -> None:
    events = [
        sample_event(
            "registered" if number == 1 else "customer_reconnected",
            conversation_id="conv-busy",
            sequence=number,
            event_id=f"{number:022d}",
        )
        for number in range(1, 25)
    ]
    shuffled = events * 2  # every event twice
    random.Random(7).shuffle(shuffled)
    returned: list[dict[str, Any]] = []
    lock = threading.Lock()

    def instance(share: list[dict[str, Any]]) -> None:
        for event in share:
            ready = example.handle(event, ledger)
            with lock:
                returned.extend(ready)

    threads = [threading.Thread(target=instance, args=(shuffled[i::4],)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert applied(ledger, "conv-busy") == as_recorded(events)
    assert sorted(as_recorded(returned)) == as_recorded(events)
