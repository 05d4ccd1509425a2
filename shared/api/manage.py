"""Admin routes: per-widget reconnection settings (auth level FUNCTION, and in Azure the
admin's Entra ID app role: shared/api/admin_auth.py)."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import azure.functions as func

from shared.api.admin_auth import require_admin
from shared.api.errors import MalformedRequest
from shared.api.http import (
    JSON,
    MERGE_PATCH,
    Answer,
    Handler,
    Operation,
    blueprint,
    endpoint,
    json_body,
    json_response,
    loads_json,
    no_content,
    parse,
    path_id,
    validate,
)
from shared.api.lazy import LazyModule
from shared.api.preconditions import precondition
from shared.api.views import widget_from_body, widget_view
from shared.config import get_settings
from shared.domain.errors import FieldProblem, InvalidInput
from shared.wiring import get_service

if TYPE_CHECKING:
    from shared.api import schemas
else:
    # The contract models are built on first use, not with the app (docs/performance.md).
    schemas = LazyModule("shared.api.schemas")


bp = blueprint()

ADMIN = func.AuthLevel.FUNCTION
TAG = "Admin: widget settings"
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
ROUTE = "manage/widgets/{widgetId}"
_problems = (
    Answer(400, "Bad id or malformed JSON", "Problem", True),
    Answer(401, "In Azure: no admin sign-in (Microsoft Entra ID)", "Problem", True),
    Answer(403, "In Azure: the admin app role is missing", "Problem", True),
    Answer(503, "Storage unavailable, or admin sign-in misconfigured", "Problem", True),
)


_etag_header = (("ETag", "Version of the settings, for If-Match"),)
_if_match = (("If-Match", {"type": "string"}),)
_if_none_match = (("If-None-Match", {"type": "string", "enum": ["*"]}),)


def admin_endpoint(operation: Operation) -> Callable[[Handler], Handler]:
    """`endpoint` for an admin route: the admin check runs before the handler, every time."""

    def decorator(handler: Handler) -> Handler:
        def guarded(req: func.HttpRequest) -> func.HttpResponse:
            settings = get_settings()
            require_admin(req.headers, settings.admin_required_role, settings.platform_auth_enabled)
            return handler(req)

        guarded.__doc__ = handler.__doc__
        return endpoint(bp, operation)(guarded)

    return decorator


def _encode_token(token: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(token).encode()).decode().rstrip("=")


def _decode_token(text: str) -> Any:
    try:
        token = loads_json(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (ValueError, binascii.Error):  # loads_json's errors, deep nesting too
        token = None
    # Only the shape the SDK gives us (and nextLink carries) may reach it: anything else
    # would fail deep in the SDK (500) or silently restart the listing.
    if not (
        isinstance(token, dict)
        and set(token) == {"PartitionKey", "RowKey"}
        and all(value is None or isinstance(value, str) for value in token.values())
        and any(token.values())
    ):
        raise MalformedRequest(
            "continuationToken is malformed.",
            (FieldProblem("continuationToken", "use the nextLink of the previous page"),),
        )
    return token


def _page_size(text: str | None) -> int:
    if text is None:
        return DEFAULT_PAGE_SIZE
    # isascii: isdigit also accepts digits int() refuses, such as "²".
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_PAGE_SIZE:
        raise MalformedRequest(
            "top must be a whole number from 1 to 1000.",
            (FieldProblem("top", f"must be a whole number from 1 to {MAX_PAGE_SIZE}"),),
        )
    return int(text)


def _settings_response(
    widget: schemas.WidgetSettingsView, etag: str, status: int = 200
) -> func.HttpResponse:
    return json_response(widget, status, {"ETag": etag})


@admin_endpoint(
    Operation(
        name="manage_list_widgets",
        method="GET",
        route="manage/widgets",
        auth_level=ADMIN,
        summary="List the settings of every widget, a page at a time.",
        tag=TAG,
        answers=(Answer(200, "A page of widget settings", "WidgetSettingsList"), *_problems),
        query=(
            ("top", "Page size (1-1000, default 100)", {"type": "integer", "minimum": 1}),
            ("continuationToken", "From the previous page's nextLink", {"type": "string"}),
        ),
    ),
)
def list_widgets(req: func.HttpRequest) -> func.HttpResponse:
    """List widget settings; `nextLink` leads to the next page."""
    top = _page_size(req.params.get("top"))
    token_text = req.params.get("continuationToken")
    token = _decode_token(token_text) if token_text else None
    widgets, next_token = get_service().settings.list_widgets(top, token)
    next_link = None
    if next_token is not None:
        next_link = f"/api/manage/widgets?top={top}&continuationToken={_encode_token(next_token)}"
    body = schemas.WidgetSettingsList(value=[widget_view(w) for w in widgets], next_link=next_link)
    return json_response(body)


@admin_endpoint(
    Operation(
        name="manage_get_widget",
        method="GET",
        route=ROUTE,
        auth_level=ADMIN,
        summary="Read one widget's settings, with an ETag.",
        tag=TAG,
        answers=(
            Answer(200, "The settings", "WidgetSettingsView"),
            Answer(404, "Unknown widget", "Problem", True),
            *_problems,
        ),
        headers=_etag_header,
    ),
)
def get_widget(req: func.HttpRequest) -> func.HttpResponse:
    """One widget's settings with its ETag."""
    found = get_service().settings.get_widget(path_id(req, "widgetId"))
    return _settings_response(widget_view(found.value), found.etag)


@admin_endpoint(
    Operation(
        name="manage_put_widget",
        method="PUT",
        route=ROUTE,
        auth_level=ADMIN,
        summary="Create (201) or replace (200) a widget's settings; honours If-Match and "
        "If-None-Match: *.",
        tag=TAG,
        body="WidgetSettingsBody",
        answers=(
            Answer(200, "Replaced", "WidgetSettingsView"),
            Answer(201, "Created", "WidgetSettingsView"),
            Answer(412, "Precondition failed", "Problem", True),
            Answer(413, "Body over 64 KiB, or authentication too large to store", "Problem", True),
            Answer(415, "Not JSON", "Problem", True),
            Answer(422, "Invalid settings", "Problem", True),
            *_problems,
        ),
        headers=_etag_header,
        request_headers=(*_if_match, *_if_none_match),
    ),
)
def put_widget(req: func.HttpRequest) -> func.HttpResponse:
    """Create or replace settings; omitted optional fields take their defaults."""
    widget_id = path_id(req, "widgetId")
    body = parse(req, schemas.WidgetSettingsBody)
    if body.widget_id is not None and body.widget_id != widget_id:
        raise InvalidInput((FieldProblem("widgetId", "must match the widget id in the path"),))
    saved, created = get_service().settings.put_widget(
        widget_from_body(widget_id, body),
        precondition(req.headers.get("if-match"), req.headers.get("if-none-match")),
    )
    return _settings_response(widget_view(saved.value), saved.etag, 201 if created else 200)


def _merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON merge patch of `patch` onto `target`."""
    if not isinstance(patch, dict):
        return patch
    merged = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = _merge_patch(merged.get(key), value)
    return merged


@admin_endpoint(
    Operation(
        name="manage_patch_widget",
        method="PATCH",
        route=ROUTE,
        auth_level=ADMIN,
        summary="Change some settings with a JSON merge patch; honours If-Match.",
        tag=TAG,
        body="WidgetSettingsBody",
        body_types=(MERGE_PATCH, JSON),
        answers=(
            Answer(200, "Updated", "WidgetSettingsView"),
            Answer(404, "Unknown widget", "Problem", True),
            Answer(412, "Precondition failed", "Problem", True),
            Answer(413, "Body over 64 KiB, or authentication too large to store", "Problem", True),
            Answer(415, "Not a merge patch", "Problem", True),
            Answer(422, "Invalid settings", "Problem", True),
            *_problems,
        ),
        headers=_etag_header,
        request_headers=_if_match,
    ),
)
def patch_widget(req: func.HttpRequest) -> func.HttpResponse:
    """Apply a merge patch; a member set to null returns to its default."""
    widget_id = path_id(req, "widgetId")
    patch = json_body(req, (MERGE_PATCH, JSON))
    if not isinstance(patch, dict):
        raise InvalidInput((FieldProblem("body", "a merge patch must be a JSON object"),))

    def apply(current: Any) -> Any:
        document = widget_view(current).model_dump(by_alias=True, mode="json")
        document.pop("updatedAt", None)
        merged = _merge_patch(document, patch)
        if merged.get("widgetId") != widget_id:
            raise InvalidInput((FieldProblem("widgetId", "must match the widget id in the path"),))
        return widget_from_body(widget_id, validate(schemas.WidgetSettingsBody, merged))

    saved = get_service().settings.update_widget(
        widget_id, apply, precondition(req.headers.get("if-match"))
    )
    return _settings_response(widget_view(saved.value), saved.etag)


@admin_endpoint(
    Operation(
        name="manage_delete_widget",
        method="DELETE",
        route=ROUTE,
        auth_level=ADMIN,
        summary="Delete a widget's settings; honours If-Match.",
        tag=TAG,
        answers=(
            Answer(204, "Deleted"),
            Answer(404, "Unknown widget", "Problem", True),
            Answer(412, "Precondition failed", "Problem", True),
            *_problems,
        ),
        request_headers=_if_match,
    ),
)
def delete_widget(req: func.HttpRequest) -> func.HttpResponse:
    """Delete the settings; the widget's links stop working."""
    get_service().settings.delete_widget(
        path_id(req, "widgetId"), precondition(req.headers.get("if-match"))
    )
    return no_content()
