"""The process's one ReconnectService, built from the settings on first use (no I/O at import)."""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from azure.core.pipeline.transport import RequestsTransport
from azure.data.tables import TableServiceClient

from shared.config import Settings, get_settings
from shared.links import LinkSigner
from shared.service import ReconnectService
from shared.store import TableStore

# Bounded SDK retries: a request answers (or fails with 503) within a few seconds
# instead of the SDK default of ten retries with growing back-off.
STORAGE_CLIENT_OPTIONS: dict[str, Any] = {
    "retry_total": 2,
    "retry_connect": 2,
    "retry_read": 1,
    "retry_status": 2,
    "retry_backoff_factor": 0.2,
    "retry_backoff_max": 1,
    "connection_timeout": 2,
    "read_timeout": 5,
}

_lock = threading.Lock()
_service: ReconnectService | None = None


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


def storage_client_options(
    endpoint: str, environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Client options with the environment's proxy and CA-bundle settings read once, here.

    By default `requests` reads them again on every request, walking the whole environment
    several times per call: about 40% of the client CPU of a storage request on the
    development machine (docs/performance.md). The same settings, read at start-up:
    HTTP(S)_PROXY unless NO_PROXY covers the storage host, and REQUESTS_CA_BUNDLE or
    CURL_CA_BUNDLE. Changing them means restarting the app, like every other setting.
    """
    environ = os.environ if environ is None else environ
    options: dict[str, Any] = {
        **STORAGE_CLIENT_OPTIONS,
        "transport": RequestsTransport(use_env_settings=False),
    }
    lowered = {name.lower(): value for name, value in environ.items() if value}
    proxies = {
        scheme: lowered[f"{scheme}_proxy"]
        for scheme in ("http", "https")
        if f"{scheme}_proxy" in lowered
    }
    host = (urlsplit(endpoint).hostname or "").lower()
    if proxies and not _bypasses_proxy(host, lowered.get("no_proxy", "")):
        options["proxies"] = proxies
    ca_bundle = environ.get("REQUESTS_CA_BUNDLE") or environ.get("CURL_CA_BUNDLE")
    if ca_bundle:
        options["connection_verify"] = ca_bundle
    return options


def _bypasses_proxy(host: str, no_proxy: str) -> bool:
    """NO_PROXY as curl reads it: `*`, or per entry a host name or a domain suffix."""
    for entry in (part.strip().lower() for part in no_proxy.split(",")):
        name = entry.lstrip(".").rsplit(":", 1)[0] if entry != "*" else entry
        if name == "*" or (name and (host == name or host.endswith("." + name))):
            return True
    return False


def build_service(settings: Settings, table_prefix: str = "") -> ReconnectService:
    """A service wired to real storage and the configured signing keys."""
    store = TableStore(table_service_client(settings), table_prefix)
    signer = LinkSigner(settings.signing_key, settings.previous_signing_key)
    return ReconnectService(
        store,
        signer,
        auto_close_after=timedelta(minutes=settings.wrap_up_auto_close_minutes),
    )


def get_service() -> ReconnectService:
    """The process-wide service, built from the environment on first use."""
    global _service
    with _lock:
        if _service is None:
            _service = build_service(get_settings())
        return _service


def set_service(service: ReconnectService | None) -> None:
    """Replace the process-wide service (tests and benchmarks wire their own)."""
    global _service
    with _lock:
        _service = service
