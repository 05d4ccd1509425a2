"""Operations routes: health, the OpenAPI document and the events' JSON Schema (anonymous)."""

from __future__ import annotations

import json

import azure.functions as func

from shared.api.event_schema import event_schema
from shared.api.http import JSON, Answer, Operation, blueprint, endpoint, json_response
from shared.api.openapi import build_openapi
from shared.api.problems import SECURITY_HEADERS
from shared.api.schemas import HealthView, Problem
from shared.wiring import get_service

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
            Answer(200, "Healthy", HealthView),
            Answer(503, "Storage unavailable", Problem, True),
        ),
    ),
)
def health(req: func.HttpRequest) -> func.HttpResponse:
    """Check that Table storage answers."""
    get_service().store.ping()
    return json_response(HealthView(status="ok"))


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
    return func.HttpResponse(
        json.dumps(build_openapi()), headers=dict(SECURITY_HEADERS), mimetype=JSON
    )


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
    return func.HttpResponse(
        json.dumps(event_schema()), headers=dict(SECURITY_HEADERS), mimetype=SCHEMA_JSON
    )
