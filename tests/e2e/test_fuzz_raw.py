"""Raw, non-schema-shaped input at every operation: never a 5xx (issue 12, item 5).

tests/e2e/test_fuzz_openapi.py lets schemathesis generate requests from the OpenAPI
document, so they are shaped like it: it missed deep JSON, `?top=²` and keys of unknown
algorithms. This test reads the same served document, and for each of its operations (a new
route is covered without touching this file) writes requests byte by byte on a socket:
random and broken-UTF-8 bodies, JSON nested past the parser's recursion, huge numbers,
unicode digits, lone surrogates, odd Content-Type, Authorization, If-Match and
If-None-Match values (obs-text bytes too), odd query strings, and path segments with
percent-encodings, `..`, NUL and unicode. It also takes a request that succeeds on the seed
data and breaks one value of it, which reaches past validation into the use cases.

Storage (Azurite) is up, so every 5xx is a bug, 503 included. Requests come from a
`random.Random` seeded per operation: the same bytes on every run, so CI is stable and a
failure reproduces; CASES_PER_OPERATION bounds the count.
"""

from __future__ import annotations

import base64
import json
import random
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from local.app import build_app
from local.azurite import Azurite
from local.server import serve_in_thread
from shared.api.http import MAX_BODY_BYTES, OPERATIONS
from shared.wiring import set_service
from tests.conftest import FakeClock, fresh_function_app, make_service
from tests.e2e.test_client_mistakes_http import UNSUPPORTED_PEMS
from tests.e2e.test_fuzz_openapi import Seeded, happy_cases, known_values, seed
from tests.keys import new_rsa_key

SEED = 20261129
CASES_PER_OPERATION = 120
METHODS_WITH_BODY = {"PUT", "PATCH", "POST", "DELETE"}
# Deeper than the JSON parser recurses (1000), still within the body limit.
DEEP = 20_000
# A depth the parser reads, for what comes after it (validation, storage, answers).
SHALLOW_DEEP = 900


@dataclass(frozen=True)
class Target:
    """One operation of the served document."""

    operation_id: str
    method: str
    path: str  # the template, e.g. /api/conversations/{conversationId}
    params: tuple[str, ...]


@dataclass(frozen=True)
class Sent:
    """A request as written, and the status it got."""

    raw: bytes
    status: int
    answer: bytes


@pytest.fixture(scope="module")
def raw_url() -> Iterator[str]:
    """A local host of its own, in this process; the timer never fires."""
    environ = {"RECONNECT_ENFORCE_SCHEDULE": "0 0 0 1 1 *"}
    with serve_in_thread(build_app(fresh_function_app(), environ)) as url:
        yield url


@pytest.fixture(scope="module")
def issuer_key() -> rsa.RSAPrivateKey:
    return new_rsa_key()


@pytest.fixture(scope="module")
def targets(raw_url: str) -> list[Target]:
    """Every operation of the OpenAPI document the host serves."""
    document = httpx.get(raw_url + "/api/openapi.json", timeout=30).raise_for_status().json()
    base = urlsplit(document.get("servers", [{"url": "/"}])[0]["url"]).path.rstrip("/")
    found = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method.upper() not in {"GET", "PUT", "PATCH", "POST", "DELETE", "OPTIONS"}:
                continue
            params = tuple(p["name"] for p in operation.get("parameters", []) if p["in"] == "path")
            found.append(Target(operation["operationId"], method.upper(), base + path, params))
    return found


@pytest.fixture
def seeded(azurite: Azurite, raw_url: str, issuer_key: rsa.RSAPrivateKey) -> Iterator[Seeded]:
    """A service on fresh tables installed for the host, with widgets and conversations."""
    set_service(make_service(azurite.connection_string, FakeClock()))
    try:
        with httpx.Client(base_url=raw_url + "/api", timeout=30) as api:
            yield seed(api, issuer_key)
    finally:
        set_service(None)


# --- what to send ---------------------------------------------------------------------------

DIGITS = ("\u00b2", "\u00b9\u00b2", "\u0661\u0662", "\U0001d7d9", "\uff11", "1\u0301")
ODD_TEXT = (
    "",
    " ",
    "\x00",
    "\ud800",  # a lone surrogate: JSON may escape it, UTF-8 cannot hold it
    "\udfff\ud800",
    "\u202e\u0041",
    "\ufeff",
    "\U0001f600" * 200,
    "a" * 5000,
    "..",
    "../../etc/passwd",
    "%2e%2e%2f",
    "<script>alert(1)</script>",
    "'; --",
    "PartitionKey eq 'x' or true",
    "{ReconnectUrl{ReconnectID}}" * 300,
    "javascript:alert(1)",
    "http://[::1",
    "https://\u0430pple.example/",
    *DIGITS,
    *UNSUPPORTED_PEMS.values(),
)
NUMBERS: tuple[Any, ...] = (
    0,
    -1,
    2**31,
    2**63,
    10**400,
    -(10**4000),
    1e308,
    -0.0,
    5e-324,
    True,
)


def deep_json(rng: random.Random, depth: int) -> bytes:
    """JSON nested `depth` levels: arrays, objects or a mix."""
    kind = rng.choice(("array", "object", "mixed"))
    if kind == "array":
        return b"[" * depth + b"]" * depth
    if kind == "object":
        return b'{"a":' * depth + b"1" + b"}" * depth
    opening = b"".join(rng.choice((b"[", b'{"k":')) for _ in range(depth))
    closing = b"".join(b"]" if part == b"[" else b"}" for part in _parts(opening)[::-1])
    return opening + b"0" + closing


def _parts(opening: bytes) -> list[bytes]:
    parts, index = [], 0
    while index < len(opening):
        size = 1 if opening[index : index + 1] == b"[" else 5
        parts.append(opening[index : index + size])
        index += size
    return parts


def odd_value(rng: random.Random) -> Any:
    """A JSON value of the wrong kind, size, depth or text."""
    pick = rng.randrange(6)
    if pick == 0:
        return rng.choice(ODD_TEXT)
    if pick == 1:
        return rng.choice(NUMBERS)
    if pick == 2:
        return json.loads(deep_json(rng, rng.choice((10, 200, SHALLOW_DEEP))))
    if pick == 3:
        return rng.choice((None, [], {}, [None], {"": None}, {"$ref": "#"}))
    if pick == 4:
        return [rng.choice(ODD_TEXT) for _ in range(rng.randrange(1, 60))]
    return {rng.choice(ODD_TEXT): rng.choice(ODD_TEXT) for _ in range(rng.randrange(1, 20))}


def mutated(rng: random.Random, value: Any) -> Any:
    """`value` with one part replaced by an odd value (or one key added or removed)."""
    if isinstance(value, dict) and value and rng.random() < 0.8:
        key = rng.choice(list(value))
        changed = dict(value)
        action = rng.randrange(3)
        if action == 0:
            del changed[key]
        elif action == 1:
            changed[rng.choice(ODD_TEXT)] = odd_value(rng)
        else:
            changed[key] = mutated(rng, value[key])
        return changed
    if isinstance(value, list) and value and rng.random() < 0.8:
        index = rng.randrange(len(value))
        return [*value[:index], mutated(rng, value[index]), *value[index + 1 :]]
    return odd_value(rng)


def body_bytes(rng: random.Random, good: Any) -> bytes:
    """A body: a broken good body, deep JSON, random bytes, broken UTF-8, or odd JSON text."""
    pick = rng.randrange(10)
    if pick <= 2 and good is not None:
        return json.dumps(mutated(rng, good)).encode()
    if pick == 3:
        return deep_json(rng, rng.choice((DEEP, 1100, SHALLOW_DEEP)))
    if pick == 4:
        return rng.randbytes(rng.choice((1, 7, 300, 5000)))
    if pick == 5:  # broken UTF-8 in and around JSON
        return rng.choice(
            (
                b'{"widgetId": "\xff\xfe"}',
                b'{"\xc3\x28": 1}',
                b"\xef\xbb\xbf{}",
                b'{"text": "\xed\xa0\x80"}',
                '{"a": 1}'.encode("utf-16"),
                b'{"type": "customer_disconnected"\x00}',
            )
        )
    if pick == 6:
        return rng.choice(
            (
                b"1" * 4400,
                b"-" + b"9" * 5000,
                b"1e99999",
                b"NaN",
                b"-Infinity",
                b'{"timeLimitMinutes": 1e400}',
                b'{"timeLimitMinutes": 12345678901234567890123}',
                b'{"timeLimitMinutes": "\\u00b2"}',
                b'{"a": "\\ud800"}',
                b'{"a": 1, "a": 2}',
                b"",
                b"null",
                b"[]",
                b'"\\u0000"',
            )
        )
    if pick == 7:
        return b"{" + b'"k": 1,' * (MAX_BODY_BYTES // 7) + b'"k": 1}'  # just over the limit
    if pick == 8 and good is not None:
        return json.dumps(mutated(rng, mutated(rng, good)), ensure_ascii=False).encode(
            "utf-8", "surrogatepass"
        )
    return json.dumps(odd_value(rng), ensure_ascii=rng.random() < 0.5).encode(
        "utf-8", "surrogatepass"
    )


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def authorization(rng: random.Random, good: str) -> bytes:
    header = rng.choice(
        (
            b'{"alg":"none","typ":"JWT"}',
            b'{"alg":"RS256","kid":"k1"}',
            b'{"alg":"RS256","kid":' + b"[" * 3000 + b"]" * 3000 + b"}",
            b'{"alg":"HS256","kid":"k1"}',
            b'{"alg":"RS256","kid":"\xff"}',
            b"[]",
            b"\xff\xfe",
        )
    )
    claims = rng.choice(
        (
            b'{"iss":"https://login.contoso.example/","sub":"x","iat":1,"exp":99999999999}',
            b'{"iss":' + b"[" * 3000 + b"]" * 3000 + b"}",
            b'{"exp":1e999,"iat":-1e999}',
            b'{"exp":"\xc2\xb2"}',
        )
    )
    token = _b64(header) + b"." + _b64(claims) + b"." + _b64(rng.randbytes(rng.choice((0, 256))))
    return rng.choice(
        (
            good.encode(),
            good.encode()[:-5],
            b"Bearer " + token,
            b"Bearer",
            b"Bearer  " + good.encode()[7:],
            b"bearer " + b"a.b.c",
            b"Basic " + base64.b64encode(b"user:pass"),
            b"Bearer " + "\u00e9".encode("latin-1") * 50,
            b"Bearer " + b"x" * 6000,
            b"Bearer \x80\x81\xfe\xff",
        )
    )


def headers(rng: random.Random, target: Target, good: dict[str, Any]) -> list[tuple[bytes, bytes]]:
    """Odd values of the headers the API reads, each present now and then."""
    chosen: list[tuple[bytes, bytes]] = []
    content_types = (
        good.get("media_type", "application/json").encode(),
        b"application/json; charset=utf-16",
        b"application/json;;;charset",
        b"application/JSON",
        b'APPLICATION/MERGE-PATCH+JSON; x="\xff"',
        b"text/plain",
        b"multipart/form-data; boundary=",
        b"application/x-www-form-urlencoded",
        b"*/*",
        b"",
        b"\xe9\xe8",
    )
    if rng.random() < 0.9:
        chosen.append((b"Content-Type", rng.choice(content_types)))
    if rng.random() < 0.5:
        good_auth = dict(good.get("headers", {})).get("Authorization", "Bearer a.b.c")
        chosen.append((b"Authorization", authorization(rng, good_auth)))
    for name in (b"If-Match", b"If-None-Match"):
        if rng.random() < 0.3:
            chosen.append(
                (
                    name,
                    rng.choice(
                        (
                            b"*",
                            b'"x"',
                            b"W/\"datetime'2026-01-01T00%3A00%3A00Z'\"",
                            b"*, *",
                            b'"' + b"\\" * 50 + b'"',
                            b"\x80\xff",
                            b"x" * 4000,
                            b'W/"' + "\u00b2".encode() + b'"',
                        )
                    ),
                )
            )
    return chosen


SEGMENTS = (
    "x",
    "..",
    ".",
    "%2e%2e",
    "%2E%2E%2F%2E%2E",
    "%2F",
    "a%2Fb",
    "%00",
    "%ZZ",
    "%",
    "%C3%28",
    "%FF%FE",
    "%ED%A0%80",
    "%F0%9F%98%80",
    "\u00b2",
    "\U0001f600",
    "%20",
    "+",
    "a;b=c",
    "$metadata",
    "'",
    "''",
    "*",
    "a" * 129,
    "a" * 3000,
    "%3Cscript%3Ealert(1)%3C%2Fscript%3E",
    "PartitionKey%20eq%20'x'",
)


def path(rng: random.Random, target: Target, pools: dict[str, tuple[str, ...]]) -> str:
    """The route with each parameter a known id (now and then) or an odd segment."""
    result = target.path
    for name in target.params:
        known = pools.get(name, ())
        segment = (
            quote(rng.choice(known), safe="")
            if known and rng.random() < 0.3
            else rng.choice(SEGMENTS)
        )
        result = result.replace("{" + name + "}", segment)
    if rng.random() < 0.1:
        result = rng.choice((result + "/", result + "/..", result + "%2F..", result + "?"))
    return result


def query(rng: random.Random) -> str:
    """An odd query string (or none)."""
    if rng.random() < 0.4:
        return ""
    deep_token = _b64(b"[" * 4000 + b"]" * 4000).decode()
    return rng.choice(
        (
            "top=" + quote(rng.choice(DIGITS)),
            "top=99999999999999999999999999",
            "top=-1",
            "top=1e3",
            "top=",
            "top=1&top=2",
            "continuationToken=" + deep_token,
            "continuationToken=" + _b64(b'{"PartitionKey": "\\ud800", "RowKey": 1}').decode(),
            "continuationToken=" + _b64(b'{"PartitionKey": "' + b"a" * 2000 + b'"}').decode(),
            "continuationToken=%FF%FE",
            "continuationToken=" + _b64(b"\xff\xfe\x00").decode(),
            "continuationToken=====",
            urlencode({"continuationToken": "\U0001f600", "top": "\u0661"}),
            "%ZZ=%ZZ",
            "&&&==&",
            "a[b]=c&a[]=d",
            "\u00b2=\u00b2",
            "x=" + "y" * 6000,
        )
    )


def request_bytes(
    rng: random.Random, host: str, target: Target, good: dict[str, Any], pools: dict[str, Any]
) -> bytes:
    """One request, as it goes on the wire."""
    method = target.method if rng.random() < 0.95 else rng.choice(("GET", "POST", "PATCH"))
    target_text = path(rng, target, pools)
    query_text = query(rng)
    if query_text:
        target_text += "?" + query_text
    # Non-ASCII is sent as UTF-8 bytes, unencoded, as a careless client would.
    lines = [method.encode() + b" " + target_text.encode("utf-8", "surrogatepass") + b" HTTP/1.1"]
    lines.append(b"Host: " + host.encode())
    lines += [name + b": " + value for name, value in headers(rng, target, good)]
    body = b""
    if method in METHODS_WITH_BODY or rng.random() < 0.1:
        body = body_bytes(rng, good.get("body"))
    lines.append(b"Content-Length: " + str(len(body)).encode())
    lines.append(b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def send(url: str, raw: bytes) -> Sent:
    """Write `raw` on a fresh connection and read the whole answer."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=60) as sock:
        sock.sendall(raw)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    answer = b"".join(chunks)
    status_line = answer.split(b"\r\n", 1)[0].split(b" ")
    assert len(status_line) >= 2, (raw[:300], answer[:300])
    assert status_line[1].isdigit(), (raw[:300], answer[:300])
    return Sent(raw, int(status_line[1]), answer)


def test_every_operation_of_the_document_is_fuzzed(targets: list[Target]) -> None:
    """The parametrization below covers exactly the operations the host documents."""
    assert {target.operation_id for target in targets} == {op.name for op in OPERATIONS}
    assert len(targets) == len(OPERATIONS)


@pytest.mark.parametrize("operation_id", sorted({op.name for op in OPERATIONS}))
def test_raw_input_never_gets_a_5xx(
    operation_id: str,
    raw_url: str,
    targets: list[Target],
    seeded: Seeded,
    record_property: Callable[[str, object], None],
) -> None:
    (target,) = [t for t in targets if t.operation_id == operation_id]
    rng = random.Random(f"{SEED}:{operation_id}")
    good = happy_cases(seeded).get(operation_id, {})
    pools = known_values(seeded)
    host = urlsplit(raw_url).netloc
    failures = []
    statuses: dict[int, int] = {}
    for _ in range(CASES_PER_OPERATION):
        sent = send(raw_url, request_bytes(rng, host, target, good, pools))
        statuses[sent.status] = statuses.get(sent.status, 0) + 1
        if sent.status >= 500:
            failures.append(sent)
    record_property("raw_fuzz_requests", CASES_PER_OPERATION)
    record_property("raw_fuzz_statuses", statuses)
    print(f"raw fuzz {operation_id}: {CASES_PER_OPERATION} requests, statuses {statuses}")
    assert not failures, "\n\n".join(
        f"{f.status} for {f.raw[:400]!r}\n-> {f.answer[:400]!r}" for f in failures[:5]
    )
