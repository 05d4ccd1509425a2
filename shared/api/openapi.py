"""The OpenAPI 3.1 document, generated from the recorded operations and their pydantic models."""

from __future__ import annotations

import re
from typing import Any

import azure.functions as func
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from shared.api import schemas
from shared.api.http import JSON, OPERATIONS, ModelName, Operation
from shared.api.ids import ID_PATTERN
from shared.api.problems import PROBLEM_MEDIA_TYPE

_PARAM = re.compile(r"\{(\w+)(?::[^}]*)?\??\}")
_ID_PARAMS = {"widgetId", "conversationId", "agentId"}
REF_TEMPLATE = "#/components/schemas/{model}"


def model(name: ModelName) -> type[BaseModel]:
    """The contract model an operation names; LookupError if shared.api.schemas has none."""
    found = getattr(schemas, name, None)
    if not (isinstance(found, type) and issubclass(found, BaseModel)):
        raise LookupError(f"shared.api.schemas has no model named {name!r}")
    return found


def _models(operations: list[Operation]) -> list[tuple[type[BaseModel], Any]]:
    pairs: dict[tuple[type[BaseModel], str], None] = {}
    for operation in operations:
        if operation.body is not None:
            pairs[(model(operation.body), "validation")] = None
        for answer in operation.answers:
            if answer.model is not None:
                pairs[(model(answer.model), "serialization")] = None
    return list(pairs)


def _parameters(operation: Operation) -> list[dict[str, Any]]:
    parameters: list[dict[str, Any]] = []
    for name in _PARAM.findall(operation.route):
        schema: dict[str, Any] = {"type": "string"}
        if name in _ID_PARAMS:
            schema["pattern"] = ID_PATTERN
        else:
            schema["maxLength"] = 256
        parameters.append({"name": name, "in": "path", "required": True, "schema": schema})
    for name, description, schema in operation.query:
        parameters.append(
            {
                "name": name,
                "in": "query",
                "required": False,
                "description": description,
                "schema": schema,
            }
        )
    for name, schema in operation.request_headers:
        parameters.append({"name": name, "in": "header", "required": False, "schema": schema})
    return parameters


def build_openapi(operations: list[Operation] | None = None) -> dict[str, Any]:
    """The OpenAPI 3.1 document describing every recorded operation."""
    operations = OPERATIONS if operations is None else operations
    keys, definitions = models_json_schema(_models(operations), ref_template=REF_TEMPLATE)
    schemas = definitions.get("$defs", {})
    paths: dict[str, dict[str, Any]] = {}
    for operation in operations:
        path = "/api/" + _PARAM.sub(lambda m: "{" + m.group(1) + "}", operation.route)
        entry: dict[str, Any] = {
            "operationId": operation.name,
            "summary": operation.summary,
            "tags": [operation.tag],
            "parameters": _parameters(operation),
            "responses": {},
        }
        if operation.security is not None:
            entry["security"] = list(operation.security)
        elif operation.auth_level is not func.AuthLevel.ANONYMOUS:
            entry["security"] = [{"functionKey": []}, {"functionKeyQuery": []}]
        elif operation.bearer:
            # Required on authenticated widgets only, so the empty alternative stays.
            entry["security"] = [{}, {"customerToken": []}]
        else:
            entry["security"] = []
        if operation.body is not None:
            ref = keys[(model(operation.body), "validation")]
            entry["requestBody"] = {
                "required": True,
                "content": {media: {"schema": ref} for media in operation.body_types},
            }
        for answer in operation.answers:
            response: dict[str, Any] = {"description": answer.description}
            if answer.model is not None:
                media = PROBLEM_MEDIA_TYPE if answer.problem else JSON
                response["content"] = {
                    media: {"schema": keys[(model(answer.model), "serialization")]}
                }
            if answer.status == 503:
                response["headers"] = {
                    "Retry-After": {"schema": {"type": "integer"}, "description": "Seconds"}
                }
            if answer.status == 401:
                response["headers"] = {
                    "WWW-Authenticate": {"schema": {"type": "string"}, "description": "Bearer"}
                }
            if answer.status in (200, 201) and operation.headers:
                response["headers"] = {
                    name: {"schema": {"type": "string"}, "description": description}
                    for name, description in operation.headers
                }
            entry["responses"][str(answer.status)] = response
        paths.setdefault(path, {})[operation.method.lower()] = entry
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Chat Reconnect",
            "version": "1.0.0",
            "description": "Reconnect a disconnected live-chat customer to the same "
            "conversation and agent within the widget's time limit.",
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "functionKey": {"type": "apiKey", "in": "header", "name": "x-functions-key"},
                "functionKeyQuery": {"type": "apiKey", "in": "query", "name": "code"},
                "customerToken": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                # The customer's JWT as Omnichannel's chat SDK sends it (no "Bearer ").
                "authenticatedUserToken": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "AuthenticatedUserToken",
                },
            },
        },
    }
