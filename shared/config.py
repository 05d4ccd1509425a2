"""Settings of the app, read once from the environment (app settings in Azure)."""

from __future__ import annotations

import functools
import logging
import os
import re
import secrets
import threading
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
    "ADMIN_REQUIRED_ROLE",
    # Set by App Service itself (never by us) while its built-in authentication is on.
    "WEBSITE_AUTH_ENABLED",
    "OMNICHANNEL_ORG_ID",
    "EVENTS_QUEUE",
    "EVENTS_SOURCE",
    "EVENTS_OUTBOX_QUEUE",
    "QUEUES_CONNECTION_STRING",
    "QUEUES_ENDPOINT",
    "WIDGET_SETTINGS_CACHE_SECONDS",
)

DEFAULT_CONNECTION_STRING = "UseDevelopmentStorage=true"
DEFAULT_EVENTS_QUEUE = "conversation-events"
DEFAULT_EVENTS_OUTBOX_QUEUE = "conversation-events-outbox"
DEFAULT_EVENTS_SOURCE = "/chat-reconnect"
# Azure Storage queue names: 3-63 lowercase letters, digits and single inner hyphens.
_QUEUE_NAME = re.compile(r"^(?=.{3,63}$)[a-z0-9]+(?:-[a-z0-9]+)*$")
DEFAULT_ENFORCE_SCHEDULE = "*/30 * * * * *"
DEFAULT_WRAP_UP_AUTO_CLOSE_MINUTES = 15
# A week: generous for a wrap-up, and far from where date arithmetic overflows.
MAX_WRAP_UP_AUTO_CLOSE_MINUTES = 7 * 24 * 60
DEFAULT_WIDGET_SETTINGS_CACHE_SECONDS = 5
# Omnichannel itself takes minutes to spread a widget change; longer would surprise admins.
MAX_WIDGET_SETTINGS_CACHE_SECONDS = 300
MIN_SIGNING_KEY_LENGTH = 32
# What Azure hands the app instead of a secret when it cannot resolve a Key Vault reference:
# the reference's own text, which anyone can rebuild from the app's host name.
_KEY_VAULT_REFERENCE = re.compile(r"\s*@\s*microsoft\s*\.\s*keyvault\s*\(", re.IGNORECASE)


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
    # The app role an admin's Entra ID principal must carry on /api/manage/*; None: no check.
    admin_required_role: str | None
    # Whether App Service authentication is on, i.e. whether X-MS-CLIENT-PRINCIPAL can be trusted.
    platform_auth_enabled: bool
    # The org id the Omnichannel chat SDK routes answer to; None turns those routes off.
    omnichannel_org_id: str | None = None
    # The public queue of integration events; None turns events off (EVENTS_QUEUE="").
    events_queue: str | None = DEFAULT_EVENTS_QUEUE
    events_outbox_queue: str = DEFAULT_EVENTS_OUTBOX_QUEUE
    events_source: str = DEFAULT_EVENTS_SOURCE
    queues_connection_string: str = DEFAULT_CONNECTION_STRING
    queues_endpoint: str | None = None
    # How old a widget's settings may be when an instance uses them; 0: read on every request.
    widget_settings_cache_seconds: int = DEFAULT_WIDGET_SETTINGS_CACHE_SECONDS


def _signing_key(name: str, value: str | None) -> bytes | None:
    if value is None or value == "":
        return None
    # Checked before the length: the reference text is long enough to pass as a key.
    if _KEY_VAULT_REFERENCE.match(value):
        raise ConfigError(
            f"{name} is an unresolved Key Vault reference: the app cannot read the secret "
            "(check the identity's access to the vault and the secret's name)"
        )
    if len(value) < MIN_SIGNING_KEY_LENGTH:
        raise ConfigError(f"{name} must be at least {MIN_SIGNING_KEY_LENGTH} characters long")
    return value.encode("utf-8")


def _minutes(name: str, value: str | None, default: int, maximum: int) -> int:
    if value is None or value.strip() == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number of minutes, got {value!r}") from None
    if number < 1:
        raise ConfigError(f"{name} must be at least 1, got {number}")
    if number > maximum:
        raise ConfigError(f"{name} must be at most {maximum}, got {number}")
    return number


def _queue_name(name: str, value: str) -> str:
    if not _QUEUE_NAME.match(value):
        raise ConfigError(
            f"{name} must be a queue name: 3-63 lowercase letters, digits and single "
            f"hyphens, starting and ending with a letter or digit; got {value!r}"
        )
    return value


def _cache_seconds(name: str, value: str | None) -> int:
    if value is None or value.strip() == "":
        return DEFAULT_WIDGET_SETTINGS_CACHE_SECONDS
    try:
        number = int(value)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number of seconds, got {value!r}") from None
    if not 0 <= number <= MAX_WIDGET_SETTINGS_CACHE_SECONDS:
        raise ConfigError(
            f"{name} must be from 0 to {MAX_WIDGET_SETTINGS_CACHE_SECONDS} seconds, got {number}"
        )
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
    events_queue = environ.get("EVENTS_QUEUE", DEFAULT_EVENTS_QUEUE).strip()
    return Settings(
        tables_connection_string=environ.get("TABLES_CONNECTION_STRING")
        or DEFAULT_CONNECTION_STRING,
        tables_endpoint=endpoint,
        managed_identity_client_id=environ.get("AZURE_CLIENT_ID") or None,
        signing_key=signing_key,
        previous_signing_key=_signing_key(
            "RECONNECT_PREVIOUS_SIGNING_KEY", environ.get("RECONNECT_PREVIOUS_SIGNING_KEY")
        ),
        wrap_up_auto_close_minutes=_minutes(
            "WRAP_UP_AUTO_CLOSE_MINUTES",
            environ.get("WRAP_UP_AUTO_CLOSE_MINUTES"),
            DEFAULT_WRAP_UP_AUTO_CLOSE_MINUTES,
            MAX_WRAP_UP_AUTO_CLOSE_MINUTES,
        ),
        enforce_schedule=environ.get("RECONNECT_ENFORCE_SCHEDULE") or DEFAULT_ENFORCE_SCHEDULE,
        admin_required_role=(environ.get("ADMIN_REQUIRED_ROLE") or "").strip() or None,
        platform_auth_enabled=(environ.get("WEBSITE_AUTH_ENABLED") or "").strip().lower() == "true",
        omnichannel_org_id=(environ.get("OMNICHANNEL_ORG_ID") or "").strip() or None,
        # Unset: the default queue; set but empty: events off.
        events_queue=_queue_name("EVENTS_QUEUE", events_queue) if events_queue else None,
        events_outbox_queue=_queue_name(
            "EVENTS_OUTBOX_QUEUE",
            environ.get("EVENTS_OUTBOX_QUEUE") or DEFAULT_EVENTS_OUTBOX_QUEUE,
        ),
        events_source=environ.get("EVENTS_SOURCE") or DEFAULT_EVENTS_SOURCE,
        queues_connection_string=environ.get("QUEUES_CONNECTION_STRING")
        or DEFAULT_CONNECTION_STRING,
        queues_endpoint=environ.get("QUEUES_ENDPOINT") or None,
        widget_settings_cache_seconds=_cache_seconds(
            "WIDGET_SETTINGS_CACHE_SECONDS", environ.get("WIDGET_SETTINGS_CACHE_SECONDS")
        ),
    )


# Held while the settings are first read, so that concurrent first requests log once.
_reading = threading.Lock()


@functools.cache
def _loaded() -> Settings | ConfigError:
    try:
        return load_settings(os.environ)
    except ConfigError as error:
        # Once per process, here: callers only see the error, so no request repeats it.
        logger.critical(
            "Configuration error, the app refuses every request (503) until it is fixed "
            "and the app restarted: %s",
            error,
        )
        return error


def get_settings() -> Settings:
    """The process-wide settings, read from os.environ on first use; ConfigError (logged
    once, when first read) while a setting is wrong."""
    with _reading:
        loaded = _loaded()
    if isinstance(loaded, ConfigError):
        raise ConfigError(str(loaded))
    return loaded


def reload_settings() -> None:
    """Forget the settings read so far (tests change the environment)."""
    _loaded.cache_clear()
