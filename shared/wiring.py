"""The process's one App (its use cases), built from the settings on first use (no I/O at
import)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from azure.data.tables import TableServiceClient

from shared.config import Settings, get_settings

# Imported with the app, although the storage adapters load with the first request: it
# checks, once at start-up, that the installed SDK has the private entry point it sends
# through, so a mismatched SDK stops the app with a clear message (SdkMismatch).
from shared.storage import table_wire  # noqa: F401

if TYPE_CHECKING:
    from azure.storage.queue import QueueClient

    from shared.services.app import App
    from shared.services.outbox import EventQueues

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

# A queue that does not answer at once is treated as down (events fall back to outbox
# notes): short timeouts and at most one retry, so staging never noticeably slows a request.
QUEUE_TIMEOUTS = {"connection_timeout": 1, "read_timeout": 2}
# One immediate retry (no back-off, no jitter): a pooled keep-alive connection the server
# closed fails its next request, which a fresh connection then sends.
QUEUE_CLIENT_OPTIONS: dict[str, Any] = {
    "retry_total": 1,
    "initial_backoff": 0,
    "increment_base": 0,
    "random_jitter_range": 0,
    **QUEUE_TIMEOUTS,
}
# Azurite's well-known development account (public), for QUEUES_CONNECTION_STRING's default:
# unlike the Table SDK, the queue SDK does not understand "UseDevelopmentStorage=true".
_DEVELOPMENT_QUEUES = (
    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
    "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/"
    "KBHBeksoGMGw==;QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1;"
)

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


def queue_client_factory(
    settings: Settings, timeouts: dict[str, int] | None = None, **options: Any
) -> Callable[[str], QueueClient]:
    """Makes a queue's client on first use: managed identity when QUEUES_ENDPOINT is set,
    else the connection string (Azurite locally); `timeouts` and `options` override the
    client's (tests on a loaded machine)."""

    def make(name: str) -> QueueClient:
        # Imported here: `import function_app` pays nothing for the queue SDK.
        from azure.storage.queue import QueueClient

        if settings.queues_endpoint:
            from azure.identity import DefaultAzureCredential

            credential = DefaultAzureCredential(
                managed_identity_client_id=settings.managed_identity_client_id
            )
            return QueueClient(
                settings.queues_endpoint,
                name,
                credential=credential,
                **{
                    **storage_client_options(settings.queues_endpoint, timeouts or QUEUE_TIMEOUTS),
                    **QUEUE_CLIENT_OPTIONS,
                    **options,
                },
            )
        connection = settings.queues_connection_string
        if connection.strip().lower() == "usedevelopmentstorage=true":
            connection = _DEVELOPMENT_QUEUES
        endpoint = QueueClient.from_connection_string(connection, name).url
        return QueueClient.from_connection_string(
            connection,
            name,
            **{
                **storage_client_options(endpoint, timeouts or QUEUE_TIMEOUTS),
                **QUEUE_CLIENT_OPTIONS,
                **options,
            },
        )

    return make


def event_queues(
    settings: Settings, timeouts: dict[str, int] | None = None, **options: Any
) -> EventQueues | None:
    """The integration events' queues (clients made on first use); None while events are off."""
    if settings.events_queue is None:
        return None
    make = queue_client_factory(settings, timeouts, **options)
    # Imported here, like the rest of the use cases (`build_service`).
    from shared.services.outbox import EventQueues
    from shared.storage.queues import StorageQueue

    return EventQueues(
        outbox=StorageQueue(settings.events_outbox_queue, make),
        public=StorageQueue(settings.events_queue, make),
        source=settings.events_source,
    )


def storage_client_options(endpoint: str, timeouts: dict[str, int] | None = None) -> dict[str, Any]:
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
        connection_timeout=(timeouts or STORAGE_TIMEOUTS)["connection_timeout"],
        read_timeout=(timeouts or STORAGE_TIMEOUTS)["read_timeout"],
        connection_verify=ca_bundle or True,
    )
    options: dict[str, Any] = {**STORAGE_CLIENT_OPTIONS, "transport": transport}
    proxies = get_environ_proxies(endpoint)
    if proxies:
        options["proxies"] = proxies
    return options


def build_service(settings: Settings, table_prefix: str = "") -> App:
    """A service wired to real storage and the configured signing keys."""
    # Imported when the first request builds the service: the use cases and storage
    # adapters are not needed to register the functions (a cold start's import).
    from shared.domain.links import LinkSigner
    from shared.services.app import App
    from shared.storage.store import TableStore

    store = TableStore(table_service_client(settings), table_prefix)
    signer = LinkSigner(settings.signing_key, settings.previous_signing_key)
    return App(
        store,
        signer,
        auto_close_after=timedelta(minutes=settings.wrap_up_auto_close_minutes),
        events=event_queues(settings),
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
