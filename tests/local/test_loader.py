"""Loading an app's functions: schedules, settings, refused bindings, get_functions once."""

from __future__ import annotations

import azure.functions as func
import pytest

from local.app import build_app
from local.errors import HostError
from tests.local.sample_app import EVERY_SECOND, Calls, make_app


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
