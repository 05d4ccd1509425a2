"""The process's one ReconnectService, built from the settings on first use (no I/O at import)."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

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
            endpoint=settings.tables_endpoint, credential=credential, **STORAGE_CLIENT_OPTIONS
        )
    return TableServiceClient.from_connection_string(
        settings.tables_connection_string, **STORAGE_CLIENT_OPTIONS
    )


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
