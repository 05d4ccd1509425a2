"""shared.config: settings read from an environment mapping, with safe defaults and clear errors."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from shared.config import (
    APP_SETTINGS,
    DEFAULT_CONNECTION_STRING,
    DEFAULT_ENFORCE_SCHEDULE,
    MAX_WRAP_UP_AUTO_CLOSE_MINUTES,
    ConfigError,
    load_settings,
)

KEY = "k" * 32
AZURE_ENDPOINT = "https://account.table.core.windows.net"
ROOT = Path(__file__).resolve().parents[2]


def test_defaults_for_local_development() -> None:
    settings = load_settings({})

    assert settings.tables_connection_string == "UseDevelopmentStorage=true"
    assert DEFAULT_CONNECTION_STRING == "UseDevelopmentStorage=true"
    assert settings.tables_endpoint is None
    assert settings.managed_identity_client_id is None
    assert settings.previous_signing_key is None
    assert settings.wrap_up_auto_close_minutes == 15
    assert settings.enforce_schedule == "*/30 * * * * *"
    assert DEFAULT_ENFORCE_SCHEDULE == "*/30 * * * * *"


def test_empty_values_count_as_unset() -> None:
    settings = load_settings(
        {
            "TABLES_CONNECTION_STRING": "",
            "TABLES_ENDPOINT": "",
            "AZURE_CLIENT_ID": "",
            "RECONNECT_SIGNING_KEY": "",
            "RECONNECT_PREVIOUS_SIGNING_KEY": "",
            "WRAP_UP_AUTO_CLOSE_MINUTES": "  ",
            "RECONNECT_ENFORCE_SCHEDULE": "",
        }
    )
    assert settings.tables_connection_string == DEFAULT_CONNECTION_STRING
    assert settings.tables_endpoint is None
    assert settings.managed_identity_client_id is None
    assert settings.previous_signing_key is None
    assert settings.wrap_up_auto_close_minutes == 15
    assert settings.enforce_schedule == DEFAULT_ENFORCE_SCHEDULE


def test_values_from_the_environment() -> None:
    settings = load_settings(
        {
            "TABLES_CONNECTION_STRING": "DefaultEndpointsProtocol=http;AccountName=a;",
            "RECONNECT_SIGNING_KEY": KEY,
            "RECONNECT_PREVIOUS_SIGNING_KEY": "p" * 40,
            "WRAP_UP_AUTO_CLOSE_MINUTES": "30",
            "RECONNECT_ENFORCE_SCHEDULE": "0 */1 * * * *",
            "AZURE_CLIENT_ID": "00000000-0000-0000-0000-000000000001",
        }
    )
    assert settings.tables_connection_string == "DefaultEndpointsProtocol=http;AccountName=a;"
    assert settings.signing_key == KEY.encode()
    assert settings.previous_signing_key == b"p" * 40
    assert settings.wrap_up_auto_close_minutes == 30
    assert settings.enforce_schedule == "0 */1 * * * *"
    assert settings.managed_identity_client_id == "00000000-0000-0000-0000-000000000001"


@pytest.mark.parametrize("value", ["abc", "0", "-3", "1.5", "15m", "ten"])
def test_bad_wrap_up_auto_close_minutes_is_a_config_error(value: str) -> None:
    with pytest.raises(ConfigError, match="WRAP_UP_AUTO_CLOSE_MINUTES"):
        load_settings({"WRAP_UP_AUTO_CLOSE_MINUTES": value})


@pytest.mark.parametrize(("value", "expected"), [("1", 1), ("15", 15), (" 20 ", 20)])
def test_good_wrap_up_auto_close_minutes(value: str, expected: int) -> None:
    assert load_settings({"WRAP_UP_AUTO_CLOSE_MINUTES": value}).wrap_up_auto_close_minutes == (
        expected
    )


@pytest.mark.parametrize(
    ("value", "expected"), [(None, 5), ("", 5), (" ", 5), ("0", 0), ("1", 1), (" 60 ", 60)]
)
def test_widget_settings_cache_seconds(value: str | None, expected: int) -> None:
    environ = {} if value is None else {"WIDGET_SETTINGS_CACHE_SECONDS": value}
    assert load_settings(environ).widget_settings_cache_seconds == expected


@pytest.mark.parametrize("value", ["-1", "301", "1.5", "5s", "five", "1e3"])
def test_bad_widget_settings_cache_seconds_is_a_config_error(value: str) -> None:
    """The app fails closed: a typo must not silently cache for longer than intended."""
    with pytest.raises(ConfigError, match="WIDGET_SETTINGS_CACHE_SECONDS"):
        load_settings({"WIDGET_SETTINGS_CACHE_SECONDS": value})


@pytest.mark.parametrize("name", ["RECONNECT_SIGNING_KEY", "RECONNECT_PREVIOUS_SIGNING_KEY"])
@pytest.mark.parametrize("key", ["short", "x" * 31])
def test_short_signing_key_is_a_config_error(name: str, key: str) -> None:
    environ = {"RECONNECT_SIGNING_KEY": KEY, name: key}
    with pytest.raises(ConfigError, match=name):
        load_settings(environ)


def test_signing_key_of_32_characters_is_enough() -> None:
    assert load_settings({"RECONNECT_SIGNING_KEY": "x" * 32}).signing_key == b"x" * 32


def test_missing_signing_key_in_azure_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="RECONNECT_SIGNING_KEY"):
        load_settings({"TABLES_ENDPOINT": AZURE_ENDPOINT})
    with pytest.raises(ConfigError, match="RECONNECT_SIGNING_KEY"):
        load_settings({"TABLES_ENDPOINT": AZURE_ENDPOINT, "RECONNECT_SIGNING_KEY": ""})


def test_azure_settings_with_a_key() -> None:
    settings = load_settings({"TABLES_ENDPOINT": AZURE_ENDPOINT, "RECONNECT_SIGNING_KEY": KEY})
    assert settings.tables_endpoint == AZURE_ENDPOINT
    assert settings.signing_key == KEY.encode()


def test_missing_signing_key_locally_is_random_and_warned(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="shared.config"):
        first = load_settings({}).signing_key
    second = load_settings({}).signing_key

    assert len(first) >= 32
    assert len(second) >= 32
    assert first != second
    assert any("RECONNECT_SIGNING_KEY" in record.getMessage() for record in caplog.records)
    assert first.decode() not in caplog.text


def test_admin_sign_in_is_off_by_default() -> None:
    settings = load_settings({})
    assert settings.admin_required_role is None
    assert settings.platform_auth_enabled is False


def test_admin_sign_in_settings_are_read() -> None:
    settings = load_settings(
        {"ADMIN_REQUIRED_ROLE": " ChatReconnect.Admin ", "WEBSITE_AUTH_ENABLED": "True"}
    )
    assert settings.admin_required_role == "ChatReconnect.Admin"
    assert settings.platform_auth_enabled is True


@pytest.mark.parametrize("value", ["", " ", "False", "false", "0", "yes", "1"])
def test_only_true_means_app_service_authentication_is_on(value: str) -> None:
    # App Service writes True/False; anything else must not make the header trusted.
    assert load_settings({"WEBSITE_AUTH_ENABLED": value}).platform_auth_enabled is False


def test_an_empty_admin_role_means_no_admin_sign_in() -> None:
    # The Bicep writes '' when no admin app registration is deployed.
    assert load_settings({"ADMIN_REQUIRED_ROLE": "  "}).admin_required_role is None


class RecordingEnviron(Mapping[str, str]):
    """An environment that records which names were looked up."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values
        self.read: set[str] = set()

    def __getitem__(self, name: str) -> str:
        # Mapping.get calls this too, so every lookup is recorded.
        self.read.add(name)
        return self.values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.values)

    def __len__(self) -> int:
        return len(self.values)


def test_every_setting_read_is_listed_in_app_settings() -> None:
    environ = RecordingEnviron({"RECONNECT_SIGNING_KEY": KEY})
    load_settings(environ)
    assert environ.read
    assert environ.read <= set(APP_SETTINGS)
    assert len(APP_SETTINGS) == len(set(APP_SETTINGS))


def test_the_readme_configuration_table_lists_exactly_the_app_settings() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    table = section.split("Local development only", 1)[0]
    documented = re.findall(r"^\| `([A-Z_]+)` \|", table, flags=re.MULTILINE)
    assert sorted(documented) == sorted(APP_SETTINGS)


UNRESOLVED_REFERENCES = [
    "@Microsoft.KeyVault(SecretUri=https://kv-contoso.vault.azure.net/secrets/RECONNECT-SIGNING-KEY/)",
    "@microsoft.keyvault(VaultName=kv-contoso;SecretName=RECONNECT-SIGNING-KEY)",
    "  @MICROSOFT.KEYVAULT (SecretUri=https://kv-contoso.vault.azure.net/secrets/key/0123456789)",
    "\t@ Microsoft . KeyVault\n(SecretUri=https://kv-contoso.vault.azure.net/secrets/key)",
]


@pytest.mark.parametrize("name", ["RECONNECT_SIGNING_KEY", "RECONNECT_PREVIOUS_SIGNING_KEY"])
@pytest.mark.parametrize("reference", UNRESOLVED_REFERENCES)
def test_an_unresolved_key_vault_reference_is_never_a_key(name: str, reference: str) -> None:
    """Issue 12, item 1: Azure hands over the reference text when it cannot resolve it; the
    text is longer than 32 characters and anyone can rebuild it from the host name."""
    assert len(reference) >= 32
    environ = {"RECONNECT_SIGNING_KEY": KEY, name: reference}
    with pytest.raises(ConfigError, match=f"^{name} is an unresolved Key Vault reference"):
        load_settings(environ)


def test_a_key_that_mentions_key_vault_later_is_still_a_key() -> None:
    key = "x" * 32 + "@Microsoft.KeyVault("
    assert load_settings({"RECONNECT_SIGNING_KEY": key}).signing_key == key.encode()


def test_wrap_up_auto_close_minutes_has_a_documented_maximum() -> None:
    """Issue 12, item 5: a huge value made date arithmetic overflow (500) in every request."""
    maximum = str(MAX_WRAP_UP_AUTO_CLOSE_MINUTES)
    assert load_settings({"WRAP_UP_AUTO_CLOSE_MINUTES": maximum}).wrap_up_auto_close_minutes == (
        MAX_WRAP_UP_AUTO_CLOSE_MINUTES
    )
    for value in (str(MAX_WRAP_UP_AUTO_CLOSE_MINUTES + 1), "10" * 20):
        with pytest.raises(ConfigError, match="WRAP_UP_AUTO_CLOSE_MINUTES must be at most"):
            load_settings({"WRAP_UP_AUTO_CLOSE_MINUTES": value})
    assert f"at most {MAX_WRAP_UP_AUTO_CLOSE_MINUTES}" in (ROOT / "README.md").read_text()


def test_integration_events_default_to_the_documented_queues() -> None:
    settings = load_settings({})
    assert settings.events_queue == "conversation-events"
    assert settings.events_outbox_queue == "conversation-events-outbox"
    assert settings.events_source == "/chat-reconnect"
    assert settings.queues_connection_string == "UseDevelopmentStorage=true"
    assert settings.queues_endpoint is None


def test_an_empty_events_queue_turns_events_off() -> None:
    assert load_settings({"EVENTS_QUEUE": ""}).events_queue is None


@pytest.mark.parametrize("name", ["EVENTS_QUEUE", "EVENTS_OUTBOX_QUEUE"])
@pytest.mark.parametrize("value", ["ab", "Events", "a--b", "-ab", "ab-", "a_b", "a" * 64])
def test_a_bad_queue_name_is_a_config_error(name: str, value: str) -> None:
    """A name Azure would refuse fails closed at start-up, like a bad signing key."""
    with pytest.raises(ConfigError, match=name):
        load_settings({name: value})
