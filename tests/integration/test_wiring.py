"""The production wiring: settings from the environment become the service the handlers use."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
import pytest
from azure.core.exceptions import ServiceRequestError
from azure.data.tables import TableServiceClient
from azure.identity import DefaultAzureCredential

from local.azurite import Azurite
from shared.config import load_settings
from shared.links import LinkSigner
from shared.wiring import (
    STORAGE_CLIENT_OPTIONS,
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


# --- proxy and CA settings: read once at start-up, not on every request -----------------


@pytest.mark.parametrize(
    ("environ", "proxies"),
    [
        ({}, None),
        ({"HTTPS_PROXY": "http://proxy:3128"}, {"https": "http://proxy:3128"}),
        (
            {"http_proxy": "http://p:1", "https_proxy": "http://p:2"},
            {"http": "http://p:1", "https": "http://p:2"},
        ),
        ({"HTTPS_PROXY": "http://proxy:3128", "NO_PROXY": "account.table.core.windows.net"}, None),
        ({"HTTPS_PROXY": "http://proxy:3128", "no_proxy": "localhost, .core.windows.net"}, None),
        ({"HTTPS_PROXY": "http://proxy:3128", "NO_PROXY": "core.windows.net:443"}, None),
        ({"HTTPS_PROXY": "http://proxy:3128", "NO_PROXY": "*"}, None),
        (
            {"HTTPS_PROXY": "http://proxy:3128", "NO_PROXY": "windows.net.example,other"},
            {"https": "http://proxy:3128"},
        ),
        ({"HTTPS_PROXY": ""}, None),
    ],
)
def test_proxies_come_from_the_environment_unless_no_proxy_covers_the_storage_host(
    environ: dict[str, str], proxies: dict[str, str] | None
) -> None:
    options = storage_client_options("https://account.table.core.windows.net", environ)

    assert options.get("proxies") == proxies
    assert {k: options[k] for k in STORAGE_CLIENT_OPTIONS} == STORAGE_CLIENT_OPTIONS


@pytest.mark.parametrize(
    ("environ", "verify"),
    [
        ({}, None),
        ({"REQUESTS_CA_BUNDLE": "/etc/ca.pem"}, "/etc/ca.pem"),
        ({"CURL_CA_BUNDLE": "/etc/curl.pem"}, "/etc/curl.pem"),
        ({"REQUESTS_CA_BUNDLE": "/etc/ca.pem", "CURL_CA_BUNDLE": "/etc/curl.pem"}, "/etc/ca.pem"),
    ],
)
def test_a_ca_bundle_from_the_environment_is_kept(
    environ: dict[str, str], verify: str | None
) -> None:
    options = storage_client_options("https://account.table.core.windows.net", environ)

    assert options.get("connection_verify") == verify


def test_a_proxy_set_at_start_up_carries_the_storage_requests(azurite: Azurite) -> None:
    # Nothing listens on the discard port: requests that go through the proxy fail.
    unreachable = {"HTTP_PROXY": "http://127.0.0.1:9"}
    options = storage_client_options(azurite.connection_string, unreachable)
    client = TableServiceClient.from_connection_string(
        azurite.connection_string, **{**options, "retry_total": 0}
    )

    with pytest.raises(ServiceRequestError):
        client.create_table("proxied" + uuid.uuid4().hex[:8])


def test_the_environment_is_not_read_again_per_request(
    azurite: Azurite, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = load_settings(
        {"TABLES_CONNECTION_STRING": azurite.connection_string, "RECONNECT_SIGNING_KEY": KEY}
    )
    service = build_service(settings, table_prefix="envonce")
    service.store.ping()

    # requests would send this through the (unreachable) proxy if it read the environment
    # on each call, as it does by default.
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)

    service.store.ping()
