"""The process's one App (its use cases), built from the settings on first use (no I/O at
import)."""

from __future__ import annotations

import os
import threading
from datetime import timedelta
from typing import Any

from azure.data.tables import TableServiceClient

from shared.config import Settings, get_settings
from shared.domain.links import LinkSigner
from shared.services.app import App
from shared.storage.store import TableStore

# Seconds to connect to storage and to wait for its answer.
STORAGE_TIMEOUTS = {"connection_timeout": 2, "read_timeout": 5}
# Bounded SDK retries: a request answers (or fails with 503) within a few seconds
# instead of the SDK default of ten retries with growing back-off.
STORAGE_CLIENT_OPTIONS: dict[str, Any] = {
    "retry_total": 2,
    "retry_connect": 2,
    "retry_read": 1,
    "retry_status": 2,
    "retry_backoff_factor": 0.2,
    "retry_backoff_max": 1,
    **STORAGE_TIMEOUTS,
}

_lock = threading.Lock()
_service: App | None = None


def table_service_client(settings: Settings) -> TableServiceClient:
    """A Table service client: managed identity when TABLES_ENDPOINT is set, else the
    connection string (Azurite locally)."""
    if settings.tables_endpoint:
        # Imported here: only Azure deployments need azure-identity at run time.
        from azure.identity import DefaultAzureCredential

        credential = DefaultAzureCredential(
            managed_identity_client_id=settings.managed_identity_client_id
        )
        return TableServiceClient(
            endpoint=settings.tables_endpoint,
            credential=credential,
            **storage_client_options(settings.tables_endpoint),
        )
    # Built once without options only to learn the endpoint the string names (no I/O).
    endpoint = TableServiceClient.from_connection_string(settings.tables_connection_string).url
    return TableServiceClient.from_connection_string(
        settings.tables_connection_string, **storage_client_options(endpoint)
    )


def storage_client_options(endpoint: str) -> dict[str, Any]:
    """The storage client's options, with the environment's proxy and CA-bundle settings
    read once, here, for `endpoint`.

    By default `requests` reads them again on every request, walking the whole environment
    several times per call: ~15-18 % of the client CPU of a storage request on the
    development machine (docs/performance.md). Here the same `requests` function decides
    once which proxy the endpoint takes (HTTP(S)_PROXY, ALL_PROXY, NO_PROXY), and
    REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE is kept, as `requests` would. Changing them means
    restarting the app, like every other setting.
    """
    # Imported here, when the first request builds the service: `requests` is a fifth of a
    # second of import that a cold start need not pay before the app is loaded.
    from azure.core.pipeline.transport import RequestsTransport
    from requests.utils import get_environ_proxies

    ca_bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    # Timeouts and certificate checks belong to the transport: given a transport of its
    # own, the client ignores them among its options.
    transport = RequestsTransport(
        use_env_settings=False,
        connection_timeout=STORAGE_TIMEOUTS["connection_timeout"],
        read_timeout=STORAGE_TIMEOUTS["read_timeout"],
        connection_verify=ca_bundle or True,
    )
    options: dict[str, Any] = {**STORAGE_CLIENT_OPTIONS, "transport": transport}
    proxies = get_environ_proxies(endpoint)
    if proxies:
        options["proxies"] = proxies
    return options


def build_service(settings: Settings, table_prefix: str = "") -> App:
    """A service wired to real storage and the configured signing keys."""
    store = TableStore(table_service_client(settings), table_prefix)
    signer = LinkSigner(settings.signing_key, settings.previous_signing_key)
    return App(
        store,
        signer,
        auto_close_after=timedelta(minutes=settings.wrap_up_auto_close_minutes),
        widget_cache_max_age=timedelta(seconds=settings.widget_settings_cache_seconds),
    )


def get_service() -> App:
    """The process-wide service, built from the environment on first use; ConfigError
    while a setting is wrong, even when a service was installed (the app fails closed)."""
    global _service
    settings = get_settings()
    with _lock:
        if _service is None:
            _service = build_service(settings)
        return _service


def set_service(service: App | None) -> None:
    """Replace the process-wide service (tests and benchmarks wire their own)."""
    global _service
    with _lock:
        _service = service
