"""Omnichannel chat SDK routes: Microsoft's `@microsoft/omnichannel-chat-sdk`, pointed at this
service (`orgUrl` = `https://<app>/api`), resolves reconnects with the widget's own use cases.

Anonymous, as Omnichannel's live chat connector is. The `{orgId}` must be the setting
`OMNICHANNEL_ORG_ID` (unset: every route here is 404). Only the wire names are Omnichannel's:
each answer is the widget route's answer (`shared.services.reconnect`), renamed. docs/omnichannel.md
says how to point a page at this service and where the answers differ from Omnichannel's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import azure.functions as func

from shared.api.http import (
    Answer,
    Handler,
    Operation,
    blueprint,
    endpoint,
    json_response,
    no_content,
    path_id,
)
from shared.api.lazy import LazyModule
from shared.api.problems import problem_response
from shared.config import get_settings
from shared.domain.errors import ChatReconnectError, UnknownResource
from shared.domain.settings import WidgetSettings
from shared.domain.urls import origin_of
from shared.wiring import get_service

if TYPE_CHECKING:
    from shared.api import schemas
    from shared.services.reconnect import CustomerSession
else:
    # The contract models are built on first use, not with the app (docs/performance.md).
    schemas = LazyModule("shared.api.schemas")


bp = blueprint()
# An SDK route's handler: the request and the path's widget, read once by `_cors`.
SdkHandler = Callable[[func.HttpRequest, WidgetSettings], func.HttpResponse]

ANONYMOUS = func.AuthLevel.ANONYMOUS
TAG = "Omnichannel chat SDK"
CONFIG_ROUTE = "livechatconnector/config/{orgId}/{widgetId}"
AVAILABILITY_ROUTE = "livechatconnector/reconnect/{orgId}/{widgetId}/{reconnectId}"
CHATS_ROUTE = "livechatconnector/auth/reconnectablechats/{orgId}/{widgetId}/{requestId}"
USER_TOKEN_HEADER = "AuthenticatedUserToken"  # noqa: S105 (a header name)
# What the SDK sends (ocsdk's OmnichannelHTTPHeaders), so a portal page's preflight passes.
SDK_HEADERS = (
    "AuthenticatedUserToken",
    "AuthCodeNonce",
    "Ms-Oc-User-Agent",
    "x-ms-client-request-id",
    "Oc-Sessionid",
    "Content-Type",
    "Cache-Control",
    "X-Cache-Control",
)


PREFLIGHT_MAX_AGE_SECONDS = 600
# Omnichannel's option-set values: a live (not persistent) chat, no voice or video.
LIVE_CHAT_MODE = "192350000"
NO_CALLING = "192350000"
ENGLISH_US = "1033"
TOKEN_SECURITY: dict[str, list[str]] = {"authenticatedUserToken": []}

_not_found = Answer(404, "Unknown organization or widget", "Problem", True)
_common = (
    Answer(400, "Bad widget id", "Problem", True),
    _not_found,
    Answer(503, "Storage unavailable", "Problem", True),
)


def _widget_id(req: func.HttpRequest) -> str:
    """The path's widget id, once the path's org id is the configured one (else 404)."""
    org_id = get_settings().omnichannel_org_id
    if org_id is None or req.route_params.get("orgId") != org_id:
        raise UnknownResource("No such Omnichannel organization here.")
    return path_id(req, "widgetId")


def _session(req: func.HttpRequest, widget: WidgetSettings) -> CustomerSession:
    token = (req.headers.get(USER_TOKEN_HEADER) or "").strip()
    # Omnichannel takes the customer's JWT bare in its own header; the widget's use case
    # reads it as a bearer token.
    authorization = f"Bearer {token}" if token else None
    return get_service().reconnect.session_for(widget, authorization)


def _widget(req: func.HttpRequest) -> WidgetSettings:
    """The path's widget, read once per request (from the instance's settings cache)."""
    return get_service().widgets.require(_widget_id(req))


def _portal_origin(req: func.HttpRequest, widget: WidgetSettings | None) -> str | None:
    """The request's Origin when it is the widget's portal origin, else None."""
    origin = req.headers.get("origin")
    portal_url = widget.portal_url if widget is not None else None
    if not origin or not portal_url:
        return None
    return origin if origin_of(portal_url) == origin.lower() else None


def _cors(handler: SdkHandler) -> Handler:
    """`handler`, given the path's widget, with its answers (problems included) readable by
    the widget's portal page.

    In Azure the platform's CORS (infra: corsAllowedOrigins) answers instead, when set.
    """

    def run(req: func.HttpRequest) -> func.HttpResponse:
        widget: WidgetSettings | None = None
        try:
            widget = _widget(req)
            response = handler(req, widget)
        except ChatReconnectError as error:
            response = problem_response(error)
        origin = _portal_origin(req, widget)
        if origin is not None:
            response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Vary"] = "Origin"
        return response

    run.__doc__ = handler.__doc__
    return run


def _preflight(name: str, route: str) -> None:
    """Register the CORS preflight of `route`: the SDK's headers, from the portal origin."""

    def preflight(req: func.HttpRequest) -> func.HttpResponse:
        response = no_content()
        try:
            widget: WidgetSettings | None = _widget(req)
        except ChatReconnectError:
            widget = None
        origin = _portal_origin(req, widget)
        if origin is not None:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Allow-Methods"] = "GET"
            response.headers["Access-Control-Allow-Headers"] = ", ".join(SDK_HEADERS)
            response.headers["Access-Control-Max-Age"] = str(PREFLIGHT_MAX_AGE_SECONDS)
        response.headers["Vary"] = "Origin"
        return response

    preflight.__doc__ = "CORS preflight: allowed from the widget's portal origin only."
    endpoint(
        bp,
        Operation(
            name=name,
            method="OPTIONS",
            route=route,
            auth_level=ANONYMOUS,
            summary="CORS preflight of the Omnichannel chat SDK (portal origin only).",
            tag=TAG,
            answers=(Answer(204, "Preflight answered (CORS headers for the portal origin only)"),),
        ),
    )(preflight)


def _sdk_route(operation: Operation) -> Callable[[SdkHandler], Handler]:
    """Register a GET of the SDK with CORS, and its preflight."""
    _preflight(operation.name + "_preflight", operation.route)

    def decorator(handler: SdkHandler) -> Handler:
        return endpoint(bp, operation)(_cors(handler))

    return decorator


@_sdk_route(
    Operation(
        name="omnichannel_live_chat_config",
        method="GET",
        route=CONFIG_ROUTE,
        auth_level=ANONYMOUS,
        summary="The live chat config the SDK's initialize() reads: reconnect on or off.",
        tag=TAG,
        answers=(Answer(200, "The live chat config", "LiveChatConfigView"), *_common),
        query=(
            ("requestId", "The SDK's request id (ignored)", {"type": "string"}),
            ("channelId", "The SDK's channel, `lcw` (ignored)", {"type": "string"}),
        ),
    )
)
def live_chat_config(req: func.HttpRequest, widget: WidgetSettings) -> func.HttpResponse:
    """The widget's settings as Omnichannel's live chat config (LiveChatVersion 2)."""
    auth = None
    if widget.is_authenticated:
        # The SDK only checks that the settings exist; the page's getAuthToken supplies the
        # token, so the Omnichannel-side fields stay empty.
        auth = schemas.LiveChatAuthSettings(
            authentication_type="",
            javascript_client_function="",
            public_key_url="",
        )
    body = schemas.LiveChatConfigView(
        live_chat_version=2,
        widget=schemas.LiveChatWidgetColumns(
            widget_app_id=widget.widget_id,
            enable_chat_reconnect="true" if widget.reconnect_enabled else "false",
            conversation_mode=LIVE_CHAT_MODE,
            prechat_enabled="false",
            attachments_for_customers="false",
            attachments_for_agents="false",
            calling_options=NO_CALLING,
        ),
        language=schemas.ChatWidgetLanguage(locale_id=ENGLISH_US),
        data_masking=schemas.DataMaskingInfo(
            setting=schemas.DataMaskingSetting(mask_for_customer=False), data_masking_rules={}
        ),
        auth_settings=auth,
    )
    return json_response(body)


@_sdk_route(
    Operation(
        name="omnichannel_reconnect_availability",
        method="GET",
        route=AVAILABILITY_ROUTE,
        auth_level=ANONYMOUS,
        summary="Whether a reconnect link can be continued now (the widget's reconnect context).",
        tag=TAG,
        answers=(
            Answer(200, "The link's availability", "ReconnectAvailabilityView"),
            Answer(
                401,
                "Missing or invalid customer token (authenticated widgets)",
                "Problem",
                True,
            ),
            *_common,
        ),
        security=({}, TOKEN_SECURITY),
    )
)
def reconnect_availability(req: func.HttpRequest, widget: WidgetSettings) -> func.HttpResponse:
    """A link's availability, exactly as the widget's reconnect context decides it."""
    reconnect_id = str(req.route_params.get("reconnectId", ""))
    context = get_service().reconnect.reconnect_context(_session(req, widget), reconnect_id)
    body = schemas.ReconnectAvailabilityView(
        reconnect_id=context.reconnect_id,
        is_reconnect_available=context.available,
        reconnect_redirection_url=context.redirect_url,
    )
    return json_response(body)


@_sdk_route(
    Operation(
        name="omnichannel_reconnectable_chats",
        method="GET",
        route=CHATS_ROUTE,
        auth_level=ANONYMOUS,
        summary="The authenticated customer's most recent conversation that can be continued.",
        tag=TAG,
        answers=(
            Answer(200, "A previous session to offer", "ReconnectableChatView"),
            Answer(204, "Nothing to offer"),
            Answer(401, "Missing or invalid customer token", "Problem", True),
            Answer(400, "Bad widget id", "Problem", True),
            Answer(404, "Unknown organization or widget, or not authenticated", "Problem", True),
            Answer(503, "Storage unavailable", "Problem", True),
        ),
        query=(("channelId", "The SDK's channel, `lcw` (ignored)", {"type": "string"}),),
        security=(TOKEN_SECURITY,),
    )
)
def reconnectable_chats(req: func.HttpRequest, widget: WidgetSettings) -> func.HttpResponse:
    """The widget's prompt, as Omnichannel's reconnect mapping record (204: nothing)."""
    session = _session(req, widget)
    found = get_service().reconnect.reconnectable(session)
    if found is None:
        return no_content()
    body = schemas.ReconnectableChatView(
        reconnectid=found.reconnect_id,
        orgid=str(req.route_params["orgId"]),
        widgetappid=session.widget.widget_id,
        conversation_id=found.conversation.conversation_id,
        expires_at=found.conversation.reconnect_deadline,
        disconnected_at=found.conversation.disconnected_at,
    )
    return json_response(body)
