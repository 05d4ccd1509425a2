"""An example consumer of Chat Reconnect's integration events (docs/events.md).

A queue-triggered function on the events queue applies each conversation's events exactly
once and in order, although the queue delivers at least once and in no particular order:

- a redelivered event (an `id` already seen) is dropped;
- an event whose predecessor has not arrived yet (`sequence` is more than one past the
  last applied) is parked, and applied as soon as the gap is filled;
- a gap that stays open longer than GAP_PATIENCE (only a conversation registered before
  events were on, or a consumer that subscribed late, has one) is given up by a timer, which
  applies what is parked and logs the gap.

The ledger lives in a Table storage table of the consumer's own, one partition per
conversation, written with ETag conditions so that any number of instances can run.
`apply` is where your own action goes (release an agent's capacity in the routing engine,
update a desktop); here it only records the event as applied.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from datetime import UTC, datetime, timedelta
from typing import Any

import azure.functions as func
from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableClient, TableTransactionError, UpdateMode

app = func.FunctionApp()
logger = logging.getLogger(__name__)

# Longer than the service's worst case for an event behind its successor: one timer period
# (30 seconds by default) after a queue outage ends.
GAP_PATIENCE = timedelta(minutes=5)
# Event ids remembered per conversation for deduplication (a redelivery comes within minutes).
SEEN_IDS = 64
# Events parked per conversation before the queue is asked to redeliver later instead.
MAX_PARKED = 32
LEDGER = "state"
IF_NOT_MODIFIED = MatchConditions.IfNotModified
Event = dict[str, Any]


@app.queue_trigger(arg_name="message", queue_name="%EVENTS_QUEUE%", connection="EventsStorage")
def on_conversation_event(message: func.QueueMessage) -> None:
    """One event per message; the host has already Base64-decoded the body."""
    event: Event = json.loads(message.get_body())
    for applied in handle(event, ledger_table()):
        logger.info("applied %s %s", applied["type"], applied["sequence"])


@app.timer_trigger(arg_name="timer", schedule="0 * * * * *")
def release_overdue_gaps(timer: func.TimerRequest) -> None:
    """Once a minute: stop waiting for predecessors that are long overdue."""
    release_overdue(ledger_table(), datetime.now(UTC))


def ledger_table() -> TableClient:
    """The consumer's ledger (CONSUMER_TABLES_CONNECTION_STRING, CONSUMER_TABLE)."""
    client = TableClient.from_connection_string(
        os.environ.get("CONSUMER_TABLES_CONNECTION_STRING", "UseDevelopmentStorage=true"),
        os.environ.get("CONSUMER_TABLE", "conversationevents"),
    )
    with contextlib.suppress(ResourceExistsError):
        client.create_table()
    return client


def apply(event: Event) -> dict[str, Any]:
    """Your action for one event, in order; here: the row that records it as applied."""
    data = event["data"]
    return {
        "RowKey": event["sequence"],
        "id": event["id"],
        "type": event["type"],
        "state": data["state"],
        "via": data["via"],
        "capacityReleased": data["capacityReleased"],
    }


def handle(event: Event, table: TableClient, now: datetime | None = None) -> list[Event]:
    """Record `event` in its conversation's ledger; the events this made applicable, in order."""
    conversation_id = event["subject"].removeprefix("conversations/")
    parked_at = (now or datetime.now(UTC)).isoformat()
    while True:  # until our ETag-conditional write wins
        ledger, etag = _read(table, conversation_id)
        if event["id"] in ledger["seen"] or event["sequence"] in ledger["parked"]:
            return []  # a redelivery: at least once
        if int(event["sequence"]) <= ledger["last"]:
            logger.warning("event %s arrived after its gap was given up", event["id"])
            return []
        if len(ledger["parked"]) >= MAX_PARKED:
            raise RuntimeError("too many events parked; the queue will deliver this one again")
        ledger["parked"][event["sequence"]] = {"event": event, "since": parked_at}
        ledger["seen"] = (ledger["seen"] + [event["id"]])[-SEEN_IDS:]
        # A conversation's first event is its registration, sequence 1: until it has come,
        # `last` is 0 and everything later waits.
        ready = _ready(ledger)
        if _write(table, conversation_id, ledger, etag, ready):
            return ready


def release_overdue(table: TableClient, now: datetime) -> list[Event]:
    """Apply the parked events that waited longer than GAP_PATIENCE, skipping their gaps."""
    released: list[Event] = []
    for entity in table.query_entities(f"RowKey eq '{LEDGER}'"):
        conversation_id = entity["PartitionKey"]
        while True:
            ledger, etag = _read(table, conversation_id)
            oldest = min((p["since"] for p in ledger["parked"].values()), default=None)
            if oldest is None or now - datetime.fromisoformat(oldest) < GAP_PATIENCE:
                break
            first = min(ledger["parked"])
            logger.warning(
                "conversation %s: gave up waiting for sequences %d..%d",
                conversation_id,
                ledger["last"] + 1,
                int(first) - 1,
            )
            ledger["last"] = int(first) - 1
            ready = _ready(ledger)
            if _write(table, conversation_id, ledger, etag, ready):
                released += ready
                break
    return released


def _ready(ledger: dict[str, Any]) -> list[Event]:
    """Take the parked events that follow the last applied one, without a gap, in order."""
    ready: list[Event] = []
    while (following := f"{ledger['last'] + 1:010d}") in ledger["parked"]:
        ready.append(ledger["parked"].pop(following)["event"])
        ledger["last"] += 1
    if ready:
        ledger["conversation"] = ready[-1]["data"]
    return ready


def _read(table: TableClient, conversation_id: str) -> tuple[dict[str, Any], str | None]:
    try:
        entity = table.get_entity(conversation_id, LEDGER)
    except ResourceNotFoundError:
        return {"last": 0, "seen": [], "parked": {}, "conversation": None}, None
    ledger = {
        "last": entity["lastSequence"],
        "seen": json.loads(entity["seen"]),
        "parked": json.loads(entity["parked"]),
        "conversation": json.loads(entity["conversation"]),
    }
    return ledger, entity.metadata["etag"]


def _write(
    table: TableClient,
    conversation_id: str,
    ledger: dict[str, Any],
    etag: str | None,
    ready: list[Event],
) -> bool:
    """Store the ledger and the applied events in one transaction; False if another won."""
    entity = {
        "PartitionKey": conversation_id,
        "RowKey": LEDGER,
        "lastSequence": ledger["last"],
        "seen": json.dumps(ledger["seen"]),
        "parked": json.dumps(ledger["parked"]),
        "conversation": json.dumps(ledger["conversation"]),
    }
    operations: list[Any] = [
        ("create", entity)
        if etag is None
        else (
            "update",
            entity,
            {
                "mode": UpdateMode.REPLACE,
                "etag": etag,
                "match_condition": MatchConditions.IfNotModified,
            },
        )
    ]
    operations += [("create", {"PartitionKey": conversation_id, **apply(e)}) for e in ready]
    try:
        table.submit_transaction(operations)
    except TableTransactionError as error:
        # The SDK sets error_code on a failed transaction; the message names it too.
        code = getattr(error, "error_code", None) or str(error)
        if any(lost in code for lost in ("UpdateConditionNotSatisfied", "EntityAlreadyExists")):
            return False  # another instance changed this conversation first: read again
        raise
    return True
