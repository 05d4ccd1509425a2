"""Settings of the app, read once from the environment (app settings in Azure)."""

from __future__ import annotations

import functools
import logging
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

logger = logging.getLogger(__name__)

# Every app setting the code reads. The Bicep in infra/ must set the same names and
# the README's configuration table documents them; a test keeps all three in step.
APP_SETTINGS: tuple[str, ...] = (
    "TABLES_CONNECTION_STRING",
    "TABLES_ENDPOINT",
    "AZURE_CLIENT_ID",
    "RECONNECT_SIGNING_KEY",
    "RECONNECT_PREVIOUS_SIGNING_KEY",
    "WRAP_UP_AUTO_CLOSE_MINUTES",
    "RECONNECT_ENFORCE_SCHEDULE",
    "OMNICHANNEL_ORG_ID",
)

DEFAULT_CONNECTION_STRING = "UseDevelopmentStorage=true"
DEFAULT_ENFORCE_SCHEDULE = "*/30 * * * * *"
DEFAULT_WRAP_UP_AUTO_CLOSE_MINUTES = 15
MIN_SIGNING_KEY_LENGTH = 32


class ConfigError(RuntimeError):
    """An app setting is missing or malformed; the app cannot run safely without it."""


@dataclass(frozen=True)
class Settings:
    """The app's configuration, as read from the environment."""

    tables_connection_string: str
    tables_endpoint: str | None
    managed_identity_client_id: str | None
    signing_key: bytes
    previous_signing_key: bytes | None
    wrap_up_auto_close_minutes: int
    enforce_schedule: str
    # The org id the Omnichannel chat SDK routes answer to; None turns those routes off.
    omnichannel_org_id: str | None = None


def _signing_key(name: str, value: str | None) -> bytes | None:
    if value is None or value == "":
        return None
    if len(value) < MIN_SIGNING_KEY_LENGTH:
        raise ConfigError(f"{name} must be at least {MIN_SIGNING_KEY_LENGTH} characters long")
    return value.encode("utf-8")


def _positive_int(name: str, value: str | None, default: int) -> int:
    if value is None or value.strip() == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number of minutes, got {value!r}") from None
    if number < 1:
        raise ConfigError(f"{name} must be at least 1, got {number}")
    return number


def load_settings(environ: Mapping[str, str]) -> Settings:
    """Build the settings from an environment mapping; raise ConfigError on bad values."""
    endpoint = environ.get("TABLES_ENDPOINT") or None
    signing_key = _signing_key("RECONNECT_SIGNING_KEY", environ.get("RECONNECT_SIGNING_KEY"))
    if signing_key is None:
        if endpoint is not None:
            # In Azure a missing key would silently break every link on each restart.
            raise ConfigError("RECONNECT_SIGNING_KEY is required when TABLES_ENDPOINT is set")
        logger.warning(
            "RECONNECT_SIGNING_KEY is not set: using a random key for this process only; "
            "reconnect links will stop working when it restarts"
        )
        signing_key = secrets.token_urlsafe(48).encode("ascii")
    return Settings(
        tables_connection_string=environ.get("TABLES_CONNECTION_STRING")
        or DEFAULT_CONNECTION_STRING,
        tables_endpoint=endpoint,
        managed_identity_client_id=environ.get("AZURE_CLIENT_ID") or None,
        signing_key=signing_key,
        previous_signing_key=_signing_key(
            "RECONNECT_PREVIOUS_SIGNING_KEY", environ.get("RECONNECT_PREVIOUS_SIGNING_KEY")
        ),
        wrap_up_auto_close_minutes=_positive_int(
            "WRAP_UP_AUTO_CLOSE_MINUTES",
            environ.get("WRAP_UP_AUTO_CLOSE_MINUTES"),
            DEFAULT_WRAP_UP_AUTO_CLOSE_MINUTES,
        ),
        enforce_schedule=environ.get("RECONNECT_ENFORCE_SCHEDULE") or DEFAULT_ENFORCE_SCHEDULE,
        omnichannel_org_id=(environ.get("OMNICHANNEL_ORG_ID") or "").strip() or None,
    )


@functools.cache
def get_settings() -> Settings:
    """The process-wide settings, read from os.environ on first use."""
    return load_settings(os.environ)
