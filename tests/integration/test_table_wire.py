"""Transactions and queries written as text (shared/storage/table_wire.py) against a real Azurite.

The module sends requests of its own through the SDK client's pipeline; these tests pin
what it relies on: all-or-nothing, the ETags it returns, the refusal it reports (with the
index of the refused operation), keys that need escaping, paging, values typed as the SDK
types them, and the table-missing answer.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from azure.core import MatchConditions
from azure.core.credentials import AzureNamedKeyCredential
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import (
    AccountSasPermissions,
    ResourceTypes,
    TableClient,
    TableServiceClient,
    generate_account_sas,
)

from local.azurite import Azurite
from shared.storage.table_wire import (
    ETAG,
    MAX_OPERATIONS,
    Operation,
    SdkMismatch,
    TransactionRefused,
    _datetime,
    check_sdk,
    query,
    quoted,
    submit,
)
from shared.wiring import STORAGE_CLIENT_OPTIONS
from tests.conftest import FakeClock, make_service

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def table(azurite: Azurite) -> Iterator[TableClient]:
    service = TableServiceClient.from_connection_string(
        azurite.connection_string, **STORAGE_CLIENT_OPTIONS
    )
    client = service.create_table("tx" + uuid.uuid4().hex[:12])
    try:
        yield client
    finally:
        service.delete_table(client.table_name)


def keys(table: TableClient) -> set[tuple[str, str]]:
    return {(entity["PartitionKey"], entity["RowKey"]) for entity in table.list_entities()}


def test_creates_and_deletes_apply_together_with_the_etags_the_rows_got(
    table: TableClient,
) -> None:
    table.create_entity({"PartitionKey": "p", "RowKey": "gone"})

    etags = submit(
        table,
        [
            Operation("create", "p", "new"),
            Operation("create", "p", "also"),
            Operation("delete", "p", "gone"),
        ],
    )

    assert keys(table) == {("p", "new"), ("p", "also")}
    assert etags[2] is None
    for row_key, etag in zip(["new", "also"], etags[:2], strict=False):
        assert etag == table.get_entity("p", row_key).metadata["etag"]


def test_a_returned_etag_matches_a_conditional_delete(table: TableClient) -> None:
    (etag,) = submit(table, [Operation("create", "p", "row")])
    assert etag is not None

    table.delete_entity("p", "row", etag=etag, match_condition=MatchConditions.IfNotModified)

    assert keys(table) == set()


def test_one_refused_operation_applies_none_and_names_its_index(table: TableClient) -> None:
    table.create_entity({"PartitionKey": "p", "RowKey": "exists"})

    with pytest.raises(TransactionRefused) as refused:
        submit(
            table,
            [
                Operation("create", "p", "a"),
                Operation("create", "p", "exists"),
                Operation("create", "p", "b"),
            ],
        )

    assert (refused.value.status, refused.value.code, refused.value.index) == (
        409,
        "EntityAlreadyExists",
        1,
    )
    assert keys(table) == {("p", "exists")}


def test_deleting_a_missing_row_is_refused_with_404_and_its_index(table: TableClient) -> None:
    table.create_entity({"PartitionKey": "p", "RowKey": "here"})

    with pytest.raises(TransactionRefused) as refused:
        submit(table, [Operation("delete", "p", "here"), Operation("delete", "p", "missing")])

    assert (refused.value.status, refused.value.index) == (404, 1)
    assert keys(table) == {("p", "here")}


def test_a_delete_with_an_etag_removes_only_that_version(table: TableClient) -> None:
    read = {
        row_key: table.create_entity({"PartitionKey": "p", "RowKey": row_key})["etag"]
        for row_key in ("same", "renewed")
    }
    table.upsert_entity({"PartitionKey": "p", "RowKey": "renewed", "again": True})

    with pytest.raises(TransactionRefused) as refused:
        submit(table, [Operation("delete", "p", key, etag) for key, etag in read.items()])

    assert (refused.value.status, refused.value.code, refused.value.index) == (
        412,
        "UpdateConditionNotSatisfied",
        1,
    )
    assert keys(table) == {("p", "same"), ("p", "renewed")}
    assert submit(table, [Operation("delete", "p", "same", read["same"])]) == [None]
    assert keys(table) == {("p", "renewed")}


@pytest.mark.parametrize("row_key", ["o'brien", "a~b", "x y", "100%", "Zürich-ß"])
def test_keys_that_need_escaping_reach_the_right_entity(table: TableClient, row_key: str) -> None:
    submit(table, [Operation("create", "p'q", row_key)])
    assert keys(table) == {("p'q", row_key)}

    submit(table, [Operation("delete", "p'q", row_key)])
    assert keys(table) == set()


def test_a_full_transaction_of_the_maximum_size_applies(table: TableClient) -> None:
    etags = submit(
        table, [Operation("create", "p", f"r{index:03d}") for index in range(MAX_OPERATIONS)]
    )

    assert len(etags) == MAX_OPERATIONS
    assert len(keys(table)) == MAX_OPERATIONS


@pytest.mark.parametrize(
    ("operations", "message"),
    [
        ([Operation("create", "p", f"r{i}") for i in range(MAX_OPERATIONS + 1)], "at most"),
        ([Operation("create", "p", "a"), Operation("create", "q", "b")], "one partition"),
    ],
)
def test_transactions_storage_would_refuse_are_not_sent(
    table: TableClient, operations: list[Operation], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        submit(table, operations)
    assert keys(table) == set()


def test_an_empty_transaction_sends_nothing(table: TableClient) -> None:
    assert submit(table, []) == []


def test_a_missing_table_is_reported_as_table_not_found(azurite: Azurite) -> None:
    service = TableServiceClient.from_connection_string(
        azurite.connection_string, **STORAGE_CLIENT_OPTIONS
    )
    missing = service.get_table_client("nosuch" + uuid.uuid4().hex[:12])

    with pytest.raises(ResourceNotFoundError, match="TableNotFound"):
        submit(missing, [Operation("delete", "p", "r")])


# --- queries ------------------------------------------------------------------------------


def test_a_query_reads_every_page_in_key_order(table: TableClient) -> None:
    # More than one page: the service answers at most 1,000 entities per request.
    for start in range(0, 1_205, MAX_OPERATIONS):
        submit(
            table,
            [
                Operation("create", "p", f"r{index:05d}")
                for index in range(start, min(start + MAX_OPERATIONS, 1_205))
            ],
        )
    submit(table, [Operation("create", "q", "other")])

    found = list(query(table, f"PartitionKey eq {quoted('p')}"))

    assert [entity["RowKey"] for entity in found] == [f"r{index:05d}" for index in range(1_205)]


def test_a_query_gives_values_as_the_sdk_would(table: TableClient) -> None:
    moment = datetime(2026, 11, 25, 12, 0, 1, 123456, tzinfo=UTC)
    table.create_entity(
        {
            "PartitionKey": "p",
            "RowKey": "typed",
            "at": moment,
            "flag": True,
            "count": 7,
            "text": "o'brien",
        }
    )
    table.create_entity({"PartitionKey": "p", "RowKey": "other", "text": "someone else"})

    (found,) = query(table, "text eq " + quoted("o'brien"))
    entity = table.get_entity("p", "typed")

    # The ETag too, for a write conditional on the version read.
    assert found.pop(ETAG) == entity.metadata["etag"]
    assert found == dict(entity)
    assert found["at"] == moment
    assert (found["flag"], found["count"]) == (True, 7)


@pytest.mark.parametrize(
    ("text", "moment"),
    [
        ("2026-11-25T12:00:01Z", datetime(2026, 11, 25, 12, 0, 1, tzinfo=UTC)),
        ("2026-11-25T12:00:01.5Z", datetime(2026, 11, 25, 12, 0, 1, 500000, tzinfo=UTC)),
        ("2026-11-25T12:00:01.1234567Z", datetime(2026, 11, 25, 12, 0, 1, 123456, tzinfo=UTC)),
    ],
)
def test_datetime_text_of_any_precision_is_read_as_utc(text: str, moment: datetime) -> None:
    assert _datetime(text) == moment


def test_a_query_on_a_missing_table_is_reported_as_table_not_found(azurite: Azurite) -> None:
    service = TableServiceClient.from_connection_string(
        azurite.connection_string, **STORAGE_CLIENT_OPTIONS
    )
    missing = service.get_table_client("nosuch" + uuid.uuid4().hex[:12])

    with pytest.raises(ResourceNotFoundError, match="TableNotFound"):
        list(query(missing, "PartitionKey eq 'p'"))


@pytest.mark.parametrize("carried_by", ["connection string", "endpoint URL"])
def test_a_client_with_a_sas_token_sends_both_kinds_of_request(
    azurite: Azurite, table: TableClient, carried_by: str
) -> None:
    account = TableServiceClient.from_connection_string(azurite.connection_string)
    credential = account.credential
    assert isinstance(credential, AzureNamedKeyCredential)
    sas = generate_account_sas(
        credential,
        resource_types=ResourceTypes(service=True, container=True, object=True),
        permission=AccountSasPermissions(
            read=True, write=True, delete=True, list=True, add=True, update=True
        ),
        expiry=datetime.now(UTC) + timedelta(hours=1),
    )
    if carried_by == "connection string":
        # The SDK adds the token to each request in its pipeline.
        client = TableServiceClient.from_connection_string(
            f"TableEndpoint={account.url};SharedAccessSignature={sas}"
        )
    else:
        client = TableServiceClient(endpoint=f"{account.url}?{sas}")
        assert "?" in client.url  # the token rides in the URL
    by_sas = client.get_table_client(table.table_name)

    submit(by_sas, [Operation("create", "p", "a"), Operation("create", "p", "b")])

    assert [entity["RowKey"] for entity in query(by_sas, "PartitionKey eq 'p'")] == ["a", "b"]


def test_the_store_deletes_the_rows_that_exist_when_some_are_gone(
    azurite: Azurite, clock: FakeClock
) -> None:
    store = make_service(azurite.connection_string, clock).store
    present = [f"c{index:02d}" for index in range(0, 20, 2)]
    for conversation_id in present:
        store.put_capacity("agent", conversation_id)

    # Ten rows gone among ten present: more than one transaction can be re-sent without.
    store.delete_capacity("agent", [f"c{index:02d}" for index in range(20)])

    assert store.capacity_rows("agent") == []


# Imports the app with an SDK whose TableClient lost the private attribute table_wire uses.
_WITHOUT_PRIVATE_CLIENT = """
import azure.data.tables as tables
original = tables.TableClient.__init__
def init(self, *args, **kwargs):
    original(self, *args, **kwargs)
    del self._client
tables.TableClient.__init__ = init
import function_app
"""


def test_an_sdk_without_the_private_client_stops_the_app_at_start_up() -> None:
    """Issue 12, item 8: a clear error when the app is imported, not on the timer's first run."""
    result = subprocess.run(
        [sys.executable, "-c", _WITHOUT_PRIVATE_CLIENT],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("shared.storage.table_wire.SdkMismatch: ")
    assert "TableClient._client.send_request" in last_line
    assert "requirements.txt" in last_line


def test_the_installed_sdk_passes_the_start_up_check(table: TableClient) -> None:
    check_sdk(table)  # raises SdkMismatch otherwise
    with pytest.raises(SdkMismatch):
        check_sdk(object())  # type: ignore[arg-type]
