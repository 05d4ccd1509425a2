"""The local Functions host: routing, request/response conversion, errors, timers, static files."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import azure.functions as func
import httpx
import pytest
from starlette.testclient import TestClient

from local.host import (
    HostError,
    TimerFunction,
    TimerScheduler,
    build_app,
    compile_route,
    is_past_due,
    next_occurrence,
    read_route_prefix,
    serve_in_thread,
)
from tests.local.sample_app import Calls, make_app

EVERY_SECOND = "* * * * * *"
PROBLEM_500 = {"type": "about:blank", "title": "Internal Server Error", "status": 500}


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll ``condition`` until it holds, failing the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def calls() -> Calls:
    return Calls()


@pytest.fixture(scope="module")
def client(calls: Calls) -> Iterator[httpx.Client]:
    """The sample app behind a real uvicorn server on a free port, over real HTTP."""
    app = build_app(make_app(calls), environ={"SAMPLE_SCHEDULE": EVERY_SECOND})
    with (
        serve_in_thread(app) as base_url,
        httpx.Client(base_url=base_url, trust_env=False, timeout=10) as http,
    ):
        yield http


# ----------------------------------------------------------------- over real HTTP


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
    with caplog.at_level(logging.ERROR, logger="local.host"):
        response = client.get("/api/boom")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json() == PROBLEM_500
    assert any("the handler failed" in (record.exc_text or "") for record in caplog.records)
    assert client.get("/api/items/1").status_code == 200


def test_unknown_path_is_404(client: httpx.Client) -> None:
    assert client.get("/api/nothing/here").status_code == 404
    assert client.get("/nothing").status_code == 404


def test_timer_runs_on_its_schedule_with_a_timer_request(
    calls: Calls, client: httpx.Client
) -> None:
    wait_until(lambda: len(calls.ticks) >= 2)
    for timer in calls.ticks:
        assert isinstance(timer, func.TimerRequest)
        assert isinstance(timer.past_due, bool)
        assert set(timer.schedule_status) == {"Last", "Next", "LastUpdated"}


def test_run_on_startup_runs_once(calls: Calls, client: httpx.Client) -> None:
    wait_until(lambda: calls.startup_runs >= 1)
    assert calls.startup_runs == 1


# ------------------------------------------------------------- without a server


def test_unresolvable_schedule_setting_fails_at_startup(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MISSING", raising=False)
    app = func.FunctionApp()

    @app.timer_trigger(schedule="%MISSING%", arg_name="timer")
    def orphan(timer: func.TimerRequest) -> None:
        pass

    with pytest.raises(HostError, match=r"%MISSING%.*set MISSING"):
        build_app(app, environ={})


def test_schedule_setting_falls_back_to_the_process_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SAMPLE_SCHEDULE", "*/5 * * * * *")
    app = build_app(make_app(Calls()), environ={})
    schedules = {timer.name: timer.schedule for timer in app.state.functions.timers}
    assert schedules["tick"] == "*/5 * * * * *"


def test_a_bad_schedule_fails_at_startup() -> None:
    with pytest.raises(HostError, match="not an NCRONTAB expression"):
        build_app(make_app(Calls()), environ={"SAMPLE_SCHEDULE": "every minute"})


def test_a_handler_needing_another_binding_is_refused() -> None:
    app = func.FunctionApp()

    @app.route(route="x")
    def needs_context(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
        return func.HttpResponse("")

    with pytest.raises(HostError, match="'context'"):
        build_app(app)


def test_a_handler_without_its_trigger_parameter_is_refused() -> None:
    app = func.FunctionApp()

    @app.route(route="x")  # the trigger is named "req" by default
    def misnamed(request: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("")

    with pytest.raises(HostError, match="no parameter 'req'"):
        build_app(app)


def test_one_app_can_be_hosted_twice() -> None:
    # get_functions() raises when called twice; the host must call it once per app.
    function_app = make_app(Calls())
    environ = {"SAMPLE_SCHEDULE": EVERY_SECOND}
    first, second = build_app(function_app, environ), build_app(function_app, environ)
    assert first.state.functions.http == second.state.functions.http


def test_route_prefix_is_configurable() -> None:
    app = build_app(make_app(Calls()), {"SAMPLE_SCHEDULE": EVERY_SECOND}, route_prefix="v1")
    http = TestClient(app)
    assert http.get("/v1/items/5").json()["id"] == "5"
    assert http.get("/api/items/5").status_code == 404


def test_route_prefix_comes_from_host_json(tmp_path: Path) -> None:
    host_json = tmp_path / "host.json"
    assert read_route_prefix(host_json) == "api"
    host_json.write_text(json.dumps({"version": "2.0"}))
    assert read_route_prefix(host_json) == "api"
    host_json.write_text(json.dumps({"extensions": {"http": {"routePrefix": ""}}}))
    assert read_route_prefix(host_json) == ""
    host_json.write_text(json.dumps({"extensions": {"http": {"routePrefix": "/v2/"}}}))
    assert read_route_prefix(host_json) == "v2"


def test_static_files_are_served_outside_the_route_prefix(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("<h1>demo</h1>")
    (tmp_path / "widget.js").write_text("export {};")
    app = build_app(make_app(Calls()), {"SAMPLE_SCHEDULE": EVERY_SECOND}, static_dir=tmp_path)
    http = TestClient(app)
    assert http.get("/").text == "<h1>demo</h1>"
    assert http.get("/widget.js").text == "export {};"
    assert http.get("/api/items/3").json()["id"] == "3"
    assert http.get("/api/index.html").status_code == 404
    assert http.get("/missing.css").status_code == 404


@pytest.mark.parametrize(
    ("template", "path", "expected"),
    [
        ("items/{id}", "/api/items/a-b", {"id": "a-b"}),
        ("items/{id}", "/api/items/a/b", None),
        ("items/{id}", "/api/items", None),
        ("items/{id:int}", "/api/items/-12", {"id": "-12"}),
        ("items/{id:int}", "/api/items/1x", None),
        ("items/{id:int?}", "/api/items", {}),
        ("items/{name:alpha}", "/api/items/Abc", {"name": "Abc"}),
        (
            "items/{id:guid}",
            "/api/items/0f8fad5b-d9cb-469f-a165-70867728950e",
            {"id": "0f8fad5b-d9cb-469f-a165-70867728950e"},
        ),
        ("items/{id:guid}", "/api/items/not-a-guid", None),
        ("items/{id:regex(^[a-z]{{2}}[0-9]+$)}", "/api/items/ab12", {"id": "ab12"}),
        ("items/{id:regex(^[a-z]{{2}}[0-9]+$)}", "/api/items/a12", None),
        ("items/{id:int:min(1)}", "/api/items/3", {"id": "3"}),
        ("items/{page=1}", "/api/items", {"page": "1"}),
        ("files/{*rest}", "/api/files/a/b.txt", {"rest": "a/b.txt"}),
        ("files/{name}.{ext}", "/api/files/report.pdf", {"name": "report", "ext": "pdf"}),
        ("{id?}", "/api", {}),
        ("{id?}", "/api/7", {"id": "7"}),
        ("items", "/apiitems", None),
    ],
)
def test_route_templates(template: str, path: str, expected: dict[str, str] | None) -> None:
    assert compile_route(template, "api").match(path) == expected


def test_next_occurrence_reads_seconds_first() -> None:
    moment = datetime(2024, 1, 1, 0, 0, 10, tzinfo=UTC)
    assert next_occurrence("*/30 * * * * *", moment) == moment.replace(second=30)
    assert next_occurrence("0 */5 * * * *", moment) == moment.replace(minute=5, second=0)


def test_a_run_that_overran_the_next_occurrence_catches_up_once_past_due() -> None:
    skew = timedelta(0)
    past_due: list[bool] = []

    def slow(timer: func.TimerRequest) -> None:
        nonlocal skew
        past_due.append(timer.past_due)
        if len(past_due) == 1:
            skew = timedelta(seconds=2.5)  # as if this first run had taken 2.5 s

    scheduler = TimerScheduler(
        [TimerFunction("slow", EVERY_SECOND, "timer", slow, False, False)],
        clock=lambda: datetime.now(UTC) + skew,
    )

    async def scenario() -> None:
        scheduler.start()
        deadline = time.monotonic() + 10
        while len(past_due) < 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        await scheduler.stop()

    asyncio.run(scenario())
    # The two occurrences missed during the long run make one immediate, past-due run.
    assert past_due[:3] == [False, True, False]


def test_a_run_more_than_a_second_late_is_past_due() -> None:
    scheduled = datetime(2024, 1, 1, tzinfo=UTC)
    assert not is_past_due(scheduled, scheduled + timedelta(milliseconds=900))
    assert is_past_due(scheduled, scheduled + timedelta(milliseconds=1100))
