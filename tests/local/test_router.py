"""The router over real HTTP: routing, request/response conversion, 404/405, handler errors."""

from __future__ import annotations

import logging

import httpx
import pytest

from tests.local.sample_app import PROBLEM_500


def test_route_parameter_and_query_reach_the_handler(client: httpx.Client) -> None:
    response = client.get("/api/items/42", params=[("x", "1"), ("x", "2"), ("y", "z")])
    assert response.status_code == 200
    # Repeated query parameters arrive folded into one value, as from the Functions host.
    assert response.json() == {"id": "42", "params": {"x": "1,2", "y": "z"}}


def test_literal_route_wins_over_a_parameter(client: httpx.Client) -> None:
    assert client.get("/api/items/new").json() == {"form": True}


def test_routes_ignore_case_and_a_trailing_slash(client: httpx.Client) -> None:
    assert client.get("/API/Items/Ab/").json()["id"] == "Ab"


def test_optional_int_parameter(client: httpx.Client) -> None:
    assert client.get("/api/pages/intro").json() == {"name": "intro", "page": None}
    assert client.get("/api/pages/intro/3").json() == {"name": "intro", "page": "3"}
    assert client.get("/api/pages/intro/three").status_code == 404


def test_post_only_route_answers_get_with_405_and_allow(client: httpx.Client) -> None:
    response = client.get("/api/items")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert response.headers["content-type"] == "application/problem+json"


def test_allow_lists_every_method_of_the_route(client: httpx.Client) -> None:
    response = client.delete("/api/words/hello")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, PUT"


def test_request_goes_in_and_response_comes_out_whole(client: httpx.Client) -> None:
    # A function-level route: keys are neither required nor rejected, as with Core Tools.
    response = client.post(
        "/api/items",
        params={"code": "any-key", "q": "1"},
        headers={"X-Trace": "t-1", "x-functions-key": "whatever"},
        content=b'{"name": "widget"}',
    )
    assert response.status_code == 201
    assert response.headers["location"] == "/api/items/7"
    assert response.headers.get_list("set-cookie") == ["a=1", "b=2"]
    assert response.headers["content-type"] == "application/json"
    echo = response.json()
    assert echo["method"] == "POST"
    assert echo["url"].endswith("/api/items?code=any-key&q=1")
    assert echo["params"] == {"code": "any-key", "q": "1"}
    assert echo["trace"] == "t-1"
    assert echo["body"] == '{"name": "widget"}'


def test_async_handler_is_awaited(client: httpx.Client) -> None:
    response = client.get("/api/words/hello")
    assert response.status_code == 200
    assert response.text == "HELLO"
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert client.put("/api/words/hi").text == "HI"


def test_alpha_constraint_rejects_digits(client: httpx.Client) -> None:
    assert client.get("/api/words/h3llo").status_code == 404


def test_a_string_return_value_is_a_text_response(client: httpx.Client) -> None:
    response = client.get("/api/plain")
    assert (response.status_code, response.text) == (200, "just text")


def test_handler_exception_is_a_500_problem_and_the_host_survives(
    client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="local.router"):
        response = client.get("/api/boom")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json() == PROBLEM_500
    assert any("the handler failed" in (record.exc_text or "") for record in caplog.records)
    assert client.get("/api/items/1").status_code == 200


def test_unknown_path_is_404(client: httpx.Client) -> None:
    assert client.get("/api/nothing/here").status_code == 404
    assert client.get("/nothing").status_code == 404
