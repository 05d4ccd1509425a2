"""Admin routes behind Microsoft Entra ID (issue 12, "Separate the callers"), against Azurite.

With ADMIN_REQUIRED_ROLE set, as the Bicep does when an admin app registration is given,
every /api/manage route needs the principal App Service forwards, carrying that role; the
platform's and the widget's routes do not change. Handlers are called directly, and every
admin route once more over real HTTP through the local host, so that a new admin route
registered without the check is caught.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from shared.api.admin_auth import PRINCIPAL_HEADER
from shared.api.http import OPERATIONS
from shared.api.manage import delete_widget, get_widget, list_widgets, patch_widget, put_widget
from shared.config import reload_settings
from shared.services.app import App
from tests.conftest import decode, http_request

pytestmark = pytest.mark.usefixtures("service")

ROLE = "ChatReconnect.Admin"
WIDGET = "support-web"
SETTINGS = {"reconnectEnabled": True, "timeLimitMinutes": 10, "portalUrl": "https://x.example/"}
PROBLEM = "application/problem+json"


def principal_header(*roles: str) -> dict[str, str]:
    document = {
        "auth_typ": "aad",
        "claims": [
            {"typ": "name", "val": "Ada Admin"},
            *({"typ": "roles", "val": role} for role in roles),
        ],
        "name_typ": "name",
        "role_typ": "http://schemas.microsoft.com/ws/2008/06/identity/claims/role",
    }
    return {PRINCIPAL_HEADER: base64.b64encode(json.dumps(document).encode()).decode()}


ADMIN = principal_header(ROLE)


def app_settings(monkeypatch: pytest.MonkeyPatch, **values: str) -> Iterator[None]:
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    reload_settings()
    yield
    # The next reader builds the settings again from the restored environment.
    reload_settings()


@pytest.fixture
def role_required(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """App settings as in Azure with an admin app registration and authentication on."""
    yield from app_settings(monkeypatch, ADMIN_REQUIRED_ROLE=ROLE, WEBSITE_AUTH_ENABLED="True")


@pytest.fixture
def role_required_but_authentication_off(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("WEBSITE_AUTH_ENABLED", raising=False)
    yield from app_settings(monkeypatch, ADMIN_REQUIRED_ROLE=ROLE)


def admin_calls(headers: dict[str, str]) -> list[tuple[str, Any]]:
    """One call of each admin handler with `headers`: (name, response)."""
    route = {"widgetId": WIDGET}
    return [
        ("list", list_widgets(http_request("GET", "manage/widgets", headers=headers))),
        ("get", get_widget(http_request("GET", "w", headers=headers, route_params=route))),
        (
            "put",
            put_widget(http_request("PUT", "w", SETTINGS, headers=headers, route_params=route)),
        ),
        (
            "patch",
            patch_widget(
                http_request(
                    "PATCH",
                    "w",
                    {"timeLimitMinutes": 5},
                    headers=headers,
                    route_params=route,
                    content_type="application/merge-patch+json",
                )
            ),
        ),
        ("delete", delete_widget(http_request("DELETE", "w", headers=headers, route_params=route))),
    ]


def save_widget(service: App) -> None:
    answer = decode(
        put_widget(
            http_request("PUT", "w", SETTINGS, headers=ADMIN, route_params={"widgetId": WIDGET})
        )
    )
    assert answer.status == 201, answer.body


@pytest.mark.usefixtures("role_required")
def test_without_a_principal_every_admin_route_is_401_and_changes_nothing(
    service: App,
) -> None:
    save_widget(service)
    for name, response in admin_calls({"x-functions-key": "the-platforms-key"}):
        answer = decode(response)
        assert answer.status == 401, name
        assert answer.media_type == PROBLEM
        assert answer.body["type"] == "urn:chat-reconnect:problem:admin-sign-in-required"
        assert answer.headers["www-authenticate"] == "Bearer"
    assert (
        service.settings.get_widget(WIDGET).value.time_limit_minutes == 10
    )  # not patched or deleted


@pytest.mark.usefixtures("role_required")
@pytest.mark.parametrize(
    "forged",
    [
        "eyJhdXRoX3R5cCI6",  # truncated base64
        "not base64!",
        base64.b64encode(b'{"auth_typ": "aad", "claims": "ChatReconnect.Admin"}').decode(),
        base64.b64encode(b'["ChatReconnect.Admin"]').decode(),
    ],
)
def test_a_malformed_principal_is_401_on_every_admin_route(forged: str) -> None:
    for name, response in admin_calls({PRINCIPAL_HEADER: forged}):
        answer = decode(response)
        assert answer.status == 401, name
        assert answer.media_type == PROBLEM


@pytest.mark.usefixtures("role_required")
@pytest.mark.parametrize("roles", [(), ("Platform.Caller",), ("chatreconnect.admin",)], ids=repr)
def test_a_principal_without_the_role_is_403_and_changes_nothing(
    service: App, roles: tuple[str, ...]
) -> None:
    save_widget(service)
    for name, response in admin_calls(principal_header(*roles)):
        answer = decode(response)
        assert answer.status == 403, name
        assert answer.body["type"] == "urn:chat-reconnect:problem:forbidden"
        assert ROLE in answer.body["detail"]
    assert service.settings.get_widget(WIDGET).value.time_limit_minutes == 10


@pytest.mark.usefixtures("role_required")
def test_a_principal_with_the_role_reaches_every_admin_route() -> None:
    statuses = [(name, decode(response).status) for name, response in admin_calls(ADMIN)]
    assert statuses == [("list", 200), ("get", 404), ("put", 201), ("patch", 200), ("delete", 204)]


@pytest.mark.usefixtures("role_required_but_authentication_off")
def test_with_authentication_off_the_admin_routes_refuse_even_a_perfect_principal(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Without App Service authentication nothing strips a client's own X-MS-CLIENT-PRINCIPAL.
    with caplog.at_level(logging.ERROR, logger="shared.api.admin_auth"):
        calls = admin_calls(ADMIN)
    for name, response in calls:
        answer = decode(response)
        assert answer.status == 503, name
        assert answer.media_type == PROBLEM
        assert answer.body["type"] == "urn:chat-reconnect:problem:admin-sign-in-misconfigured"
        assert answer.headers["retry-after"]
        assert "ADMIN_REQUIRED_ROLE" not in answer.body["detail"]  # settings stay in the log
    messages = [r.getMessage() for r in caplog.records if r.name == "shared.api.admin_auth"]
    assert len(messages) == len(calls)  # one line per refused request
    assert all("WEBSITE_AUTH_ENABLED" in message for message in messages)


def test_without_the_setting_the_admin_routes_need_no_principal() -> None:
    # Local development, and Azure without an admin app registration: nothing changes.
    statuses = [(name, decode(response).status) for name, response in admin_calls({})]
    assert statuses == [("list", 200), ("get", 404), ("put", 201), ("patch", 200), ("delete", 204)]


# --- over HTTP: every admin route the app registers, and the other callers --------------


ADMIN_OPERATIONS = [op for op in OPERATIONS if op.route.startswith("manage/")]


def test_the_admin_operations_are_the_five_of_the_contract() -> None:
    assert len(ADMIN_OPERATIONS) == 5


@pytest.mark.usefixtures("role_required")
@pytest.mark.parametrize("operation", ADMIN_OPERATIONS, ids=lambda op: op.name)
def test_every_registered_admin_route_refuses_a_forged_principal_over_http(
    api: httpx.Client, operation: Any
) -> None:
    path = "/" + operation.route.replace("{widgetId}", WIDGET)
    forged = principal_header("Platform.Caller")
    response = api.request(operation.method, path, headers=forged, json={})
    assert response.status_code == 403, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    anonymous = api.request(operation.method, path, json={})
    assert anonymous.status_code == 401, anonymous.text


@pytest.mark.usefixtures("role_required")
def test_the_platform_and_the_widget_need_no_principal(api: httpx.Client) -> None:
    assert api.put("/manage/widgets/" + WIDGET, json=SETTINGS, headers=ADMIN).status_code == 201
    registered = api.put("/conversations/c-1", json={"widgetId": WIDGET, "agentId": "agent-1"})
    assert registered.status_code == 201, registered.text
    assert api.get("/conversations/c-1").status_code == 200
    assert api.get("/agents/agent-1/capacity").json()["held"] == 1
    assert api.get("/widgets/" + WIDGET + "/reconnect/unknown.1.x").status_code == 200
    assert api.get("/health").status_code == 200
