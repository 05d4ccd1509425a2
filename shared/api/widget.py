"""Widget routes: the customer's browser resolves, continues or declines a previous
conversation (anonymous; authenticated widgets add the customer's bearer token)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import azure.functions as func

from shared.api.http import (
    Answer,
    Operation,
    blueprint,
    endpoint,
    json_response,
    no_content,
    path_id,
)
from shared.api.lazy import LazyModule
from shared.wiring import get_service

if TYPE_CHECKING:
    from shared.api import schemas
    from shared.services.reconnect import CustomerSession
else:
    # The contract models are built on first use, not with the app (docs/performance.md).
    schemas = LazyModule("shared.api.schemas")


bp = blueprint()

ANONYMOUS = func.AuthLevel.ANONYMOUS
TAG = "Widget: reconnect"
LINK_ROUTE = "widgets/{widgetId}/reconnect/{reconnectId}"
_common = (
    Answer(400, "Bad widget id", "Problem", True),
    Answer(401, "Missing or invalid customer token (authenticated widgets)", "Problem", True),
    Answer(404, "Unknown widget", "Problem", True),
    Answer(503, "Storage unavailable", "Problem", True),
)


def _session(req: func.HttpRequest) -> CustomerSession:
    return get_service().reconnect.customer_session(
        path_id(req, "widgetId"), req.headers.get("authorization")
    )


def _reconnect_id(req: func.HttpRequest) -> str:
    # Not validated as an id: a malformed link is simply unavailable, like any other.
    return str(req.route_params.get("reconnectId", ""))


@endpoint(
    bp,
    Operation(
        name="reconnect_context",
        method="GET",
        route=LINK_ROUTE,
        auth_level=ANONYMOUS,
        summary="Whether a reconnect link can be continued now, and where to go if not.",
        tag=TAG,
        answers=(Answer(200, "The reconnect context", "ReconnectContextView"), *_common),
        bearer=True,
    ),
)
def reconnect_context(req: func.HttpRequest) -> func.HttpResponse:
    """Resolve a link from `oc.reconnectid`; every unusable link gets the same answer."""
    context = get_service().reconnect.reconnect_context(_session(req), _reconnect_id(req))
    body = schemas.ReconnectContextView(
        is_reconnect_available=context.available,
        reconnect_id=context.reconnect_id,
        conversation_id=context.conversation_id,
        expires_at=context.expires_at,
        redirect_url=context.redirect_url,
    )
    return json_response(body)


@endpoint(
    bp,
    Operation(
        name="reconnect_continue",
        method="POST",
        route=LINK_ROUTE,
        auth_level=ANONYMOUS,
        summary="Continue the previous conversation (idempotent).",
        tag=TAG,
        answers=(
            Answer(200, "Reconnected", "ContinueView"),
            Answer(410, "The link can no longer be continued", "Problem", True),
            *_common,
        ),
        bearer=True,
    ),
)
def reconnect_continue(req: func.HttpRequest) -> func.HttpResponse:
    """Reconnect the customer to the conversation (and agent) of the link."""
    result = get_service().reconnect.continue_conversation(_session(req), _reconnect_id(req))
    body = schemas.ContinueView(
        conversation_id=result.conversation.conversation_id,
        state=result.conversation.state,
        agent_id=result.conversation.agent_id,
        same_agent=result.same_agent,
        reconnected_at=result.reconnected_at,
    )
    return json_response(body)


@endpoint(
    bp,
    Operation(
        name="reconnect_decline",
        method="POST",
        route=LINK_ROUTE + "/decline",
        auth_level=ANONYMOUS,
        summary="Start a new conversation instead: the previous one ends (idempotent).",
        tag=TAG,
        answers=(Answer(204, "Declined (or nothing to decline)"), *_common),
        bearer=True,
    ),
)
def reconnect_decline(req: func.HttpRequest) -> func.HttpResponse:
    """End the previous conversation, releasing the agent; unusable links change nothing."""
    get_service().reconnect.decline(_session(req), _reconnect_id(req))
    return no_content()


@endpoint(
    bp,
    Operation(
        name="reconnectable",
        method="GET",
        route="widgets/{widgetId}/reconnectable",
        auth_level=ANONYMOUS,
        summary="The authenticated customer's most recent conversation that can be continued.",
        tag=TAG,
        answers=(
            Answer(200, "A previous session to offer", "ReconnectableView"),
            Answer(204, "Nothing to offer"),
            Answer(400, "Bad widget id", "Problem", True),
            Answer(401, "Missing or invalid customer token", "Problem", True),
            Answer(404, "Unknown widget, or not an authenticated widget", "Problem", True),
            Answer(503, "Storage unavailable", "Problem", True),
        ),
        bearer=True,
    ),
)
def reconnectable(req: func.HttpRequest) -> func.HttpResponse:
    """The prompt "Previous session detected — continue or start new?"."""
    found = get_service().reconnect.reconnectable(_session(req))
    if found is None:
        return no_content()
    body = schemas.ReconnectableView(
        reconnect_id=found.reconnect_id,
        conversation_id=found.conversation.conversation_id,
        expires_at=found.conversation.reconnect_deadline,
        disconnected_at=found.conversation.disconnected_at,
    )
    return json_response(body)
