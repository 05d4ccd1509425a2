"""Platform routes: the chat platform and agent desktop register conversations and report
lifecycle events (auth level FUNCTION)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import azure.functions as func

from shared.api.http import Answer, Operation, blueprint, endpoint, json_response, parse, path_id
from shared.api.lazy import LazyModule
from shared.domain.conversation import Event
from shared.wiring import get_service

if TYPE_CHECKING:
    from shared.api import schemas
    from shared.wire import conversations as wire
else:
    # The contract models are built on first use, not with the app (docs/performance.md).
    schemas = LazyModule("shared.api.schemas")
    wire = LazyModule("shared.wire.conversations")


bp = blueprint()

PLATFORM = func.AuthLevel.FUNCTION
TAG = "Platform: conversations"
ROUTE = "conversations/{conversationId}"
_common = (
    Answer(400, "Bad id", "Problem", True),
    Answer(404, "Unknown conversation", "Problem", True),
    Answer(503, "Storage unavailable", "Problem", True),
)
_body_problems = (
    Answer(413, "Body over 64 KiB", "Problem", True),
    Answer(415, "Not JSON", "Problem", True),
    Answer(422, "Invalid body", "Problem", True),
)


@endpoint(
    bp,
    Operation(
        name="register_conversation",
        method="PUT",
        route=ROUTE,
        auth_level=PLATFORM,
        summary="Register a conversation (201), or repeat an identical registration (200).",
        tag=TAG,
        body="RegisterConversationBody",
        answers=(
            Answer(200, "Already registered", "ConversationView"),
            Answer(201, "Registered", "ConversationView"),
            Answer(409, "Registered with another widget, agent or customer", "Problem", True),
            *_common,
            *_body_problems,
        ),
    ),
)
def register_conversation(req: func.HttpRequest) -> func.HttpResponse:
    """Register a conversation: open without an agent, active with one."""
    conversation_id = path_id(req, "conversationId")
    body = parse(req, schemas.RegisterConversationBody)
    result, created = get_service().conversations.register(
        conversation_id, body.widget_id, body.agent_id, body.customer_id
    )
    return json_response(
        wire.conversation_view(result.conversation, result.reconnect_url), 201 if created else 200
    )


@endpoint(
    bp,
    Operation(
        name="get_conversation",
        method="GET",
        route=ROUTE,
        auth_level=PLATFORM,
        summary="Read a conversation, with its current reconnect link.",
        tag=TAG,
        answers=(Answer(200, "The conversation", "ConversationView"), *_common),
    ),
)
def get_conversation(req: func.HttpRequest) -> func.HttpResponse:
    """The conversation as it is now."""
    result = get_service().conversations.get_conversation(path_id(req, "conversationId"))
    return json_response(wire.conversation_view(result.conversation, result.reconnect_url))


@endpoint(
    bp,
    Operation(
        name="conversation_event",
        method="POST",
        route=ROUTE + "/events",
        auth_level=PLATFORM,
        summary="Report a lifecycle event; a repeated eventId changes nothing.",
        tag=TAG,
        body="EventBody",
        answers=(
            Answer(200, "The conversation after the event", "ConversationView"),
            Answer(409, "The event does not apply in the current state", "Problem", True),
            *_common,
            *_body_problems,
        ),
    ),
)
def conversation_event(req: func.HttpRequest) -> func.HttpResponse:
    """Apply a lifecycle event (contract §2.2)."""
    conversation_id = path_id(req, "conversationId")
    body = parse(req, schemas.EventBody)
    result = get_service().conversations.apply_event(
        conversation_id, Event(type=body.type, agent_id=body.agent_id), body.event_id
    )
    return json_response(wire.conversation_view(result.conversation, result.reconnect_url))


@endpoint(
    bp,
    Operation(
        name="quick_reply",
        method="POST",
        route=ROUTE + "/quick-reply",
        auth_level=PLATFORM,
        summary="Render the {ReconnectUrl{ReconnectID}} slug in an agent's quick reply.",
        tag=TAG,
        body="QuickReplyBody",
        answers=(
            Answer(200, "The rendered text", "QuickReplyView"),
            Answer(409, "The text has the slug but reconnection is off", "Problem", True),
            *_common,
            *_body_problems,
        ),
    ),
)
def quick_reply(req: func.HttpRequest) -> func.HttpResponse:
    """The agent's text with the reconnect link in place of the slug."""
    conversation_id = path_id(req, "conversationId")
    body = parse(req, schemas.QuickReplyBody)
    text = get_service().conversations.quick_reply(conversation_id, body.text)
    return json_response(schemas.QuickReplyView(text=text))


@endpoint(
    bp,
    Operation(
        name="revoke_reconnect_link",
        method="POST",
        route=ROUTE + "/reconnect-link/revoke",
        auth_level=PLATFORM,
        summary="Issue a new reconnect link; the old one stops working at once.",
        tag=TAG,
        answers=(Answer(200, "The new link", "ReconnectLinkView"), *_common),
    ),
)
def revoke_reconnect_link(req: func.HttpRequest) -> func.HttpResponse:
    """Revoke the current link and answer the new one."""
    result = get_service().conversations.revoke_link(path_id(req, "conversationId"))
    return json_response(schemas.ReconnectLinkView(reconnect_url=result.reconnect_url))


@endpoint(
    bp,
    Operation(
        name="agent_capacity",
        method="GET",
        route="agents/{agentId}/capacity",
        auth_level=PLATFORM,
        summary="The conversations holding an agent's capacity.",
        tag="Platform: agents",
        answers=(
            Answer(200, "The agent's held capacity", "CapacityView"),
            Answer(400, "Bad id", "Problem", True),
            Answer(503, "Storage unavailable", "Problem", True),
        ),
    ),
)
def agent_capacity(req: func.HttpRequest) -> func.HttpResponse:
    """Held capacity: active conversations assigned to the agent (0 for an agent never seen)."""
    agent_id = path_id(req, "agentId")
    held = get_service().conversations.agent_capacity(agent_id)
    body = schemas.CapacityView(
        agent_id=agent_id,
        held=len(held),
        conversations=[
            schemas.HeldConversationView(
                conversation_id=c.conversation_id,
                customer_connected=c.customer_connected,
                reconnect_deadline=c.reconnect_deadline,
            )
            for c in held
        ],
    )
    return json_response(body)
