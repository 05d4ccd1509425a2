"""The one place where application errors become RFC 9457 problem responses."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

import azure.functions as func

from shared.api import errors as request_errors
from shared.domain import errors

logger = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"
RETRY_AFTER_SECONDS = 5
# A wrong setting lasts until an operator fixes it and the app restarts.
MISCONFIGURED_RETRY_AFTER_SECONDS = 60
# On every API answer: answers carry reconnect IDs and conversation state, so no browser or
# proxy may keep them, and no browser may sniff a JSON body into something it renders.
SECURITY_HEADERS: Mapping[str, str] = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}

# (status, slug, title) per error class; the most specific class listed first wins.
_PROBLEMS: list[tuple[type[errors.ChatReconnectError], int, str, str]] = [
    (request_errors.MalformedRequest, 400, "bad-request", "The request is malformed"),
    (errors.InvalidCustomerToken, 401, "unauthorized", "A valid customer token is required"),
    (
        request_errors.AdminSignInRequired,
        401,
        "admin-sign-in-required",
        "An admin sign-in is required",
    ),
    (request_errors.Forbidden, 403, "forbidden", "The caller lacks the required role"),
    (errors.UnknownResource, 404, "not-found", "Not found"),
    (errors.InvalidTransition, 409, "invalid-transition", "The event does not apply now"),
    (errors.StateConflict, 409, "conflict", "Conflicts with the current state"),
    (errors.LinkUnavailable, 410, "reconnect-unavailable", "Reconnect is not available"),
    (errors.PreconditionMismatch, 412, "precondition-failed", "Precondition failed"),
    (request_errors.BodyTooLarge, 413, "payload-too-large", "The body is too large"),
    (errors.TooLargeToStore, 413, "too-large-to-store", "Too large to store"),
    (
        request_errors.UnsupportedContentType,
        415,
        "unsupported-media-type",
        "Unsupported content type",
    ),
    (errors.InvalidInput, 422, "validation-failed", "The request is not valid"),
    (errors.StorageRefused, 422, "storage-refused", "Storage refused the value"),
    (errors.StorageUnavailable, 503, "storage-unavailable", "Storage is unavailable"),
    (
        request_errors.AdminSignInMisconfigured,
        503,
        "admin-sign-in-misconfigured",
        "Admin sign-in is not configured correctly",
    ),
    (request_errors.Misconfigured, 503, "misconfigured", "The service is not configured correctly"),
]


def problem_type(slug: str) -> str:
    """The problem `type` URI for a slug."""
    return f"urn:chat-reconnect:problem:{slug}"


def _in_wire_terms(error: errors.ChatReconnectError) -> errors.ChatReconnectError:
    """The error as the HTTP contract tells it: domain errors that concern a request field
    or header are worded with the wire's names."""
    if isinstance(error, errors.CustomerRequired):
        return errors.InvalidInput((errors.FieldProblem("customerId", error.detail),))
    if isinstance(error, errors.VersionNotNamed):
        return errors.PreconditionMismatch(
            "If-Match does not match the current ETag; read it again."
        )
    return error


def problem_for(error: errors.ChatReconnectError) -> tuple[int, dict[str, Any], dict[str, str]]:
    """(status, body, extra headers) answering an application error."""
    error = _in_wire_terms(error)
    status, slug, title = next(
        ((status, slug, title) for cls, status, slug, title in _PROBLEMS if isinstance(error, cls)),
        (500, "internal", "Internal error"),
    )
    body: dict[str, Any] = {
        "type": problem_type(slug),
        "title": title,
        "status": status,
        "detail": error.detail,
    }
    headers: dict[str, str] = {}
    if (
        isinstance(
            error,
            request_errors.MalformedRequest | errors.InvalidInput | errors.TooLargeToStore,
        )
        and error.errors
    ):
        body["errors"] = [{"field": e.field, "message": e.message} for e in error.errors]
    if isinstance(error, errors.InvalidTransition | errors.StateConflict) and error.state:
        body["state"] = error.state
    if isinstance(error, errors.LinkUnavailable):
        body["redirectUrl"] = error.redirect_url
    if isinstance(error, errors.InvalidCustomerToken):
        headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
    if isinstance(error, request_errors.AdminSignInRequired):
        headers["WWW-Authenticate"] = "Bearer"
    if isinstance(error, errors.StorageUnavailable):
        headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    if isinstance(error, request_errors.Misconfigured):
        headers["Retry-After"] = str(MISCONFIGURED_RETRY_AFTER_SECONDS)
    return status, body, headers


def problem_response(error: errors.ChatReconnectError) -> func.HttpResponse:
    """The HTTP answer to an application error."""
    status, body, headers = problem_for(error)
    return func.HttpResponse(
        json.dumps(body),
        status_code=status,
        headers={**SECURITY_HEADERS, **headers},
        mimetype=PROBLEM_MEDIA_TYPE,
    )


def internal_error_response() -> func.HttpResponse:
    """The answer to a bug: a generic 500 that leaks nothing (the traceback goes to the log)."""
    body = {
        "type": problem_type("internal"),
        "title": "Internal error",
        "status": 500,
        "detail": "An unexpected error occurred.",
    }
    return func.HttpResponse(
        json.dumps(body),
        status_code=500,
        headers=dict(SECURITY_HEADERS),
        mimetype=PROBLEM_MEDIA_TYPE,
    )
