"""The relay of integration events: a queue trigger on the private outbox queue; the work
itself is `shared.services.relay`."""

from __future__ import annotations

import json
import logging

import azure.functions as func

from shared.api.http import blueprint
from shared.wiring import get_service

logger = logging.getLogger(__name__)

bp = blueprint()


@bp.function_name("relay_events")
@bp.queue_trigger(
    arg_name="message",
    queue_name="%EVENTS_OUTBOX_QUEUE%",
    connection="AzureWebJobsStorage",
)
def relay_events(message: func.QueueMessage) -> None:
    """Send the staged events whose change is stored; raise (the message comes back) while
    the public queue or the settings are wrong."""
    relay = get_service().relay
    if relay is None:
        return  # events are off: nothing is sent
    try:
        body = json.loads(message.get_body())
    except ValueError:
        logger.error("Dropped an outbox message that is not JSON")
        return
    report = relay.relay(body)
    logger.info(
        "events relayed %s",
        json.dumps(
            {
                "event": "relay_events",
                "sent": report.sent,
                "waiting": report.waiting,
                "dropped": report.dropped,
                "forgotten": report.forgotten,
                "dequeueCount": message.dequeue_count,
            }
        ),
    )
