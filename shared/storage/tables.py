"""The Table service client behind every adapter: the table names, creating them, and
storage errors translated into the application's."""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import TableClient, TableServiceClient

from shared.domain.errors import StorageRefused, StorageUnavailable, TooLargeToStore
from shared.storage import table_wire
from shared.storage.table_wire import MAX_OPERATIONS, Operation, TransactionRefused

logger = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

TABLE_NAMES = (
    "widgets",
    "conversations",
    "due",
    "customers",
    "capacity",
    "enforcer",
    "outbox",
)
# Rows found already gone (or changed since read) that a delete transaction is re-sent
# without, before the rest of its rows are deleted one by one.
MISSING_ROWS_RESENT = 3
# Error codes with which storage refuses a value for its size (contract §3 "Limits").
_TOO_LARGE_CODES = frozenset(
    {
        "PropertyValueTooLarge",
        "EntityTooLarge",
        "TooManyProperties",
        "PropertyNameTooLong",
        "KeyValueTooLarge",
        "RequestBodyTooLarge",
    }
)


class ConcurrencyConflict(Exception):
    """The entity changed since it was read (ETag mismatch) or appeared meanwhile."""


def _table_missing(error: ResourceNotFoundError) -> bool:
    # The SDK sets error_code on some operations only; the message always names the code.
    return getattr(error, "error_code", None) == "TableNotFound" or "TableNotFound" in str(error)


def _error_code(error: HttpResponseError) -> str:
    """The storage error code of a refusal ("" when it has none)."""
    code = getattr(error, "error_code", None) or getattr(error, "code", None)
    if code is None:
        code = getattr(error.response, "headers", {}).get("x-ms-error-code")
    return str(getattr(code, "value", code) or "")


def refusal(error: HttpResponseError) -> TooLargeToStore | StorageRefused | None:
    """The application error a storage refusal of a write (400, 413) means, else None."""
    if error.status_code not in (400, 413):
        return None
    code = _error_code(error)
    if error.status_code == 413 or code in _TOO_LARGE_CODES:
        return TooLargeToStore(f"Table storage refused the value as too large ({code or 413}).")
    return StorageRefused(f"Table storage refused the value ({code or 'no code'}).")


def translate_errors(function: Callable[P, R]) -> Callable[P, R]:
    """Turn transport failures and server errors into StorageUnavailable (answered with 503),
    and a refused value into TooLargeToStore (413) or StorageRefused (422), never a 500.

    A table found missing (e.g. an in-memory Azurite restarted under a running app) is
    created again and the operation retried once, instead of failing until the app restarts.
    """

    @functools.wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            try:
                return function(*args, **kwargs)
            except ResourceNotFoundError as error:
                store = args[0] if args else None
                if not (isinstance(store, TableBase) and _table_missing(error)):
                    raise
                logger.warning("A table is missing; creating the tables again")
                store._tables_ready = False
                return function(*args, **kwargs)
        except (ResourceModifiedError, ResourceNotFoundError, ResourceExistsError):
            raise
        except HttpResponseError as error:
            refused = refusal(error)
            if refused is not None:
                logger.warning("Table storage refused a value: %s", refused.detail)
                raise refused from None
            if error.status_code is not None and error.status_code < 500:
                raise
            logger.warning("Table storage answered %s", error.status_code)
            raise StorageUnavailable("Table storage is not available right now.") from None
        except AzureError as error:
            logger.warning("Table storage unreachable: %s", type(error).__name__)
            raise StorageUnavailable("Table storage is not available right now.") from None

    return wrapper


class TableBase:
    """One Table service account and its tables; the adapters of each concern extend it."""

    def __init__(self, service: TableServiceClient, table_prefix: str = "") -> None:
        self._service = service
        self._prefix = table_prefix
        self._tables: dict[str, TableClient] = {
            name: service.get_table_client(table_prefix + name) for name in TABLE_NAMES
        }
        self._tables_ready = False

    @property
    def table_names(self) -> list[str]:
        return [self._prefix + name for name in TABLE_NAMES]

    def _table(self, name: str) -> TableClient:
        if not self._tables_ready:
            self.ensure_tables()
        return self._tables[name]

    @translate_errors
    def ensure_tables(self) -> None:
        """Create the tables if missing (once per process; in Azure the Bicep made them)."""
        for name in self.table_names:
            with contextlib.suppress(ResourceExistsError):
                self._service.create_table(name)
        self._tables_ready = True

    @translate_errors
    def ping(self) -> None:
        """Raise StorageUnavailable unless storage answers a cheap request."""
        next(
            iter(
                self._table("widgets")
                .list_entities(results_per_page=1, select=["RowKey"])
                .by_page()
            ),
            None,
        )

    def _delete_rows(
        self, table: str, partition: str, rows: list[tuple[str, str | None]]
    ) -> list[str]:
        """Delete rows of one partition, (row key, ETag or None for any version), at most
        MAX_OPERATIONS per transaction; rows already gone are skipped. The row keys not
        deleted because their ETag no longer matched."""
        client = self._table(table)
        changed: list[str] = []
        for start in range(0, len(rows), MAX_OPERATIONS):
            chunk = rows[start : start + MAX_OPERATIONS]
            # A transaction naming a row already gone (404) or changed (412) fails whole:
            # send it again without that row, once per such row, then give up on batching
            # for this chunk.
            for _ in range(MISSING_ROWS_RESENT):
                try:
                    table_wire.submit(
                        client, [Operation("delete", partition, key, etag) for key, etag in chunk]
                    )
                    chunk = []
                    break
                except TransactionRefused as refused:
                    index = refused.index
                    if refused.status not in (404, 412) or index is None:
                        break
                    if not 0 <= index < len(chunk):
                        break
                    key, _ = chunk.pop(index)
                    if refused.status == 412:
                        changed.append(key)
                    if not chunk:
                        break
            changed.extend(self._delete_one_by_one(client, partition, chunk))
        return changed

    @staticmethod
    def _delete_one_by_one(
        client: TableClient, partition: str, rows: list[tuple[str, str | None]]
    ) -> list[str]:
        """Delete rows one request each; the row keys whose ETag no longer matched."""
        changed = []
        for key, etag in rows:
            try:
                if etag is None:
                    client.delete_entity(partition, key)
                else:
                    client.delete_entity(
                        partition, key, etag=etag, match_condition=MatchConditions.IfNotModified
                    )
            except ResourceNotFoundError:
                continue
            except ResourceModifiedError:
                changed.append(key)
        return changed
