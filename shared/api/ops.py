"""Operations routes: health, the OpenAPI document and the events' JSON Schema (anonymous)."""

from __future__ import annotations

import functools
import json
from typing import TYPE_CHECKING

import azure.functions as func

from shared.api.http import JSON, Answer, Operation, blueprint, endpoint, json_response
from shared.api.lazy import LazyModule
from shared.api.problems import SECURITY_HEADERS
from shared.wiring import get_service

if TYPE_CHECKING:
    from shared.api import schemas
else:
    # The contract models are built on first use, not with the app (docs/performance.md).
    schemas = LazyModule("shared.api.schemas")


bp = blueprint()

ANONYMOUS = func.AuthLevel.ANONYMOUS
TAG = "Operations"


@endpoint(
    bp,
    Operation(
        name="health",
        method="GET",
        route="health",
        auth_level=ANONYMOUS,
        summary="200 when storage answers, 503 (with Retry-After) when it does not.",
        tag=TAG,
        answers=(
            Answer(200, "Healthy", "HealthView"),
            Answer(503, "Storage unavailable", "Problem", True),
        ),
    ),
)
def health(req: func.HttpRequest) -> func.HttpResponse:
    """Check that Table storage answers."""
    get_service().store.ping()
    return json_response(schemas.HealthView(status="ok"))


@endpoint(
    bp,
    Operation(
        name="openapi",
        method="GET",
        route="openapi.json",
        auth_level=ANONYMOUS,
        summary="This API's OpenAPI 3.1 document.",
        tag=TAG,
        answers=(Answer(200, "The OpenAPI document"),),
    ),
)
def openapi(req: func.HttpRequest) -> func.HttpResponse:
    """The OpenAPI document generated from the same models that validate requests."""
    return func.HttpResponse(openapi_document(), headers=dict(SECURITY_HEADERS), mimetype=JSON)


@functools.cache
def openapi_document() -> str:
    """The OpenAPI document as JSON, built on the first request for it (every operation is
    registered by then: function_app imports every blueprint before serving)."""
    # Imported here: generating JSON schemas is for this route only.
    from shared.api.openapi import build_openapi

    return json.dumps(build_openapi())


# The media type of a JSON Schema document (the JSON Schema specification registers it).
SCHEMA_JSON = "application/schema+json"


@endpoint(
    bp,
    Operation(
        name="events_schema",
        method="GET",
        route="events.schema.json",
        auth_level=ANONYMOUS,
        summary="The JSON Schema (draft 2020-12) of the integration events and of each "
        "event's data (docs/events.md).",
        tag=TAG,
        answers=(Answer(200, "The JSON Schema document"),),
    ),
)
def events_schema(req: func.HttpRequest) -> func.HttpResponse:
    """The events' JSON Schema, generated from the models that describe them."""
    # Imported here, like the OpenAPI document's builder: only this route needs it.
    from shared.api.event_schema import event_schema

    return func.HttpResponse(
        json.dumps(event_schema()), headers=dict(SECURITY_HEADERS), mimetype=SCHEMA_JSON
    )
