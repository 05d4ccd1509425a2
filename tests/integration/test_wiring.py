"""The production wiring: settings from the environment become the service the handlers use."""

from __future__ import annotations

import base64
import socket
import uuid
from datetime import timedelta

import httpx
import pytest
from azure.core.exceptions import ServiceRequestError
from azure.data.tables import TableServiceClient
from azure.identity import DefaultAzureCredential

from local.azurite import Azurite
from shared.config import load_settings
from shared.domain.errors import StorageUnavailable
from shared.domain.links import LinkSigner
from shared.wiring import (
    build_service,
    storage_client_options,
    table_service_client,
)

KEY = "current-signing-key-" + "c" * 32
PREVIOUS = "previous-signing-key-" + "p" * 32


def test_settings_become_a_working_service(azurite: Azurite) -> None:
    settings = load_settings(
        {
            "TABLES_CONNECTION_STRING": azurite.connection_string,
            "RECONNECT_SIGNING_KEY": KEY,
            "RECONNECT_PREVIOUS_SIGNING_KEY": PREVIOUS,
            "WRAP_UP_AUTO_CLOSE_MINUTES": "3",
        }
    )

    service = build_service(settings, table_prefix="wiring")
    service.store.ping()  # reaches the configured Azurite, creating the tables

    assert service.auto_close_after == timedelta(minutes=3)
    made_before_rotation = LinkSigner(PREVIOUS.encode()).customer_key("w", "alice")
    assert made_before_rotation in service.signer.customer_keys("w", "alice")
    assert service.signer.customer_key("w", "alice") != made_before_rotation


def test_an_endpoint_means_a_managed_identity_and_no_account_key() -> None:
    settings = load_settings(
        {
            "TABLES_ENDPOINT": "https://account.table.core.windows.net",
            "AZURE_CLIENT_ID": "00000000-0000-0000-0000-000000000001",
            "RECONNECT_SIGNING_KEY": KEY,
        }
    )

    client = table_service_client(settings)  # builds only; nothing is sent

    assert client.url.startswith("https://account.table.core.windows.net")
    assert isinstance(client.credential, DefaultAzureCredential)


def test_an_agent_never_seen_holds_nothing(api: httpx.Client) -> None:
    answer = api.get("/agents/nobody-yet/capacity")

    assert answer.status_code == 200, answer.text
    assert answer.json() == {"agentId": "nobody-yet", "held": 0, "conversations": []}


# --- proxy, CA and timeout settings: read once at start-up, not on every request ---------

PROXY_VARIABLES = (
    "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY",
    "http_proxy", "https_proxy", "all_proxy", "no_proxy",
    "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
)  # fmt: skip
ENDPOINT = "https://account.table.core.windows.net"


@pytest.fixture
def environ(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """The process environment without any proxy or CA-bundle setting, to set in the test."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.mark.parametrize(
    ("variables", "proxy"),
    [
        ({}, None),
        ({"HTTPS_PROXY": "http://proxy:3128"}, "http://proxy:3128"),
        ({"https_proxy": "http://lower:1", "HTTP_PROXY": "http://other:2"}, "http://lower:1"),
        ({"ALL_PROXY": "http://all:3128"}, None),
        ({"HTTPS_PROXY": "http://proxy:3128", "NO_PROXY": "account.table.core.windows.net"}, None),
        ({"HTTPS_PROXY": "http://proxy:3128", "no_proxy": "localhost, .core.windows.net"}, None),
        ({"HTTPS_PROXY": "http://proxy:3128", "NO_PROXY": "*"}, None),
        (
            {"HTTPS_PROXY": "http://proxy:3128", "NO_PROXY": "windows.net.example,other"},
            "http://proxy:3128",
        ),
    ],
)
def test_the_https_proxy_comes_from_the_environment_unless_no_proxy_covers_the_host(
    environ: pytest.MonkeyPatch, variables: dict[str, str], proxy: str | None
) -> None:
    for name, value in variables.items():
        environ.setenv(name, value)

    options = storage_client_options(ENDPOINT)

    assert options.get("proxies", {}).get("https") == proxy
    if "ALL_PROXY" in variables:
        assert options["proxies"]["all"] == variables["ALL_PROXY"]


@pytest.mark.parametrize(
    ("variables", "verify"),
    [
        ({}, True),
        ({"REQUESTS_CA_BUNDLE": "/etc/ca.pem"}, "/etc/ca.pem"),
        ({"CURL_CA_BUNDLE": "/etc/curl.pem"}, "/etc/curl.pem"),
        ({"REQUESTS_CA_BUNDLE": "/etc/ca.pem", "CURL_CA_BUNDLE": "/etc/curl.pem"}, "/etc/ca.pem"),
    ],
)
def test_a_ca_bundle_from_the_environment_checks_the_storage_certificate(
    environ: pytest.MonkeyPatch, variables: dict[str, str], verify: str | bool
) -> None:
    for name, value in variables.items():
        environ.setenv(name, value)

    transport = storage_client_options(ENDPOINT)["transport"]

    assert transport.connection_config.verify == verify


def test_a_proxy_set_at_start_up_carries_the_storage_requests(
    azurite: Azurite, environ: pytest.MonkeyPatch
) -> None:
    # Nothing listens on the discard port: requests that go through the proxy fail.
    environ.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    endpoint = TableServiceClient.from_connection_string(azurite.connection_string).url
    client = TableServiceClient.from_connection_string(
        azurite.connection_string, **{**storage_client_options(endpoint), "retry_total": 0}
    )

    with pytest.raises(ServiceRequestError):
        client.create_table("proxied" + uuid.uuid4().hex[:8])


def test_the_environment_is_not_read_again_per_request(
    azurite: Azurite, environ: pytest.MonkeyPatch
) -> None:
    settings = load_settings(
        {"TABLES_CONNECTION_STRING": azurite.connection_string, "RECONNECT_SIGNING_KEY": KEY}
    )
    service = build_service(settings, table_prefix="envonce")
    service.store.ping()

    # requests would send this through the (unreachable) proxy if it read the environment
    # on each call, as it does by default.
    environ.setenv("HTTP_PROXY", "http://127.0.0.1:9")

    service.store.ping()


def test_a_storage_server_that_never_answers_times_out(environ: pytest.MonkeyPatch) -> None:
    # Accepts connections (the kernel's backlog) and never reads or answers.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        connection_string = (
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
            f"AccountKey={base64.b64encode(b'k' * 64).decode()};"
            f"TableEndpoint=http://127.0.0.1:{port}/devstoreaccount1;"
        )
        settings = load_settings(
            {"TABLES_CONNECTION_STRING": connection_string, "RECONNECT_SIGNING_KEY": KEY}
        )
        store = build_service(settings).store

        # The read timeout (5 s, retried once) ends it; without it the wait is 300 s and the
        # test's own timeout fails it.
        with pytest.raises(StorageUnavailable):
            store.get_widget("w")
