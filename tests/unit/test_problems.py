"""shared.api.problems: every application error becomes one RFC 9457 answer, in one place."""

from __future__ import annotations

import inspect
import json
from typing import Any

import pytest

from shared import errors
from shared.api.problems import (
    PROBLEM_MEDIA_TYPE,
    internal_error_response,
    problem_for,
    problem_response,
)

FIELDS = (errors.FieldError("timeLimitMinutes", "must be at most 1440"),)

CASES: list[Any] = [
    pytest.param(errors.BadRequest("bad id"), 400, id="bad-request"),
    pytest.param(errors.Unauthorized("no token"), 401, id="unauthorized"),
    pytest.param(errors.AdminSignInRequired("no sign-in"), 401, id="admin-sign-in-required"),
    pytest.param(errors.Forbidden("no role"), 403, id="forbidden"),
    pytest.param(errors.NotFound("no widget"), 404, id="not-found"),
    pytest.param(errors.InvalidTransition("closed"), 409, id="invalid-transition"),
    pytest.param(errors.Conflict("other widget"), 409, id="conflict"),
    pytest.param(errors.ReconnectUnavailable(None), 410, id="reconnect-unavailable"),
    pytest.param(errors.PreconditionFailed("etag"), 412, id="precondition-failed"),
    pytest.param(errors.PayloadTooLarge("big"), 413, id="payload-too-large"),
    pytest.param(errors.TooLargeToStore("64 KiB", FIELDS), 413, id="too-large-to-store"),
    pytest.param(errors.UnsupportedMediaType("text/plain"), 415, id="unsupported-media-type"),
    pytest.param(errors.ValidationFailed(FIELDS), 422, id="validation-failed"),
    pytest.param(errors.StorageRefused("InvalidInput"), 422, id="storage-refused"),
    pytest.param(errors.StorageUnavailable("down"), 503, id="storage-unavailable"),
    pytest.param(errors.ConcurrencyExhausted("busy"), 503, id="concurrency-exhausted"),
    pytest.param(errors.AdminSignInMisconfigured("auth off"), 503, id="admin-sign-in-off"),
    pytest.param(errors.Misconfigured("wrong setting"), 503, id="misconfigured"),
]


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
        for _, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, errors.ChatReconnectError) and cls is not errors.ChatReconnectError
    ]
    covered = {type(case.values[0]) for case in CASES}
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
    failure = errors.ValidationFailed(
        (
            errors.FieldError("timeLimitMinutes", "must be at most 1440"),
            errors.FieldError("portalUrl", "is required when reconnectEnabled is true"),
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
    _, plain, _ = problem_for(errors.BadRequest("The body is not valid JSON."))
    assert "errors" not in plain
    _, named, _ = problem_for(
        errors.BadRequest("bad id", (errors.FieldError("widgetId", "must match"),))
    )
    assert named["errors"] == [{"field": "widgetId", "message": "must match"}]


def test_410_problems_share_type_and_title_whatever_the_redirect() -> None:
    answers = [
        problem_for(errors.ReconnectUnavailable(redirect))
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
    _, conflict, _ = problem_for(errors.Conflict("other widget"))
    assert "state" not in conflict


def test_401_asks_for_a_bearer_token() -> None:
    response = problem_response(errors.Unauthorized("no token"))
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "error", [errors.StorageUnavailable("down"), errors.ConcurrencyExhausted("busy")]
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
