"""shared.api.problems: every application error becomes one RFC 9457 answer, in one place."""

from __future__ import annotations

import inspect
import json
from typing import Any

import pytest

from shared.api import errors as request_errors
from shared.api.problems import (
    PROBLEM_MEDIA_TYPE,
    internal_error_response,
    problem_for,
    problem_response,
)
from shared.domain import errors

FIELDS = (errors.FieldProblem("timeLimitMinutes", "must be at most 1440"),)

CASES: list[Any] = [
    pytest.param(request_errors.MalformedRequest("bad id"), 400, id="bad-request"),
    pytest.param(errors.InvalidCustomerToken("no token"), 401, id="unauthorized"),
    pytest.param(
        request_errors.AdminSignInRequired("no sign-in"), 401, id="admin-sign-in-required"
    ),
    pytest.param(request_errors.Forbidden("no role"), 403, id="forbidden"),
    pytest.param(errors.UnknownResource("no widget"), 404, id="not-found"),
    pytest.param(errors.UnknownWidget("w"), 404, id="unknown-widget"),
    pytest.param(errors.UnknownConversation("c"), 404, id="unknown-conversation"),
    pytest.param(errors.NotAnAuthenticatedWidget("w"), 404, id="not-an-authenticated-widget"),
    pytest.param(errors.InvalidTransition("closed"), 409, id="invalid-transition"),
    pytest.param(errors.StateConflict("other widget"), 409, id="conflict"),
    pytest.param(errors.RegistrationConflict("other agent", "active"), 409, id="registration"),
    pytest.param(errors.NoLinkToInsert("reconnection off", "active"), 409, id="no-link"),
    pytest.param(errors.LinkUnavailable(None), 410, id="reconnect-unavailable"),
    pytest.param(errors.PreconditionMismatch("etag"), 412, id="precondition-failed"),
    pytest.param(request_errors.BodyTooLarge("big"), 413, id="payload-too-large"),
    pytest.param(errors.TooLargeToStore("64 KiB", FIELDS), 413, id="too-large-to-store"),
    pytest.param(
        request_errors.UnsupportedContentType("text/plain"), 415, id="unsupported-media-type"
    ),
    pytest.param(errors.InvalidInput(FIELDS), 422, id="validation-failed"),
    pytest.param(errors.StorageRefused("InvalidInput"), 422, id="storage-refused"),
    pytest.param(errors.StorageUnavailable("down"), 503, id="storage-unavailable"),
    pytest.param(errors.WriteContention("busy"), 503, id="concurrency-exhausted"),
    pytest.param(request_errors.AdminSignInMisconfigured("auth off"), 503, id="admin-sign-in-off"),
    pytest.param(request_errors.Misconfigured("wrong setting"), 503, id="misconfigured"),
]


# Domain errors the contract words with its own (wire) names: (error, status, detail, errors).
WIRE_WORDED: list[Any] = [
    pytest.param(
        errors.CustomerRequired(),
        422,
        "Invalid value for: customerId",
        [{"field": "customerId", "message": "is required on an authenticated widget"}],
        id="customer-required",
    ),
    pytest.param(
        errors.VersionNotNamed(),
        412,
        "If-Match does not match the current ETag; read it again.",
        None,
        id="version-not-named",
    ),
]


@pytest.mark.parametrize(("error", "status", "detail", "fields"), WIRE_WORDED)
def test_domain_errors_about_a_field_or_header_are_told_in_wire_terms(
    error: errors.ChatReconnectError, status: int, detail: str, fields: Any
) -> None:
    answered, body, _ = problem_for(error)
    assert (answered, body["status"], body["detail"]) == (status, status, detail)
    assert body.get("errors") == fields


@pytest.mark.parametrize(("error", "status"), CASES)
def test_each_error_class_has_its_status(error: errors.ChatReconnectError, status: int) -> None:
    answered, body, _ = problem_for(error)
    assert answered == status
    assert body["status"] == status
    assert body["type"].startswith("urn:chat-reconnect:problem:")
    assert body["title"]
    assert body["detail"] == error.detail


@pytest.mark.parametrize(("error", "status"), CASES)
def test_problem_response_is_problem_json(error: errors.ChatReconnectError, status: int) -> None:
    response = problem_response(error)
    assert response.status_code == status
    assert response.mimetype == PROBLEM_MEDIA_TYPE
    body = json.loads(response.get_body())
    assert {"type", "title", "status", "detail"} <= set(body)
    assert body["status"] == status


def test_every_application_error_class_is_mapped() -> None:
    """A new error class that nobody mapped would answer 500: catch it here."""
    classes = [
        cls
        for module in (errors, request_errors)
        for _, cls in inspect.getmembers(module, inspect.isclass)
        if issubclass(cls, errors.ChatReconnectError) and cls is not errors.ChatReconnectError
    ]
    covered = {type(case.values[0]) for case in [*CASES, *WIRE_WORDED]}
    assert set(classes) == covered


def test_an_unmapped_error_is_a_generic_500() -> None:
    status, body, headers = problem_for(errors.ChatReconnectError("oops"))
    assert status == 500
    assert body["status"] == 500
    assert headers.get("Retry-After") is None


def test_distinct_statuses_have_distinct_types() -> None:
    types: dict[str, int] = {}
    for case in CASES:
        status, body, _ = problem_for(case.values[0])
        assert types.setdefault(body["type"], status) == status


def test_validation_errors_name_each_field() -> None:
    failure = errors.InvalidInput(
        (
            errors.FieldProblem("timeLimitMinutes", "must be at most 1440"),
            errors.FieldProblem("portalUrl", "is required when reconnectEnabled is true"),
        )
    )
    _, body, _ = problem_for(failure)
    assert body["errors"] == [
        {"field": "timeLimitMinutes", "message": "must be at most 1440"},
        {"field": "portalUrl", "message": "is required when reconnectEnabled is true"},
    ]
    assert "timeLimitMinutes" in body["detail"]
    assert "portalUrl" in body["detail"]


def test_bad_request_lists_errors_only_when_it_has_some() -> None:
    _, plain, _ = problem_for(request_errors.MalformedRequest("The body is not valid JSON."))
    assert "errors" not in plain
    _, named, _ = problem_for(
        request_errors.MalformedRequest("bad id", (errors.FieldProblem("widgetId", "must match"),))
    )
    assert named["errors"] == [{"field": "widgetId", "message": "must match"}]


def test_410_problems_share_type_and_title_whatever_the_redirect() -> None:
    answers = [
        problem_for(errors.LinkUnavailable(redirect))
        for redirect in (None, "https://contoso.example/sorry", "https://other.example/")
    ]
    assert {status for status, _, _ in answers} == {410}
    assert len({body["type"] for _, body, _ in answers}) == 1
    assert len({body["title"] for _, body, _ in answers}) == 1
    assert len({body["detail"] for _, body, _ in answers}) == 1
    assert [body["redirectUrl"] for _, body, _ in answers] == [
        None,
        "https://contoso.example/sorry",
        "https://other.example/",
    ]


def test_409_invalid_transition_carries_the_state() -> None:
    _, body, _ = problem_for(errors.InvalidTransition("wrap_up"))
    assert body["state"] == "wrap_up"
    _, conflict, _ = problem_for(errors.StateConflict("other widget"))
    assert "state" not in conflict


def test_401_asks_for_a_bearer_token() -> None:
    response = problem_response(errors.InvalidCustomerToken("no token"))
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "error", [errors.StorageUnavailable("down"), errors.WriteContention("busy")]
)
def test_503_has_retry_after(error: errors.ChatReconnectError) -> None:
    response = problem_response(error)
    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) > 0


def test_only_401_and_503_add_their_headers() -> None:
    for case in CASES:
        status, _, headers = problem_for(case.values[0])
        assert ("WWW-Authenticate" in headers) == (status == 401)
        assert ("Retry-After" in headers) == (status == 503)


def test_internal_error_leaks_nothing() -> None:
    response = internal_error_response()
    assert response.status_code == 500
    assert response.mimetype == PROBLEM_MEDIA_TYPE
    body = json.loads(response.get_body())
    assert body == {
        "type": "urn:chat-reconnect:problem:internal",
        "title": "Internal error",
        "status": 500,
        "detail": "An unexpected error occurred.",
    }


def test_too_large_to_store_names_the_field() -> None:
    _, body, _ = problem_for(errors.TooLargeToStore("64 KiB", FIELDS))
    assert body["errors"] == [{"field": "timeLimitMinutes", "message": "must be at most 1440"}]
