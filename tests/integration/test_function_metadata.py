"""The function metadata the Functions host reads: routes, methods, auth levels, the timer.

A fresh FunctionApp registers the same blueprints as function_app.py: `get_functions()`
may be called once per app, and the local-host fixture uses function_app's.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import fresh_function_app

ROOT = Path(__file__).resolve().parents[2]

EXPECTED_HTTP: dict[tuple[str, str], str] = {
    ("GET", "health"): "ANONYMOUS",
    ("GET", "openapi.json"): "ANONYMOUS",
    ("GET", "events.schema.json"): "ANONYMOUS",
    ("GET", "manage/widgets"): "FUNCTION",
    ("GET", "manage/widgets/{widgetId}"): "FUNCTION",
    ("PUT", "manage/widgets/{widgetId}"): "FUNCTION",
    ("PATCH", "manage/widgets/{widgetId}"): "FUNCTION",
    ("DELETE", "manage/widgets/{widgetId}"): "FUNCTION",
    ("PUT", "conversations/{conversationId}"): "FUNCTION",
    ("GET", "conversations/{conversationId}"): "FUNCTION",
    ("POST", "conversations/{conversationId}/events"): "FUNCTION",
    ("POST", "conversations/{conversationId}/quick-reply"): "FUNCTION",
    ("POST", "conversations/{conversationId}/reconnect-link/revoke"): "FUNCTION",
    ("GET", "agents/{agentId}/capacity"): "FUNCTION",
    ("GET", "widgets/{widgetId}/reconnect/{reconnectId}"): "ANONYMOUS",
    ("POST", "widgets/{widgetId}/reconnect/{reconnectId}"): "ANONYMOUS",
    ("POST", "widgets/{widgetId}/reconnect/{reconnectId}/decline"): "ANONYMOUS",
    ("GET", "widgets/{widgetId}/reconnectable"): "ANONYMOUS",
    ("GET", "livechatconnector/config/{orgId}/{widgetId}"): "ANONYMOUS",
    ("OPTIONS", "livechatconnector/config/{orgId}/{widgetId}"): "ANONYMOUS",
    ("GET", "livechatconnector/reconnect/{orgId}/{widgetId}/{reconnectId}"): "ANONYMOUS",
    ("OPTIONS", "livechatconnector/reconnect/{orgId}/{widgetId}/{reconnectId}"): "ANONYMOUS",
    (
        "GET",
        "livechatconnector/auth/reconnectablechats/{orgId}/{widgetId}/{requestId}",
    ): "ANONYMOUS",
    (
        "OPTIONS",
        "livechatconnector/auth/reconnectablechats/{orgId}/{widgetId}/{requestId}",
    ): "ANONYMOUS",
}


@pytest.fixture(scope="module")
def metadata() -> dict[str, dict[str, Any]]:
    """function name -> its function.json, as the worker would index it."""
    functions = fresh_function_app().get_functions()
    return {f.get_function_name(): json.loads(f.get_function_json()) for f in functions}


def http_triggers(metadata: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        binding
        for document in metadata.values()
        for binding in document["bindings"]
        if binding["type"] == "httpTrigger"
    ]


def test_function_app_registers_exactly_these_blueprints() -> None:
    """Keeps fresh_function_app() honest: function_app.py registers these blueprints, in order."""
    tree = ast.parse((ROOT / "function_app.py").read_text())
    registered: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.For) and isinstance(node.iter, ast.Tuple):
            registered += [ast.unparse(element) for element in node.iter.elts]
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "register_functions"
            and not isinstance(node.args[0], ast.Name)
        ):
            registered.append(ast.unparse(node.args[0]))
    assert registered == [
        "ops.bp",
        "manage.bp",
        "platform.bp",
        "widget.bp",
        "omnichannel.bp",
        "timers.bp",
        "events.bp",
    ]


def test_every_expected_route_exists_with_its_auth_level(
    metadata: dict[str, dict[str, Any]],
) -> None:
    found: dict[tuple[str, str], str] = {}
    for binding in http_triggers(metadata):
        assert len(binding["methods"]) == 1, binding
        key = (binding["methods"][0], binding["route"])
        assert key not in found, f"{key} registered twice"
        found[key] = binding["authLevel"]
    assert found == EXPECTED_HTTP


def test_manage_and_platform_routes_need_a_function_key(
    metadata: dict[str, dict[str, Any]],
) -> None:
    protected = [
        binding
        for binding in http_triggers(metadata)
        if binding["route"].startswith(("manage/", "conversations/", "agents/"))
    ]
    assert len(protected) == 11
    for binding in protected:
        assert binding["authLevel"] == "FUNCTION", binding


def test_widget_health_and_document_routes_are_anonymous(
    metadata: dict[str, dict[str, Any]],
) -> None:
    public = [
        binding
        for binding in http_triggers(metadata)
        if binding["route"].startswith("widgets/")
        or binding["route"] in ("health", "openapi.json", "events.schema.json")
    ]
    assert len(public) == 7
    for binding in public:
        assert binding["authLevel"] == "ANONYMOUS", binding


def test_no_route_is_under_the_reserved_admin_prefix(metadata: dict[str, dict[str, Any]]) -> None:
    for binding in http_triggers(metadata):
        route = binding["route"].lstrip("/")
        assert not route.lower().startswith("admin"), route
        assert not route.startswith("api/"), "the /api prefix is the host's, not the route's"


def test_every_http_function_answers_through_an_http_output(
    metadata: dict[str, dict[str, Any]],
) -> None:
    for name, document in metadata.items():
        types = [binding["type"] for binding in document["bindings"]]
        if "httpTrigger" in types:
            assert types == ["httpTrigger", "http"], name
            assert document["bindings"][1]["name"] == "$return"


def test_function_names_are_unique_and_valid(metadata: dict[str, dict[str, Any]]) -> None:
    assert len(metadata) == len(EXPECTED_HTTP) + 2
    for name in metadata:
        assert name.isidentifier(), name


def test_timer_enforce_time_limits(metadata: dict[str, dict[str, Any]]) -> None:
    bindings = metadata["enforce_time_limits"]["bindings"]
    assert len(bindings) == 1
    timer = bindings[0]
    assert timer["type"] == "timerTrigger"
    assert timer["direction"] == "IN"
    assert timer["schedule"] == "%RECONNECT_ENFORCE_SCHEDULE%"
    assert timer["useMonitor"] is True
    assert timer["runOnStartup"] is False
    assert timer["name"] == "timer"


def test_the_event_relay_is_triggered_by_the_outbox_queue(
    metadata: dict[str, dict[str, Any]],
) -> None:
    bindings = metadata["relay_events"]["bindings"]
    assert len(bindings) == 1
    trigger = bindings[0]
    assert trigger["type"] == "queueTrigger"
    assert trigger["direction"] == "IN"
    assert trigger["queueName"] == "%EVENTS_OUTBOX_QUEUE%"
    assert trigger["connection"] == "AzureWebJobsStorage"
    assert trigger["name"] == "message"


def test_the_timer_and_the_relay_are_the_only_non_http_functions(
    metadata: dict[str, dict[str, Any]],
) -> None:
    non_http = [
        name
        for name, document in metadata.items()
        if not any(binding["type"] == "httpTrigger" for binding in document["bindings"])
    ]
    assert sorted(non_http) == ["enforce_time_limits", "relay_events"]
