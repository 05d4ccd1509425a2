"""Table requests of the timer's hot path written and read as plain text: transactions
(`$batch`) for index upkeep, and entity queries.

The SDK's `TableClient.submit_transaction` runs every operation of a transaction through a
policy pipeline of its own and builds and parses the multipart bodies with the `email`
package: about 0.8 ms of client CPU per operation, more than the conditional write of the
conversation the operation supports; its query converts every property through its type
machinery (docs/performance.md). Here a transaction body is formatted as text and its answer
read with a regular expression, and a query answer is plain JSON. The requests still go
through the client's own pipeline, so authentication, retries and transport are the app's.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, NoReturn
from urllib.parse import quote

from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.core.pipeline.transport import HttpTransport
from azure.core.rest import HttpRequest, HttpResponse
from azure.data.tables import TableClient

# Table storage refuses a transaction of more than 100 operations; Azurite answers one
# with a broken response instead of a clean error, so the limit is enforced here.
MAX_OPERATIONS = 100

Kind = Literal["create", "delete"]

# The status line of each operation's answer, its headers, and its body up to the next
# boundary line; the answers come in the order of the operations.
_ANSWER = re.compile(
    r"^HTTP/1\.1 (?P<status>\d{3})[^\r\n]*\r?\n(?P<headers>.*?)\r?\n\r?\n(?P<body>.*?)(?=^--)",
    re.DOTALL | re.MULTILINE,
)
_ETAG = re.compile(r"^ETag:\s*(?P<etag>[^\r\n]+)", re.IGNORECASE | re.MULTILINE)
# Table storage names the failed operation by its index at the start of the message.
_FAILED_INDEX = re.compile(r"^(\d+):")
# One boundary for every transaction rather than a new one each time: http.client parses
# a multipart answer's headers with the email package, which compiles a regular expression
# from the boundary (~0.4 ms) unless its cache has it, and Azurite echoes the request's
# boundary in its answer. (Azure answers with a boundary of its own, so there the compile
# stays; the fixed boundary costs nothing either way.) A body that contains it gets a
# fresh one.
_BOUNDARY = "chatreconnect-0f6c2b9e4d7a4e15b3a8"
# Where `query` puts each entity's ETag (the answer's own annotation, kept).
ETAG = "odata.etag"


@dataclass(frozen=True)
class Operation:
    """One write of a transaction: create an index row (keys only), or delete one: only the
    version with `etag` when given (else refused with 412), whatever its ETag when None."""

    kind: Kind
    partition_key: str
    row_key: str
    etag: str | None = None


class TransactionRefused(HttpResponseError):
    """Storage refused one operation, so it applied none of them.

    `index` is the refused operation's position when storage named it. An HttpResponseError
    with the refusal's status, so that callers that do not handle it see a storage error.
    """

    def __init__(self, status: int, code: str, index: int | None) -> None:
        super().__init__(f"transaction refused: operation {index} answered {status} {code}")
        self.status = self.status_code = status
        self.code = code
        self.index = index


def submit(table: TableClient, operations: Sequence[Operation]) -> list[str | None]:
    """Apply all operations or none; the ETag each one left (None for a delete).

    All operations must share one partition, at most MAX_OPERATIONS of them. Raises
    TransactionRefused when storage refused one, ResourceNotFoundError (TableNotFound) when
    the table is missing, HttpResponseError when storage failed (5xx: status None or >= 500)
    and AzureError when it could not be reached.
    """
    if not operations:
        return []
    if len(operations) > MAX_OPERATIONS:
        raise ValueError(f"a transaction holds at most {MAX_OPERATIONS} operations")
    if len({operation.partition_key for operation in operations}) != 1:
        raise ValueError("a transaction's operations must share one partition")
    account_url, sas = _account_url(table)
    table_url = f"{account_url}/{table.table_name}"
    boundary = _BOUNDARY
    parts = [
        _operation_part(index, table_url, operation) for index, operation in enumerate(operations)
    ]
    if any(boundary in part for part in parts):
        boundary = uuid.uuid4().hex
    batch, changeset = f"batch_{boundary}", f"changeset_{boundary}"
    body = "".join(
        [
            f"--{batch}\r\nContent-Type: multipart/mixed; boundary={changeset}\r\n\r\n",
            *(f"--{changeset}\r\n{part}" for part in parts),
            f"--{changeset}--\r\n--{batch}--\r\n",
        ]
    )
    request = HttpRequest(
        "POST",
        f"{account_url}/$batch{sas}",
        headers={
            **_headers(table),
            "MaxDataServiceVersion": "3.0;NetFx",
            "Content-Type": f"multipart/mixed; boundary={batch}",
            "Accept": "application/json",
        },
        content=body.encode("utf-8"),
    )
    response = _send(table, request)
    if response.status_code != 202:
        _raise_for(response)
    return _read_answers(response.text(), len(operations))


def query(table: TableClient, condition: str) -> Iterator[dict[str, Any]]:
    """Every entity matching an OData filter, page after page, with its DateTime values
    as aware datetimes, its ETag under ETAG, and its other values as JSON gives them.

    Raises ResourceNotFoundError (TableNotFound) when the table is missing,
    HttpResponseError when storage refused or failed, AzureError when unreachable.
    """
    account_url, sas = _account_url(table)
    continuation: dict[str, str] = {}
    while True:
        request = HttpRequest(
            "GET",
            f"{account_url}/{table.table_name}(){sas}",
            params={"$filter": condition, **continuation},
            headers={**_headers(table), "Accept": "application/json;odata=minimalmetadata"},
        )
        response = _send(table, request)
        if response.status_code != 200:
            _raise_for(response)
        for entity in json.loads(response.text())["value"]:
            yield _typed(entity)
        # Each page names where the next starts; a page without a row key starts at the
        # beginning of its partition.
        continuation = {
            name: value
            for name in ("NextPartitionKey", "NextRowKey")
            if (value := response.headers.get(f"x-ms-continuation-{name}"))
        }
        if "NextPartitionKey" not in continuation:
            return


def quoted(value: str) -> str:
    """A string as an OData literal inside a filter."""
    return "'" + value.replace("'", "''") + "'"


def _account_url(table: TableClient) -> tuple[str, str]:
    """The account's URL without its query, and the query (a SAS token) to append, if any."""
    url, _, query_string = table.url.partition("?")
    return url.rstrip("/"), f"?{query_string}" if query_string else ""


def _raise_for(response: HttpResponse) -> NoReturn:
    """Raise what an unsuccessful answer means: ResourceNotFoundError naming its error code
    for a 404 (TableNotFound is what the store recreates tables on), else HttpResponseError."""
    code, _ = _error(response.text())
    if response.status_code == 404:
        raise ResourceNotFoundError(message=code or "ResourceNotFound", response=response)
    raise HttpResponseError(response=response)


def _error(body: str) -> tuple[str, str]:
    """The code and message of a Table storage error body ("", "" when it has none)."""
    try:
        error = json.loads(body)["odata.error"]
        return str(error["code"]), str(error["message"]["value"])
    except (ValueError, KeyError, TypeError):
        return "", ""


class SdkMismatch(RuntimeError):
    """The installed azure-data-tables lacks the private entry point `_send` relies on."""


def check_sdk(table: TableClient) -> None:
    """Return if `table` has the pipeline entry `_send` uses, else raise SdkMismatch."""
    if not callable(getattr(getattr(table, "_client", None), "send_request", None)):
        raise SdkMismatch(
            "azure-data-tables has no TableClient._client.send_request, which "
            "shared/storage/table_wire.py sends its requests with: install the version pinned in "
            "requirements.txt, or adapt table_wire._send to the new SDK"
        )


class _NoTransport(HttpTransport[Any, Any]):
    """The start-up check's transport: its client sends nothing. Given no transport, the
    client would import `requests` for its default one, a fifth of a second of every cold
    start that the first storage request pays anyway (docs/performance.md)."""

    def send(self, request: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the start-up check's client sends nothing")

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def __exit__(self, *args: object) -> None:
        pass


# Checked once, on import (when the app starts), on a client that does no I/O: a newer SDK
# then stops the app with a clear message instead of failing the timer's first run.
check_sdk(
    TableClient.from_connection_string(
        "UseDevelopmentStorage=true", "startupcheck", transport=_NoTransport()
    )
)


def _headers(table: TableClient) -> dict[str, str]:
    return {"x-ms-version": table.api_version, "DataServiceVersion": "3.0"}


def _send(table: TableClient, request: HttpRequest) -> HttpResponse:
    """Send a request of our own through the table client's pipeline; the answer, read.

    The generated client's send_request is the SDK's one way to do that; TableClient keeps
    it on `_client` (version pinned in requirements.txt, covered by
    tests/integration/test_table_wire.py). Streamed, as the SDK sends its own transactions:
    the pipeline's content decoder refuses a multipart answer.
    """
    response: HttpResponse = table._client.send_request(request, stream=True)
    response.read()
    return response


def _typed(entity: dict[str, Any]) -> dict[str, Any]:
    """An entity of a minimal-metadata answer: DateTime values parsed, annotations dropped.

    The system `Timestamp` is left out, as the SDK keeps it out of an entity's properties;
    the ETag is kept under ETAG, for a later write conditional on this version.
    Int64 values stay strings, as the service sends them (the app stores none).
    """
    typed = {}
    for name, value in entity.items():
        if name != ETAG and ("@odata." in name or name.startswith("odata.") or name == "Timestamp"):
            continue
        if entity.get(f"{name}@odata.type") == "Edm.DateTime":
            value = _datetime(value)
        typed[name] = value
    return typed


def _datetime(text: str) -> datetime:
    """Table storage's DateTime text (up to seven fraction digits, `Z`) as a UTC datetime."""
    whole, _, fraction = text.rstrip("Z").partition(".")
    moment = datetime.fromisoformat(whole).replace(tzinfo=UTC)
    return moment.replace(microsecond=int((fraction + "000000")[:6])) if fraction else moment


def _operation_part(index: int, table_url: str, operation: Operation) -> str:
    """One operation as a part of the changeset (after its boundary): an HTTP request in text."""
    head = (
        "Content-Type: application/http\r\n"
        f"Content-Transfer-Encoding: binary\r\nContent-ID: {index}\r\n\r\n"
    )
    keys = f"PartitionKey='{_key(operation.partition_key)}',RowKey='{_key(operation.row_key)}'"
    entity_url = f"{table_url}({keys})"
    common = "DataServiceVersion: 3.0\r\nAccept: application/json;odata=minimalmetadata\r\n"
    if operation.kind == "delete":
        if_match = operation.etag or "*"
        return f"{head}DELETE {entity_url} HTTP/1.1\r\n{common}If-Match: {if_match}\r\n\r\n\r\n"
    # A create is a POST to the table: it fails if the entity exists.
    payload = json.dumps({"PartitionKey": operation.partition_key, "RowKey": operation.row_key})
    return (
        f"{head}POST {table_url} HTTP/1.1\r\n{common}Content-Type: application/json\r\n"
        f"Prefer: return-no-content\r\nContent-Length: {len(payload.encode('utf-8'))}\r\n\r\n"
        f"{payload}\r\n"
    )


def _key(key: str) -> str:
    """A key inside an entity address: quotes doubled (OData), then percent-encoded."""
    return quote(key.replace("'", "''"), safe="")


def _read_answers(text: str, expected: int) -> list[str | None]:
    """ETags of a successful changeset answer, or the refusal it holds raised."""
    answers = list(_ANSWER.finditer(text))
    for answer in answers:
        status = int(answer["status"])
        if not 200 <= status < 300:
            _raise_refusal(status, answer["body"])
    if len(answers) != expected:
        raise HttpResponseError(
            message=f"transaction answered {len(answers)} parts for {expected} operations"
        )
    return [
        match["etag"].strip() if (match := _ETAG.search(answer["headers"])) else None
        for answer in answers
    ]


def _raise_refusal(status: int, body: str) -> NoReturn:
    """Raise what a refused operation's answer means (see `submit`)."""
    code, message = _error(body)
    if status >= 500:
        raise HttpResponseError(message=f"transaction operation answered {status} {code}")
    if code == "TableNotFound":
        raise ResourceNotFoundError(message="TableNotFound")
    found = _FAILED_INDEX.match(message)
    raise TransactionRefused(status, code, int(found.group(1)) if found else None)
