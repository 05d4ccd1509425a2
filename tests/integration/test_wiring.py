"""The production wiring: settings from the environment become the service the handlers use."""

from __future__ import annotations

from datetime import timedelta

import httpx
from azure.identity import DefaultAzureCredential

from local.azurite import Azurite
from shared.config import load_settings
from shared.links import LinkSigner
from shared.wiring import build_service, table_service_client

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
