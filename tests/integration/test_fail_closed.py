"""A bad signing key fails closed, at handler level (issue 12, item 1).

A current or previous key that is missing where required, short, or still the text of an
unresolved Key Vault reference is never used: every registered HTTP function answers 503
problem+json with Retry-After, health fails, the timer does nothing, and one log line names
the setting. tests/e2e/test_fail_closed_http.py checks the same through a real local host.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import azure.functions as func
import pytest
from azure.functions.decorators.http import HttpTrigger
from azure.functions.decorators.timer import TimerTrigger
from azure.functions.timer import TimerRequest

from shared.api.problems import PROBLEM_MEDIA_TYPE, problem_type
from shared.config import reload_settings
from shared.domain.conversation import Event, EventType, State
from shared.domain.settings import WidgetSettings
from shared.services.app import App
from tests.conftest import FakeClock, decode, fresh_function_app, http_request

REFERENCE = "@Microsoft.KeyVault(SecretUri=https://kv-contoso.vault.azure.net/secrets/key/)"
SHORT_KEY = "short-secret-value"
GOOD_KEY = "g" * 40

# (id, environment changes, setting named, why): both settings, all three defect kinds.
# The previous key is optional, so only the current one can be missing where required.
DEFECTS = [
    (
        "current-missing",
        {"RECONNECT_SIGNING_KEY": "", "TABLES_ENDPOINT": "https://a.table.core.windows.net"},
        "RECONNECT_SIGNING_KEY",
        "is required",
    ),
    ("current-short", {"RECONNECT_SIGNING_KEY": SHORT_KEY}, "RECONNECT_SIGNING_KEY", "at least"),
    (
        "current-unresolved",
        {"RECONNECT_SIGNING_KEY": REFERENCE},
        "RECONNECT_SIGNING_KEY",
        "unresolved Key Vault reference",
    ),
    (
        "previous-short",
        {"RECONNECT_SIGNING_KEY": GOOD_KEY, "RECONNECT_PREVIOUS_SIGNING_KEY": SHORT_KEY},
        "RECONNECT_PREVIOUS_SIGNING_KEY",
        "at least",
    ),
    (
        "previous-unresolved",
        {"RECONNECT_SIGNING_KEY": GOOD_KEY, "RECONNECT_PREVIOUS_SIGNING_KEY": REFERENCE},
        "RECONNECT_PREVIOUS_SIGNING_KEY",
        "unresolved Key Vault reference",
    ),
]


@pytest.fixture(params=DEFECTS, ids=[defect[0] for defect in DEFECTS])
def defect(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, str]]:
    """The process environment with one bad key, read afresh; (setting, why) it is wrong."""
    _, changes, setting, why = request.param
    for name, value in changes.items():
        monkeypatch.setenv(name, value)
    reload_settings()
    try:
        yield setting, why
    finally:
        monkeypatch.undo()
        reload_settings()


def http_functions() -> list[tuple[str, str, str, func.HttpResponse]]:
    """(name, method, route, answer) of every registered HTTP function, ids filled in."""
    answers = []
    for function in fresh_function_app().get_functions():
        trigger = function.get_trigger()
        if not isinstance(trigger, HttpTrigger):
            continue
        method = str(trigger.methods[0]) if trigger.methods else "GET"
        method = method.split(".")[-1].upper()
        route = str(trigger.route)
        params = {name: "x1" for name in _route_params(route)}
        request = http_request(method, route, {}, route_params=params)
        answers.append(
            (function.get_function_name(), method, route, function.get_user_function()(request))
        )
    return answers


def _route_params(route: str) -> list[str]:
    return [part.strip("{}").split(":")[0] for part in route.split("/") if part.startswith("{")]


def test_every_route_answers_503_and_one_log_line_names_the_setting(
    defect: tuple[str, str], service: App, caplog: pytest.LogCaptureFixture
) -> None:
    """Even with a working service installed: the key is never used, no route serves."""
    setting, why = defect
    caplog.set_level(logging.INFO)
    for _ in range(2):
        answers = http_functions()
        assert len(answers) >= 17
        for name, method, route, response in answers:
            answer = decode(response)
            assert answer.status == 503, (name, method, route, answer.body)
            assert answer.media_type == PROBLEM_MEDIA_TYPE
            assert answer.body["type"] == problem_type("misconfigured")
            assert answer.body["status"] == 503
            assert int(answer.headers["retry-after"]) > 0
            # The public learns that something is wrong, not which secret.
            assert "KEY" not in answer.body["detail"]
    named = [record for record in caplog.records if setting in record.getMessage()]
    assert len(named) == 1, [record.getMessage() for record in caplog.records]
    assert named[0].levelno == logging.CRITICAL
    assert why in named[0].getMessage()
    assert not [record for record in caplog.records if record.exc_info]
    for value in (SHORT_KEY, GOOD_KEY, REFERENCE):  # never a key's value
        assert value not in caplog.text


def test_the_timer_does_nothing(
    defect: tuple[str, str],
    service: App,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A conversation past its reconnect deadline stays as it is; the timer raises nothing."""
    setting, _ = defect
    expired_conversation(service, clock)
    clock.advance(hours=1)
    caplog.set_level(logging.INFO)
    for _ in range(3):
        run_timer()
    assert service.conversations.get_conversation("c1").conversation.state is State.ACTIVE
    assert len([r for r in caplog.records if setting in r.getMessage()]) == 1
    assert not [r for r in caplog.records if "time limits enforced" in r.getMessage()]


def test_with_good_settings_the_same_timer_does_its_work(service: App, clock: FakeClock) -> None:
    """The control: the setup above is one the timer acts on."""
    expired_conversation(service, clock)
    run_timer()
    assert service.conversations.get_conversation("c1").conversation.state is State.WRAP_UP


def expired_conversation(service: App, clock: FakeClock) -> None:
    """c1: active, its customer gone, its one-minute reconnect deadline an hour past."""
    service.settings.put_widget(
        WidgetSettings("w1", True, 1, "https://contoso.example/chat"),
    )
    service.conversations.register("c1", "w1", "agent-1", None)
    service.conversations.apply_event("c1", Event(EventType.CUSTOMER_DISCONNECTED), None)
    clock.advance(hours=1)


def run_timer() -> None:
    """The registered timer function, called as the host calls it."""
    (timer,) = [
        f for f in fresh_function_app().get_functions() if isinstance(f.get_trigger(), TimerTrigger)
    ]
    timer.get_user_function()(TimerRequest(past_due=False))
